"""Mapping a borough's columns and values to the standard asset model of ``data/asset_model.yaml``.

Columns are matched by the names boroughs use (``UNITNO``, ``Asset_ID``, ``HGT_M``, ``TYPE``...),
ignoring case, spaces and underscores; values of vocabulary fields are matched to codes the same
way ("Street Light" -> ``lamp_post``, "Live" -> ``in_service``). A mapping file (YAML or JSON)
overrides both::

    columns: {LAMP_REF: source_id, OLD_ID: null}      # null: ignore the column
    values: {subtype: {"Lamp Col": lamp_post}, status: {"L": in_service}}
    defaults: {subtype: lamp_post}

Columns that map to nothing are kept as sent in ``extra`` (JSON text). The names matched are
:mod:`geo.uploads.names`; the conversion to the fields' types is :mod:`geo.uploads.conversion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from geo.core.row_errors import UploadRejected
from geo.reference.model import load_model
from geo.uploads.conversion import convert, convert_arrow, extra_json
from geo.uploads.names import COLUMN_NAMES, column_key, value_key, vocabulary_lookup, vocabulary_name

#: Largest mapping file read (a mapping names columns and values: kilobytes, not megabytes).
MAX_MAPPING_BYTES = 2**20


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: a few aliased lines can expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: anchors and aliases (& and *) are not accepted in a mapping"
            )
        return super().compose_node(parent, index)


def load_mapping_file(path: str | Path) -> dict[str, Any]:
    """Read a mapping file (YAML or JSON; JSON is YAML) into ``{columns, values, defaults}``.

    At most :data:`MAX_MAPPING_BYTES`, and YAML anchors and aliases are refused, so reading it
    costs what its size does.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MAPPING_BYTES:
            raise UploadRejected(
                f"the mapping file is larger than the limit of {MAX_MAPPING_BYTES // 2**10} KB",
                file=path.name,
            )
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliases)  # noqa: S506 (a SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UploadRejected(f"the mapping file cannot be read: {exc}", file=path.name) from None
    return check_mapping_spec(raw or {}, source=path.name)


def check_mapping_spec(spec: Any, source: str = "mapping") -> dict[str, Any]:
    """Check the shape of a mapping given as a dict; return it with all three sections present."""
    if not isinstance(spec, dict):
        raise UploadRejected("a mapping must be an object with columns, values and defaults", file=source)
    unknown = set(spec) - {"columns", "values", "defaults"}
    if unknown:
        raise UploadRejected(
            f"unknown mapping section(s) {sorted(unknown)}; use columns, values and defaults", file=source
        )
    out = {key: spec.get(key) or {} for key in ("columns", "values", "defaults")}
    for key, section in out.items():
        if not isinstance(section, dict):
            raise UploadRejected(f"mapping section {key!r} must be an object", file=source)
    allowed = {f.name for f in load_model().attribute_fields()}
    for column, target in out["columns"].items():
        if target is not None and target not in allowed:
            raise UploadRejected(
                f"mapping sends column {column!r} to {target!r}, which is not a field of the model; "
                f"fields: {', '.join(sorted(allowed))}",
                file=source,
                column=str(column),
                value=target,
            )
    for section in ("values", "defaults"):
        for target in out[section]:
            if target not in allowed:
                raise UploadRejected(
                    f"mapping {section} names {target!r}, which is not a field of the model", file=source
                )
    for target, values in out["values"].items():
        if not isinstance(values, dict):
            raise UploadRejected(
                f"mapping values for {target!r} must be an object of value: code", file=source
            )
    return out


@dataclass
class MappedBatch:
    """A batch in model terms.

    ``values`` holds one typed column per model field that the kind allows (text as pandas strings,
    numbers as float, booleans as pandas ``boolean``, dates as ``datetime64``, vocabularies as codes,
    or the source text when it matched no code). ``raw`` holds the source values of mapped fields,
    for error messages (a field given only by a default is absent). ``extra`` is JSON text per row.
    """

    values: pd.DataFrame
    raw: pd.DataFrame
    extra: pa.Array


@dataclass
class Mapping:
    """Which source column goes to which field, value translations and defaults, for one kind."""

    kind: str
    columns: dict[str, str]
    extra: list[str]
    ignored: list[str] = field(default_factory=list)
    geometry_columns: list[str] = field(default_factory=list)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """What went where, for the upload report: ``{column: field | "extra" | "ignored" | "geometry"}`` etc."""
        where: dict[str, str] = dict.fromkeys(self.geometry_columns, "geometry")
        where.update(self.columns)
        where.update(dict.fromkeys(self.extra, "extra"))
        where.update(dict.fromkeys(self.ignored, "ignored"))
        return {
            "kind": self.kind,
            "columns": where,
            "values": self.values,
            "defaults": self.defaults,
            "notes": list(self.notes),
        }

    def fields(self) -> list[str]:
        """The model fields of this kind (attribute fields only)."""
        return [f.name for f in load_model().attribute_fields() if self.kind in f.kinds]

    def apply(self, table: pa.Table) -> MappedBatch:
        """Map one batch of source attributes (as read) to model fields; vectorised per column."""
        n = table.num_rows
        model = load_model()
        values: dict[str, pd.Series] = {}
        raw: dict[str, pd.Series] = {}
        by_field = {f: c for c, f in self.columns.items()}
        for name in self.fields():
            spec = model.fields[name]
            column = by_field.get(name)
            default = self.defaults.get(name)
            if column is not None:
                fast = convert_arrow(table.column(column), spec.type, self._lookup(name), default)
                if fast is not None:
                    raw[name], values[name] = fast
                    continue
                source = table.column(column).to_pandas()
                raw[name] = source
            else:
                # No column: every row is the default (or missing); convert one row and repeat it.
                one = convert(pd.Series([None], dtype=object), spec.type, self._lookup(name), default)
                values[name] = one.iloc[np.zeros(n, dtype=np.int64)].reset_index(drop=True)
                continue
            values[name] = convert(source, spec.type, self._lookup(name), default)
        return MappedBatch(
            values=pd.DataFrame(values, index=pd.RangeIndex(n)),
            raw=pd.DataFrame(raw, index=pd.RangeIndex(n)),
            extra=extra_json(table, self.extra),
        )

    def _lookup(self, name: str) -> dict[str, str]:
        lookup = vocabulary_lookup(name, self.kind)
        lookup.update({value_key(k): v for k, v in self.values.get(name, {}).items()})
        return lookup


def build_mapping(
    columns: list[str],
    kind: str,
    spec: dict[str, Any] | str | Path | None = None,
    *,
    geometry_columns: list[str] | tuple[str, ...] = (),
) -> Mapping:
    """Decide where each source column goes.

    Parameters
    ----------
    columns : the file's attribute columns (coordinate columns excluded).
    kind : the asset kind, which decides the fields and the subtype vocabulary.
    spec : a mapping (dict or YAML/JSON file) overriding the automatic choices.
    geometry_columns : columns the reader turned into geometry (reported, never mapped).

    Raises
    ------
    UploadRejected
        The mapping names a column the file does not have, a field that the kind does not have,
        or gives a default outside the vocabulary.

    Examples
    --------
    >>> build_mapping(["UNITNO", "HGT_M", "Ward"], "street_furniture").report()["columns"]
    {'UNITNO': 'source_id', 'HGT_M': 'height_m', 'Ward': 'extra'}
    """
    model = load_model()
    if kind not in model.kinds:
        raise UploadRejected(f"unknown kind {kind!r}; use one of {', '.join(model.kinds)}", value=kind)
    if spec is None:
        spec = {"columns": {}, "values": {}, "defaults": {}}
    elif isinstance(spec, str | Path):
        spec = load_mapping_file(spec)
    else:
        spec = check_mapping_spec(spec)
    kind_fields = [f.name for f in model.attribute_fields() if kind in f.kinds]
    mapped, ignored = _named_columns(spec["columns"], columns, kind_fields, kind)
    free = [c for c in columns if c not in mapped and c not in ignored]
    _match_by_name(free, mapped, kind_fields)
    extra = [c for c in free if c not in mapped]
    values = {k: {str(a): str(b) for a, b in v.items()} for k, v in spec["values"].items()}
    defaults = _checked_defaults(dict(spec["defaults"]), values, kind_fields, kind)
    notes: list[str] = []
    mapping = Mapping(
        kind=kind,
        columns={c: mapped[c] for c in columns if c in mapped},
        extra=extra,
        ignored=ignored,
        geometry_columns=list(geometry_columns),
        values=values,
        defaults=defaults,
        notes=notes,
    )
    if "status" in kind_fields:
        mapping.defaults.setdefault("status", "unknown")  # the model's default status
    if "subtype" not in mapping.columns.values() and "subtype" not in defaults:
        mapping.defaults["subtype"] = "other"
        notes.append("no column gives the subtype: every row is 'other' (set defaults.subtype in a mapping)")
    if "source_id" not in mapping.columns.values():
        notes.append("no column gives the source_id (the borough's own identifier): name it in a mapping")
    return mapping


def _named_columns(
    named: dict[str, Any], columns: list[str], kind_fields: list[str], kind: str
) -> tuple[dict[str, str], list[str]]:
    """The columns a mapping names, matched exactly or ignoring case: ``({column: field}, [ignored])``."""
    mapped: dict[str, str] = {}
    ignored: list[str] = []
    exact = {c: c for c in columns}
    folded = {c.lower(): c for c in columns}
    for src, target in named.items():
        column = exact.get(src) or folded.get(str(src).lower())
        if column is None:
            raise UploadRejected(
                f"the mapping names column {src!r}, which the file does not have; its columns are "
                f"{', '.join(map(repr, columns))}",
                column=str(src),
            )
        if target is None:
            ignored.append(column)
        elif target not in kind_fields:
            raise UploadRejected(
                f"field {target!r} does not apply to kind {kind!r}", column=column, value=target
            )
        else:
            mapped[column] = target
    return mapped, ignored


def _match_by_name(free: list[str], mapped: dict[str, str], kind_fields: list[str]) -> None:
    """Map each field still unmapped to a column of ``free`` with one of its usual names (``COLUMN_NAMES``)."""
    taken = set(mapped.values())
    keys = {c: column_key(c) for c in free}
    for name in kind_fields:
        if name in taken:
            continue
        for candidate in COLUMN_NAMES.get(name, ()):
            column = next((c for c in free if keys[c] == candidate and c not in mapped), None)
            if column is not None:
                mapped[column] = name
                break


def _checked_defaults(
    defaults: dict[str, Any], values: dict[str, dict[str, str]], kind_fields: list[str], kind: str
) -> dict[str, Any]:
    """``defaults`` with vocabulary values as codes; a field of another kind or an unknown value is refused."""
    for name, default in defaults.items():
        if name not in kind_fields:
            raise UploadRejected(
                f"default for {name!r}: the field does not apply to kind {kind!r}", value=default
            )
        vocab = vocabulary_name(name)
        if vocab is not None:
            lookup = vocabulary_lookup(name, kind)
            lookup.update({value_key(a): b for a, b in values.get(name, {}).items()})
            code = lookup.get(value_key(default))
            if code is None:
                raise UploadRejected(
                    f"default {name}={default!r} is not in the {name} vocabulary", value=default
                )
            defaults[name] = code
    return defaults
