"""Mapping a borough's columns and values to the standard asset model of ``data/asset_model.yaml``.

Columns are matched by the names boroughs use (``UNITNO``, ``Asset_ID``, ``HGT_M``, ``TYPE``...),
ignoring case, spaces and underscores; values of vocabulary fields are matched to codes the same
way ("Street Light" -> ``lamp_post``, "Live" -> ``in_service``). A mapping file (YAML or JSON)
overrides both::

    columns: {LAMP_REF: source_id, OLD_ID: null}      # null: ignore the column
    values: {subtype: {"Lamp Col": lamp_post}, status: {"L": in_service}}
    defaults: {subtype: lamp_post}

Columns that map to nothing are kept as sent in ``extra`` (JSON text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from geo.core.row_errors import UploadRejected
from geo.reference.model import load_model

_KEY = re.compile(r"[^0-9a-z]+")


def column_key(name: str) -> str:
    """A column name reduced for matching: lower case, letters and digits only (``Asset_ID`` -> ``assetid``)."""
    return _KEY.sub("", str(name).lower())


def value_key(value: str) -> str:
    """A value reduced for matching: lower case, runs of other characters as one space."""
    return _KEY.sub(" ", str(value).lower()).strip()


#: Field -> source column names boroughs use (as :func:`column_key`), most specific first. When several
#: columns of one file match a field, the one earliest in this list wins; the others go to ``extra``.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "source_id": (
        "sourceid",
        "unitno",
        "unitnumber",
        "unitid",
        "unitref",
        "assetid",
        "assetno",
        "assetnumber",
        "assetref",
        "assetreference",
        "assetcode",
        "columnno",
        "columnnumber",
        "colno",
        "columnid",
        "lampno",
        "siteid",
        "siteref",
        "featureid",
        "ductid",
        "ductref",
        "sectionid",
        "routeid",
        "stopcodelbsl",
        "ref",
        "reference",
        "id",
        "fid",
        "objectid",
    ),
    "subtype": (
        "subtype",
        "assettype",
        "unittype",
        "columntype",
        "buildingtype",
        "featuretype",
        "type",
        "assetclass",
        "category",
        "class",
    ),
    "name": (
        "name",
        "sitename",
        "assetname",
        "buildingname",
        "stopname",
        "title",
        "description",
        "desc",
        "locationdescription",
        "location",
        "street",
        "streetname",
        "road",
        "roadname",
        "address",
    ),
    "owner": ("owner", "assetowner", "ownedby", "ownership", "organisation"),
    "status": ("status", "assetstatus", "operationalstatus", "unitstatus", "state"),
    "height_m": (
        "heightm",
        "height",
        "hgtm",
        "hgt",
        "colheight",
        "columnheight",
        "colhgt",
        "mountingheight",
        "buildingheight",
        "heightmetres",
    ),
    "power_available": ("poweravailable", "haspower", "power", "powered", "powersupply", "electricity"),
    "power_source": ("powersource", "supplytype", "supply"),
    "duct_diameter_mm": ("ductdiametermm", "diametermm", "diameter", "diamm", "dia", "ductdiameter", "bore"),
    "duct_spare_capacity_pct": (
        "ductsparecapacitypct",
        "sparecapacity",
        "sparecapacitypct",
        "spare",
        "sparepct",
    ),
    "rooftop_access": ("rooftopaccess", "roofaccess"),
    "listed_building": ("listedbuilding", "listed"),
    "conservation_area": ("conservationarea", "inconservationarea", "conservation"),
    "positional_accuracy_m": ("positionalaccuracym", "positionalaccuracy", "accuracym", "accuracy"),
    "survey_quality": ("surveyquality", "qualitylevel", "pas128", "ql", "quality"),
    "last_surveyed": (
        "lastsurveyed",
        "surveydate",
        "datesurveyed",
        "surveyed",
        "lastinspected",
        "inspectiondate",
        "lastinspection",
    ),
    "provenance": ("provenance", "datasource", "source"),
}

#: Vocabulary synonyms (as :func:`value_key`) beyond each code and its label.
VALUE_NAMES: dict[str, dict[str, str]] = {
    "subtype.street_furniture": {
        **dict.fromkeys(
            [
                "lamp column",
                "lamp col",
                "lamp",
                "lamppost",
                "street light",
                "streetlight",
                "street lighting column",
                "lighting column",
                "light column",
                "column",
                "lc",
                "sl",
                "slc",
            ],
            "lamp_post",
        ),
        **dict.fromkeys(["bus stop", "bus stop pole", "bus flag", "bus stop flag", "bs", "stop"], "bus_stop"),
        **dict.fromkeys(["bus shelter", "shelter", "bsh"], "bus_shelter"),
        **dict.fromkeys(
            ["cctv", "cctv column", "cctv pole", "cctv camera", "camera", "camera column"], "cctv_column"
        ),
        **dict.fromkeys(
            [
                "traffic signal",
                "traffic signals",
                "traffic light",
                "traffic lights",
                "signal",
                "signal pole",
                "ts",
                "signal controller",
                "traffic signal pole",
            ],
            "traffic_signal",
        ),
        **dict.fromkeys(["cabinet", "street cabinet", "comms cabinet", "telecoms cabinet"], "street_cabinet"),
        **dict.fromkeys(
            ["manhole", "access chamber", "chamber", "joint box", "jointbox", "inspection chamber"],
            "access_chamber",
        ),
        **dict.fromkeys(["feeder pillar", "pillar", "fp"], "feeder_pillar"),
        **dict.fromkeys(["sign", "sign post", "signpost", "sign pole"], "sign_post"),
    },
    "subtype.public_building": {
        **dict.fromkeys(["library", "public library"], "library"),
        **dict.fromkeys(
            [
                "school",
                "primary school",
                "secondary school",
                "academy",
                "nursery",
                "nursery school",
                "college",
            ],
            "school",
        ),
        **dict.fromkeys(["town hall", "civic centre", "civic center"], "town_hall"),
        **dict.fromkeys(
            ["housing block", "council housing", "tower block", "block of flats", "flats", "estate"],
            "housing_block",
        ),
        **dict.fromkeys(["leisure centre", "sports centre", "swimming pool", "leisure"], "leisure_centre"),
        **dict.fromkeys(["health centre", "gp surgery", "surgery", "clinic", "gp"], "health_centre"),
        **dict.fromkeys(["office", "council office", "offices"], "office"),
        **dict.fromkeys(
            ["community centre", "community hall", "youth centre", "community center"], "community_centre"
        ),
        **dict.fromkeys(["fire station"], "fire_station"),
        **dict.fromkeys(["police station"], "police_station"),
    },
    "subtype.duct": {
        **dict.fromkeys(["duct", "ducts", "main duct"], "duct"),
        **dict.fromkeys(["sub duct", "subduct", "microduct", "micro duct"], "sub_duct"),
        **dict.fromkeys(["trough", "cable trough"], "trough"),
    },
    "status": {
        **dict.fromkeys(
            [
                "in service",
                "live",
                "active",
                "operational",
                "in use",
                "working",
                "existing",
                "current",
                "in situ",
            ],
            "in_service",
        ),
        **dict.fromkeys(["planned", "proposed", "future"], "proposed"),
        **dict.fromkeys(["removed", "deleted", "gone"], "removed"),
        **dict.fromkeys(["under construction", "being built", "in construction"], "under_construction"),
        **dict.fromkeys(["decommissioned", "disused", "retired", "redundant"], "decommissioned"),
        **dict.fromkeys(
            ["out of service", "out of commission", "faulty", "not working", "inactive"], "out_of_commission"
        ),
        **dict.fromkeys(["unfit", "unsafe", "unfit for service"], "unfit_for_service"),
        **dict.fromkeys(["pending removal", "to be removed"], "pending_removal"),
        **dict.fromkeys(["unknown", "tbc", "n a", "na", "not known"], "unknown"),
    },
    "survey_quality": {
        **{key: f"QL-{q}" for q in "ABCD" for key in (q.lower(), f"ql {q.lower()}", f"ql{q.lower()}")},
    },
    "power_source": {
        **dict.fromkeys(["unmetered", "ums", "unmetered supply"], "unmetered_supply"),
        **dict.fromkeys(["metered", "metered supply"], "metered_supply"),
        **dict.fromkeys(["feeder pillar", "pillar"], "feeder_pillar"),
        **dict.fromkeys(["building", "building supply"], "building_supply"),
        **dict.fromkeys(["none", "no", "no power"], "none"),
    },
}

TRUE_VALUES = {"y", "yes", "true", "t", "1", "1.0"}
FALSE_VALUES = {"n", "no", "false", "f", "0", "0.0"}
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%y")
UNIT_SUFFIX = re.compile(r"\s*(m|mm|metres|meters|metre|meter|%)\s*$", re.IGNORECASE)


def _vocabulary_name(field_name: str) -> str | None:
    spec = load_model().fields[field_name]
    return spec.vocabulary if spec.type == "vocabulary" else None


def vocabulary_lookup(field_name: str, kind: str) -> dict[str, str]:
    """``{value_key: code}`` for one vocabulary field: codes, labels and the synonyms boroughs use."""
    model = load_model()
    vocab = _vocabulary_name(field_name)
    if vocab is None:
        return {}
    if vocab == "subtypes":
        labels: dict[str, str] = model.subtypes[kind]
        synonyms = VALUE_NAMES.get(f"subtype.{kind}", {})
    elif vocab == "statuses":
        labels = {code: s["label"] for code, s in model.statuses.items()}
        synonyms = VALUE_NAMES["status"]
    else:
        labels = model.vocabularies[vocab]
        synonyms = VALUE_NAMES.get(vocab, {})
    lookup = dict(synonyms)
    for code, label in labels.items():
        lookup[value_key(label)] = code
        lookup[value_key(code)] = code
    return lookup


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
                fast = _convert_arrow(table.column(column), spec.type, self._lookup(name), default)
                if fast is not None:
                    raw[name], values[name] = fast
                    continue
                source = table.column(column).to_pandas()
                raw[name] = source
            else:
                # No column: every row is the default (or missing); convert one row and repeat it.
                one = _convert(pd.Series([None], dtype=object), spec.type, self._lookup(name), default)
                values[name] = one.iloc[np.zeros(n, dtype=np.int64)].reset_index(drop=True)
                continue
            values[name] = _convert(source, spec.type, self._lookup(name), default)
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
    mapped: dict[str, str] = {}
    ignored: list[str] = []
    exact = {c: c for c in columns}
    folded = {c.lower(): c for c in columns}
    for src, target in spec["columns"].items():
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
    taken = set(mapped.values())
    free = [c for c in columns if c not in mapped and c not in ignored]
    keys = {c: column_key(c) for c in free}
    for name in kind_fields:
        if name in taken:
            continue
        for candidate in COLUMN_NAMES.get(name, ()):
            column = next((c for c in free if keys[c] == candidate and c not in mapped), None)
            if column is not None:
                mapped[column] = name
                break
    extra = [c for c in free if c not in mapped]
    values = {k: {str(a): str(b) for a, b in v.items()} for k, v in spec["values"].items()}
    defaults = dict(spec["defaults"])
    notes: list[str] = []
    for name, default in defaults.items():
        if name not in kind_fields:
            raise UploadRejected(
                f"default for {name!r}: the field does not apply to kind {kind!r}", value=default
            )
        vocab = _vocabulary_name(name)
        if vocab is not None:
            lookup = vocabulary_lookup(name, kind)
            lookup.update({value_key(a): b for a, b in values.get(name, {}).items()})
            code = lookup.get(value_key(default))
            if code is None:
                raise UploadRejected(
                    f"default {name}={default!r} is not in the {name} vocabulary", value=default
                )
            defaults[name] = code
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


# ------------------------------------------------------------------------------------------- conversion


def _text(source: pd.Series) -> pd.Series:
    """Source values as trimmed text, empty text as missing."""
    if pd.api.types.is_float_dtype(source.dtype):
        # 1234.0 read from a float column is the identifier "1234".
        as_int = source.dropna()
        if (as_int == np.floor(as_int)).all():
            text = source.astype("Int64").astype("string")
            return text
    text = source.astype("string").str.strip()
    return text.mask(text == "")


def _string_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An Arrow string column as a pandas ``string`` Series (missing values are ``pd.NA``)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), dtype=pd.StringDtype("pyarrow"))


def _convert_arrow(
    column: pa.ChunkedArray, type_: str, lookup: dict[str, str], default: Any
) -> tuple[pd.Series, pd.Series] | None:
    """``(raw, value)`` for the common typed cases, converted with Arrow compute; None for the others.

    Text and vocabulary columns that arrive as text, and dates that arrive as dates, take this
    path; the results are the same as :func:`_convert` on the pandas column.
    """
    t = column.type
    if type_ in ("text", "vocabulary") and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        arr = column.combine_chunks()
        trimmed = pc.utf8_trim_whitespace(arr)
        out = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)
        if type_ == "vocabulary":
            # Translate each distinct value once: a column of 500k rows has a handful of values.
            encoded = out.dictionary_encode()
            codes = [lookup.get(value_key(u), u) for u in encoded.dictionary.to_pylist()]
            out = pa.array(codes, pa.string()).take(encoded.indices)
        if default is not None:
            out = pc.fill_null(out, pa.scalar(str(default), out.type))
        return _string_series(arr), _string_series(out)
    if type_ == "date" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        # Dates as text: parse each distinct text once (a column has a few thousand dates at most).
        arr = column.combine_chunks()
        encoded = arr.dictionary_encode()
        parsed = parse_dates(pd.Series(encoded.dictionary.to_pylist(), dtype=object)).to_numpy()
        parsed = np.append(parsed, np.datetime64("NaT", "ns"))
        index = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy()
        out = pd.Series(parsed[index], dtype="datetime64[ns]")
        if default is not None:
            out = out.fillna(pd.Timestamp(default))
        return _string_series(arr), out
    if type_ == "date" and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        if pa.types.is_timestamp(t) and t.tz is not None:
            return None  # local dates need the time zone: the pandas path
        arr = column.combine_chunks()
        stamps = pd.Series(
            arr.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False), dtype="datetime64[ns]"
        )
        return stamps, parse_dates(stamps, default)
    return None


def _convert(source: pd.Series, type_: str, lookup: dict[str, str], default: Any) -> pd.Series:
    """Convert one column to its field type; values that do not convert come out missing (or unmatched text)."""
    if type_ in ("text", "vocabulary"):
        out = _text(source)
        if type_ == "vocabulary":
            # Translate each distinct value once: a column of 500k rows has a handful of values.
            positions, uniques = pd.factorize(out)
            translated = np.array([lookup.get(value_key(u), u) for u in uniques] + [None], dtype=object)
            out = pd.Series(translated[positions], index=out.index, dtype="string")
        if default is not None:
            out = out.fillna(default)
        return out
    if type_ in ("number", "integer"):
        if pd.api.types.is_numeric_dtype(source.dtype) and not pd.api.types.is_bool_dtype(source.dtype):
            out = source.astype(float)
        else:
            text = _text(source).str.replace(UNIT_SUFFIX, "", regex=True)
            out = pd.to_numeric(text, errors="coerce").astype(float)
        out = out.where(np.isfinite(out))
        return out.fillna(float(default)) if default is not None else out
    if type_ == "boolean":
        if pd.api.types.is_bool_dtype(source.dtype):
            out = source.astype("boolean")
        else:
            keys = _text(source).str.lower()
            out = pd.Series(pd.NA, index=source.index, dtype="boolean")
            out[keys.isin(TRUE_VALUES).fillna(False).to_numpy(bool)] = True
            out[keys.isin(FALSE_VALUES).fillna(False).to_numpy(bool)] = False
        if default is not None:
            out = out.fillna(bool(default))
        return out
    if type_ == "date":
        return parse_dates(source, default)
    return source


def parse_dates(source: pd.Series, default: Any = None) -> pd.Series:
    """Dates in the common UK forms (``dd/mm/yyyy``, ``yyyy-mm-dd``...), time of day ignored; others missing."""
    if pd.api.types.is_datetime64_any_dtype(source.dtype):
        out = pd.to_datetime(source).dt.tz_localize(None) if getattr(source.dt, "tz", None) else source
        return out.dt.normalize()
    text = _text(source).str.split(r"[T ]", n=1, regex=True).str[0]
    out = pd.Series(pd.NaT, index=source.index, dtype="datetime64[ns]")
    for fmt in DATE_FORMATS:
        missing = out.isna() & text.notna()
        if not missing.any():
            break
        out[missing] = pd.to_datetime(text[missing], format=fmt, errors="coerce")
    if default is not None:
        out = out.fillna(pd.Timestamp(default))
    return out


# ------------------------------------------------------------------------------------------------ extra


def extra_json(table: pa.Table, columns: list[str]) -> pa.Array:
    """One JSON object per row with the given columns, values kept as sent (vectorised with Arrow).

    The text is laid out as PostgreSQL prints jsonb (keys shortest first, then by their bytes;
    ``", "`` and ``": "`` between), so an unchanged row's text equals the stored value's
    (:mod:`geo.uploads.unchanged` compares them as text).
    """
    n = table.num_rows
    if not columns:
        return pa.array(["{}"] * n, type=pa.string())
    parts: list[Any] = []
    ordered = sorted(columns, key=lambda c: (len(str(c).encode()), str(c).encode()))
    for i, name in enumerate(ordered):
        parts.append(("{" if i == 0 else ", ") + json.dumps(str(name), ensure_ascii=False) + ": ")
        parts.append(_json_values(table.column(name)))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def _json_values(column: pa.ChunkedArray) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        out = arr.cast(pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(arr)
        out = pc.if_else(finite, arr.cast(pa.string()), pa.scalar(None, pa.string()))
    else:
        text = arr.cast(pa.string()) if not pa.types.is_string(t) else arr
        if pa.types.is_large_string(t):
            text = arr.cast(pa.string())
        needs_escape = pc.match_substring_regex(text, r'[\\"\x00-\x1f]')
        if pc.any(needs_escape).as_py():
            out = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False) for v in text.to_pylist()],
                type=pa.string(),
            )
        else:
            out = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(out, "null")
