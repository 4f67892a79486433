"""What a caller may filter a collection by: its queryables, per role, and their JSON Schema.

A collection's queryables are the properties its items show (and ``id`` and ``geometry``), typed
from the database's own columns. Nothing a role cannot see is queryable, since a filter on a
hidden value would tell its caller that value one row at a time:

- wayleaves carry neither operator nor contacts (the collection's view does not show them);
- of an asset's ``extra`` (its file's unmapped columns) and ``changed_by`` (who wrote it),
  which :func:`geo.assets.project` shows only to admins and to the asset's own borough,
  everyone may filter by the ``extra`` fields ``CONNECTIVITY_ASSETS_PUBLIC_EXTRA`` makes
  public; admins by every field and ``changed_by``; a borough key by them too, but the value
  is NULL on other boroughs' assets, so such a filter never matches (or tells anything about)
  a row the key cannot read whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from geo.access.principals import Principal
from geo.layers.collections import Collection
from geo.reference.boroughs import GSS_CODES
from geo.reference.model import load_model

#: PostgreSQL types -> the queryable types of the JSON Schema (others are not queryable).
_PG_TYPES = {
    "text": "string", "varchar": "string", "bpchar": "string",
    "int2": "integer", "int4": "integer", "int8": "integer",
    "float4": "number", "float8": "number", "numeric": "number",
    "bool": "boolean", "date": "date", "timestamptz": "date-time", "timestamp": "date-time",
    "geometry": "geometry",
}  # fmt: skip
_GEOMETRY_FORMATS = {
    "Point": "geometry-point",
    "LineString": "geometry-linestring",
    "Polygon": "geometry-polygon",
    "MultiPolygon": "geometry-multipolygon",
}
#: Columns of an asset :func:`geo.assets.project` shows only to admins and the asset's borough.
RESTRICTED_COLUMNS = ("changed_by",)
EXTRA_PREFIX = "extra."
#: Most ``extra`` fields listed in a collection's queryables (any may be filtered by).
MAX_LISTED_EXTRA = 200

#: table -> column -> PostgreSQL type name; the schema does not change while the service runs.
_COLUMN_TYPES: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class Queryable:
    """One property a filter may name, and the SQL that reads it."""

    name: str
    #: ``string``, ``integer``, ``number``, ``boolean``, ``date``, ``date-time`` or ``geometry``.
    type: str
    #: The column of the collection's table, or (``extra_key``) a field of an asset's ``extra``.
    column: str | None = None
    extra_key: str | None = None
    #: The value shows only on this borough's rows (NULL on the others).
    only_borough: str | None = None
    description: str | None = None
    enum: tuple[str, ...] = ()
    geometry_format: str | None = None
    #: ``primary-geometry`` or ``primary-instant`` (OGC API Features Part 5's ``x-ogc-role``).
    role: str | None = None

    def schema(self) -> dict[str, Any]:
        """This property as JSON Schema."""
        out: dict[str, Any] = {"title": self.name}
        if self.type == "geometry":
            out["format"] = self.geometry_format or "geometry-any"
        elif self.type in ("date", "date-time"):
            out.update(type="string", format=self.type)
        else:
            out["type"] = self.type
        if self.enum:
            out["enum"] = list(self.enum)
        if self.description:
            out["description"] = self.description
        if self.role:
            out["x-ogc-role"] = self.role
        return out


@dataclass(frozen=True)
class Queryables:
    """The queryables of one collection for one caller."""

    collection: Collection
    fields: dict[str, Queryable]
    #: Whether any ``extra.<field>`` may be filtered by (admins, borough keys).
    extra_any: bool = False
    #: With ``extra_any``: the borough whose rows alone show ``extra`` (None: every row).
    extra_only_borough: str | None = None
    public_extra: tuple[str, ...] = ()

    def get(self, name: str) -> Queryable | None:
        """The queryable ``name`` names, or None when this caller may not filter by it."""
        if name in self.fields:
            return self.fields[name]
        if self.collection.kind is None or not name.startswith(EXTRA_PREFIX) or name == EXTRA_PREFIX:
            return None
        key = name[len(EXTRA_PREFIX) :]
        description = "A column of the asset's file that maps to no field of the model"
        if key in self.public_extra:
            return Queryable(name, "string", extra_key=key, description=description)
        if self.extra_any:
            return Queryable(
                name, "string", extra_key=key, only_borough=self.extra_only_borough, description=description
            )
        return None

    def names(self) -> list[str]:
        """The fixed names, for error messages (``extra.*`` when any field may be named)."""
        names = list(self.fields) + [EXTRA_PREFIX + k for k in self.public_extra]
        return names + ([EXTRA_PREFIX + "*"] if self.extra_any else [])


async def column_types(conn: psycopg.AsyncConnection[Any], table: str) -> dict[str, str]:
    """The PostgreSQL type of each column of ``table`` (read once per process)."""
    if table not in _COLUMN_TYPES:
        cur = await conn.execute(
            """SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
               WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped""",
            [table],
        )
        _COLUMN_TYPES[table] = {str(r[0]): str(r[1]) for r in await cur.fetchall()}
    return _COLUMN_TYPES[table]


def _enums(collection: Collection) -> dict[str, tuple[str, ...]]:
    enums: dict[str, tuple[str, ...]] = {"borough_code": GSS_CODES}
    for param, values in collection.vocabularies.items():
        enums[collection.filters.get(param, param)] = tuple(sorted(values()))
    if collection.kind is not None:
        model = load_model()
        enums["kind"] = (collection.kind,)
        for field in model.fields.values():
            if field.vocabulary and field.vocabulary not in ("subtypes", "statuses", "kinds"):
                enums.setdefault(field.name, tuple(sorted(model.vocabulary(field.vocabulary))))
    return enums


def _descriptions(collection: Collection) -> dict[str, str]:
    if collection.kind is None:
        return {}
    return {name: field.description for name, field in load_model().fields.items()}


async def queryables_for(
    conn: psycopg.AsyncConnection[Any],
    collection: Collection,
    principal: Principal,
    public_extra: tuple[str, ...] = (),
) -> Queryables:
    """The queryables of ``collection`` for ``principal`` (see the module docstring)."""
    types = await column_types(conn, collection.table)
    enums, descriptions = _enums(collection), _descriptions(collection)
    fields: dict[str, Queryable] = {
        "id": Queryable("id", _PG_TYPES.get(types.get(collection.id_column, ""), "string"), column=collection.id_column,
                        description="The feature's id"),
        "geometry": Queryable(
            "geometry", "geometry", column="geom", geometry_format=_GEOMETRY_FORMATS.get(collection.geometry_type),
            role="primary-geometry", description="In British National Grid; literals are read in filter-crs",
        ),
    }  # fmt: skip
    names = list(collection.properties)
    sees_restricted = collection.kind is not None and principal.role in ("admin", "borough")
    if sees_restricted:
        names += [c for c in RESTRICTED_COLUMNS if c not in names]
    for name in names:
        type_ = _PG_TYPES.get(types.get(name, ""))
        if type_ is None or type_ == "geometry":  # arrays (Pipeline tags), JSON: not comparable
            continue
        only = principal.borough_code if name in RESTRICTED_COLUMNS and not principal.is_admin else None
        description = descriptions.get(name)
        if only:
            description = f"{description or name} (shown only on your borough's assets)"
        fields[name] = Queryable(
            name,
            type_,
            column=name,
            only_borough=only,
            description=description,
            enum=enums.get(name, ()),
            role="primary-instant" if name == collection.datetime_column else None,
        )
    return Queryables(
        collection,
        fields,
        extra_any=sees_restricted,
        extra_only_borough=None if principal.is_admin else principal.borough_code,
        public_extra=tuple(public_extra) if collection.kind is not None else (),
    )


async def _extra_keys(conn: psycopg.AsyncConnection[Any], queryables: Queryables) -> list[str]:
    collection = queryables.collection
    keys = set(queryables.public_extra)
    if queryables.extra_any:
        only = queryables.extra_only_borough
        cur = await conn.execute(
            """SELECT DISTINCT k FROM assets, jsonb_object_keys(extra) AS k
               WHERE kind = %(kind)s AND retired_at IS NULL AND jsonb_typeof(extra) = 'object'
                 AND (%(only)s::text IS NULL OR borough_code = %(only)s::text)
               ORDER BY k LIMIT %(limit)s""",
            {"kind": collection.kind, "only": only, "limit": MAX_LISTED_EXTRA},
        )
        keys |= {r[0] for r in await cur.fetchall()}
    return sorted(keys)


async def queryables_schema(
    conn: psycopg.AsyncConnection[Any], queryables: Queryables, url: str
) -> dict[str, Any]:
    """The queryables as a JSON Schema (2020-12) document, as OGC API Features Part 3 serves it.

    ``queryables`` repeats the names in the list form of Part 3's drafts, the one GDAL's OAPIF
    driver reads to decide which parts of a ``-where`` it sends to the server.
    """
    properties = {name: q.schema() for name, q in queryables.fields.items()}
    for key in await _extra_keys(conn, queryables):
        extra = queryables.get(EXTRA_PREFIX + key)
        if extra is not None:
            properties[extra.name] = extra.schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": url,
        "type": "object",
        "title": queryables.collection.title,
        "description": (
            f"The properties of {queryables.collection.title.lower()} a filter may name (CQL2, "
            "filter-lang cql2-text or cql2-json), for the key that asked."
        ),
        "properties": properties,
        "additionalProperties": False,
        "queryables": [
            {"id": name, "type": schema.get("type", "geometry")} for name, schema in properties.items()
        ],
    }
