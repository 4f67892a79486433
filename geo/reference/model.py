"""The asset model of ``data/asset_model.yaml``: kinds, vocabularies and fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import psycopg
import yaml
from psycopg import sql

from geo.core.settings import DATA_DIR
from geo.db import database

MODEL_FILE = DATA_DIR / "asset_model.yaml"
KINDS = ("public_building", "street_furniture", "duct")


@dataclass(frozen=True)
class Field:
    """One field of the standard asset model."""

    name: str
    type: str
    description: str
    vocabulary: str | None = None
    required: bool = False
    system: bool = False
    min: float | None = None
    max: float | None = None
    kinds: tuple[str, ...] = KINDS


@dataclass(frozen=True)
class AssetModel:
    """Kinds, vocabularies and fields, as the YAML defines them."""

    kinds: dict[str, dict[str, Any]]
    subtypes: dict[str, dict[str, str]]
    statuses: dict[str, dict[str, Any]]
    vocabularies: dict[str, dict[str, str]]
    fields: dict[str, Field] = field(default_factory=dict)

    def vocabulary(self, name: str, kind: str | None = None) -> set[str]:
        """The allowed codes of one vocabulary (subtypes need the kind)."""
        if name == "kinds":
            return set(self.kinds)
        if name == "subtypes":
            if kind is None:
                raise ValueError("the subtype vocabulary depends on the kind")
            return set(self.subtypes[kind])
        if name == "statuses":
            return set(self.statuses)
        return set(self.vocabularies[name])

    @property
    def usable_statuses(self) -> set[str]:
        """Statuses in which an asset can carry equipment today."""
        return {code for code, s in self.statuses.items() if s["usable"]}

    def attribute_fields(self) -> list[Field]:
        """Fields a borough's file may supply (not geometry, not the ones the service sets)."""
        skip = {"borough_code", "kind", "geom"}
        return [f for f in self.fields.values() if not f.system and f.name not in skip]


@cache
def load_model() -> AssetModel:
    """Read and check ``data/asset_model.yaml`` (cached)."""
    raw = yaml.load(
        MODEL_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )  # libyaml: 9x faster
    vocabularies = {name: dict(raw[name]) for name in ("survey_quality", "provenance", "power_source")}
    fields = {}
    for name, spec in raw["fields"].items():
        fields[name] = Field(
            name=name,
            type=spec["type"],
            description=spec["description"],
            vocabulary=spec.get("vocabulary"),
            required=spec.get("required", False),
            system=spec.get("system", False),
            min=spec.get("min"),
            max=spec.get("max"),
            kinds=tuple(spec.get("kinds", KINDS)),
        )
    model = AssetModel(
        kinds=raw["kinds"],
        subtypes=raw["subtypes"],
        statuses=raw["statuses"],
        vocabularies=vocabularies,
        fields=fields,
    )
    if tuple(model.kinds) != KINDS or set(model.subtypes) != set(KINDS):
        raise ValueError(f"{MODEL_FILE}: kinds must be exactly {KINDS}")
    return model


def _in_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def vocabulary_constraints() -> dict[str, str]:
    """The CHECK constraints on ``assets`` that the vocabularies imply, by constraint name."""
    model = load_model()
    pairs = " OR ".join(
        f"(kind = '{kind}' AND subtype IN ({_in_list(list(codes))}))"
        for kind, codes in model.subtypes.items()
    )
    return {
        "assets_subtype_vocabulary": pairs,
        "assets_status_vocabulary": f"status IN ({_in_list(list(model.statuses))})",
    }


def sync_vocabularies(conn: psycopg.Connection[Any]) -> None:
    """Upsert the subtype and status vocabularies and the CHECK constraints that enforce them.

    Codes are only ever added or relabelled, never deleted, so stored assets stay valid and a
    widened constraint validates at once. Constraints are rebuilt only when they differ.
    """
    model = load_model()
    with conn.cursor() as cur:
        # New codes are inserted and changed labels updated; unchanged rows are not touched (an
        # upsert would lock them, and every command's migration check would then flush the WAL).
        subtypes = [
            (kind, code, label) for kind, codes in model.subtypes.items() for code, label in codes.items()
        ]
        cur.executemany(
            "INSERT INTO asset_subtypes (kind, code, label) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            subtypes,
        )
        cur.executemany(
            "UPDATE asset_subtypes SET label = %s WHERE kind = %s AND code = %s AND label IS DISTINCT FROM %s",
            [(label, kind, code, label) for kind, code, label in subtypes],
        )
        statuses = [(code, s["label"], s["usable"]) for code, s in model.statuses.items()]
        cur.executemany(
            "INSERT INTO asset_statuses (code, label, usable) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            statuses,
        )
        cur.executemany(
            """UPDATE asset_statuses SET label = %s, usable = %s
               WHERE code = %s AND (label, usable) IS DISTINCT FROM (%s, %s)""",
            [(label, usable, code, label, usable) for code, label, usable in statuses],
        )
        for name, expression in vocabulary_constraints().items():
            cur.execute(
                "SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = %s", [name]
            )
            row = cur.fetchone()
            if row and row[0] == expression:
                continue
            ident = sql.Identifier(name)
            cur.execute(sql.SQL("ALTER TABLE assets DROP CONSTRAINT IF EXISTS {}").format(ident))
            cur.execute(
                sql.SQL("ALTER TABLE assets ADD CONSTRAINT {} CHECK ({})").format(ident, sql.SQL(expression))  # type: ignore[arg-type]
            )
            # The comment remembers the expression, so an unchanged vocabulary costs no table scan.
            cur.execute(
                sql.SQL("COMMENT ON CONSTRAINT {} ON assets IS {}").format(ident, sql.Literal(expression))
            )


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations (:func:`geo.db.database.migrate`), then sync the vocabularies of
    ``data/asset_model.yaml``: what every command that prepares a database runs."""
    return database.migrate(conn, then=sync_vocabularies)
