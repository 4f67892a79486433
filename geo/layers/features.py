"""OGC API Features queries: bbox (in CRS84 or British National Grid), filters, keyset paging.

Filters are the collection's own parameters (``borough``, ``subtype``…) and CQL2 (Part 3), read
and translated by :mod:`geo.layers.filtering` for the caller's role; both end as conditions of
the same statement.

The GeoJSON of each feature is written by PostGIS, and pages are joined as bytes, so a
10,000-feature page is never parsed or re-serialised in Python.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from geo.access.principals import Principal
from geo.core.crs import Crs
from geo.core.errors import InvalidParameter, NotFound
from geo.core.query import BOX_SQL, Bbox, whole_number
from geo.layers import filtering
from geo.layers.collections import Collection
from geo.reference.boroughs import UnknownBorough, check_code

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
#: The columns of each geometry's bounding box in :func:`rows_statement` (GeoParquet's covering).
BBOX_COLUMNS = {"xmin": "ST_XMin", "ymin": "ST_YMin", "xmax": "ST_XMax", "ymax": "ST_YMax"}


class FeatureNotFound(NotFound):
    """The collection has no feature with that id (404)."""


@dataclass(frozen=True)
class ItemsQuery:
    """What one items request asks for, parsed and checked."""

    limit: int = DEFAULT_LIMIT
    after: Any = None
    bbox: Bbox | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    datetime_from: dt.datetime | None = None
    datetime_to: dt.datetime | None = None
    properties: tuple[str, ...] | None = None
    crs: Crs = Crs(4326)
    #: A CQL2 filter (:func:`geo.layers.filtering.compile_filter`).
    where: filtering.Compiled | None = None


def parse_id(value: str, name: str) -> int:
    """An integer id or cursor (400 otherwise)."""
    number = whole_number(value)
    if number is None:
        raise InvalidParameter(f"{name}: {value[:40]!r} is not a feature id (an integer)")
    return number


def parse_datetime(value: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """An instant or an interval (``a/b``, ``../b``, ``a/..``) as a closed range."""
    if value is None or value == "":
        return None, None

    def one(text: str) -> dt.datetime | None:
        if text in ("", ".."):
            return None
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameter(f"datetime: {text!r} is not an RFC 3339 date-time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

    if "/" in value:
        start, _, end = value.partition("/")
        lo, hi = one(start), one(end)
        if lo and hi and lo > hi:
            raise InvalidParameter(f"datetime: {value!r} ends before it starts")
        return lo, hi
    moment = one(value)
    return moment, moment


def parse_filters(collection: Collection, raw: dict[str, str | None]) -> dict[str, list[str]]:
    """Property filters: comma-separated values, checked against the vocabularies."""
    filters: dict[str, list[str]] = {}
    for name, value in raw.items():
        if value is None or value == "":
            continue
        if name not in collection.filters:
            raise InvalidParameter(f"{name}: collection {collection.id!r} cannot be filtered by {name}")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if name == "borough":
            try:
                values = [check_code(v) for v in values]
            except UnknownBorough as exc:
                raise InvalidParameter(f"borough: {exc}") from None
        elif name in collection.vocabularies:
            _check_values(name, values, collection.vocabularies[name]())
        # Sorted and without repeats: equal filters are one cache key, whatever their order.
        filters[collection.filters[name]] = sorted(set(values))
    return filters


def filter_values(collection: Collection, query: dict[str, str]) -> dict[str, str | None]:
    """The filter parameters of a request: the collection's own, and the common ones if sent."""
    names = set(collection.filters) | {"borough", "subtype", "status"}
    return {name: query.get(name) for name in sorted(names) if query.get(name) is not None}


def _check_values(name: str, values: list[str], allowed: set[str]) -> None:
    for v in values:
        if v not in allowed:
            raise InvalidParameter(f"{name}: {v!r} is not one of {', '.join(sorted(allowed))}")


async def get_queryables(
    conn: psycopg.AsyncConnection[Any],
    collection: Collection,
    principal: Principal,
    url: str,
    public_extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The collection's queryables for ``principal``, as the JSON Schema ``/queryables`` serves (``$id``: ``url``)."""
    queryables = await filtering.queryables_for(conn, collection, principal, public_extra)
    return await filtering.queryables_schema(conn, queryables, url)


def parse_properties(collection: Collection, value: str | None) -> tuple[str, ...] | None:
    """The ``properties=`` selection, checked against the collection's properties."""
    if value is None:
        return None
    names = tuple(p.strip() for p in value.split(",") if p.strip())
    unknown = [p for p in names if p not in collection.properties]
    if unknown:
        raise InvalidParameter(
            f"properties: {', '.join(unknown)} not in collection {collection.id!r}; "
            f"available: {', '.join(collection.properties)}"
        )
    return names


def parse_after(collection: Collection, value: str | None) -> Any:
    """The keyset cursor of a ``next`` link."""
    if value is None or value == "":
        return None
    if collection.id_type == "int":
        return parse_id(value, "after")
    return value


def _geometry(srid: int, lat_first: bool) -> sql.Composable:
    geom = sql.SQL("geom") if srid == 27700 else sql.SQL("ST_Transform(geom, {})").format(sql.Literal(srid))
    if lat_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    digits = 2 if srid in (27700, 3857) else 7
    # Option 0: no "crs" member (RFC 7946 has none; the CRS travels in the Content-Crs header).
    return sql.SQL("ST_AsGeoJSON({}, {}, 0)::json").format(geom, sql.Literal(digits))


def _conditions(collection: Collection, query: ItemsQuery) -> tuple[list[sql.Composable], dict[str, Any]]:
    conds: list[sql.Composable] = [sql.SQL(collection.where)]  # type: ignore[arg-type]
    params: dict[str, Any] = {}
    if query.bbox is not None:
        conds.append(sql.SQL("geom && b.box AND ST_Intersects(geom, b.box)"))
        params.update(query.bbox.params())
    for column, values in query.filters.items():
        key = f"f_{column}"
        conds.append(sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(key)))
        params[key] = values
    if collection.datetime_column and (query.datetime_from or query.datetime_to):
        dt_column = sql.Identifier(collection.datetime_column)
        if query.datetime_from:
            conds.append(sql.SQL("{} >= %(dt_from)s").format(dt_column))
            params["dt_from"] = query.datetime_from
        if query.datetime_to:
            conds.append(sql.SQL("{} <= %(dt_to)s").format(dt_column))
            params["dt_to"] = query.datetime_to
    if query.where is not None:
        conds.append(query.where.sql)
        params.update(query.where.params)
    return conds, params


def selected_properties(collection: Collection, query: ItemsQuery) -> tuple[str, ...]:
    """The properties a response carries: the ``properties=`` selection, else all the collection shows.

    The one list of what leaves the service for a layer, in GeoJSON and in every file format:
    a collection's :attr:`~geo.layers.collections.Collection.properties` never name a column a
    role may not see (an asset's ``extra`` and ``changed_by``, a wayleave's operator).
    """
    return query.properties if query.properties is not None else collection.properties


def _after(
    collection: Collection, query: ItemsQuery, conds: list[sql.Composable], params: dict[str, Any]
) -> None:
    if query.after is not None:
        conds.append(sql.SQL("{} > %(after)s").format(sql.Identifier(collection.id_column)))
        params["after"] = query.after


def rows_statement(
    collection: Collection,
    query: ItemsQuery,
    limit: int,
    text: bool = False,
    covering: bool = False,
    coordinates: bool = False,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement of the file formats: the same rows as :func:`get_items` (conditions, cursor, id order).

    Columns: ``id`` (the feature id), the :func:`selected_properties`, ``geometry`` in
    ``query.crs`` with x (longitude, easting) first whatever the CRS's axis order (as files
    store it), as WKB (with ``covering``, followed by its ``xmin``, ``ymin``, ``xmax``, ``ymax``)
    or with ``text`` as WKT; with ``coordinates`` also ``x`` and ``y`` of a point (NULL for
    other geometries).
    At most ``limit`` rows.
    """
    props = selected_properties(collection, query)
    conds, params = _conditions(collection, query)
    _after(collection, query, conds, params)
    srid = query.crs.srid
    geom = sql.SQL("geom") if srid == 27700 else sql.SQL("ST_Transform(geom, {})").format(sql.Literal(srid))
    if text:
        digits = 2 if srid in (27700, 3857) else 7
        columns: list[sql.Composable] = [
            sql.SQL("ST_AsText(g.shape, {}) AS geometry").format(sql.Literal(digits))
        ]
    else:
        columns = [sql.SQL("ST_AsBinary(g.shape) AS geometry")]
    if covering:
        columns += [
            sql.SQL("{}(g.shape) AS {}").format(sql.SQL(function), sql.Identifier(name))
            for name, function in BBOX_COLUMNS.items()
        ]
    if coordinates:
        columns += [
            sql.SQL("CASE WHEN GeometryType(g.shape) = 'POINT' THEN ST_{}(g.shape) END AS {}").format(
                sql.SQL(axis.upper()), sql.Identifier(axis)
            )
            for axis in ("x", "y")
        ]
    statement = sql.SQL(
        # The LIMIT keeps the inner query from being merged into the outer one, so the geometry
        # is transformed once per row, however many of the outer columns read it.
        """{with_box} SELECT g.id{comma}{outer}, {columns}
        FROM (SELECT {id} AS id{comma}{properties}, {geom} AS shape FROM {table}{from_box}
              WHERE {conds} ORDER BY {id} LIMIT %(limit)s) AS g"""
    ).format(
        with_box=sql.SQL("WITH " + BOX_SQL) if query.bbox is not None else sql.SQL(""),  # type: ignore[arg-type]
        id=sql.SQL("{}.{}").format(sql.Identifier(collection.table), sql.Identifier(collection.id_column)),
        comma=sql.SQL(", ") if props else sql.SQL(""),
        outer=sql.SQL(", ").join(sql.SQL("g.{}").format(sql.Identifier(p)) for p in props),
        properties=sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(collection.table), sql.Identifier(p)) for p in props
        ),
        columns=sql.SQL(", ").join(columns),
        table=sql.Identifier(collection.table),
        from_box=sql.SQL(", b") if query.bbox is not None else sql.SQL(""),
        geom=geom,
        conds=sql.SQL(" AND ").join(conds),
    )
    params["limit"] = limit
    return statement, params


@dataclass(frozen=True)
class Page:
    """One page of features: the GeoJSON features as bytes, and the cursor of the next page."""

    features: bytes
    returned: int
    next_after: Any
    matched: int | None


async def get_items(conn: psycopg.AsyncConnection[Any], collection: Collection, query: ItemsQuery) -> Page:
    """A page of features, ordered by id, after the cursor.

    Paging is keyset (``id > after``), so the 5,000th page costs what the first does.
    ``matched`` is given only when it is free: when the whole result fits in this page.
    """
    props = selected_properties(collection, query)
    conds, params = _conditions(collection, query)
    _after(collection, query, conds, params)
    with_box = sql.SQL("WITH " + BOX_SQL) if query.bbox is not None else sql.SQL("WITH")  # type: ignore[arg-type]
    from_box = sql.SQL(", b") if query.bbox is not None else sql.SQL("")
    properties = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(p), sql.Identifier(p)) for p in props
    )
    statement = sql.SQL(
        """{with_box}{comma}
        -- The page's keys first: the GeoJSON is then built for these rows only, not for every
        -- row the bbox matches before the sort.
        page AS (SELECT {id} AS page_key FROM {table}{from_box} WHERE {conds} ORDER BY {id} LIMIT %(limit)s)
        SELECT {id}, json_build_object('type', 'Feature', 'id', {id}, 'geometry', {geometry},
                                       'properties', json_build_object({properties}))::text
        FROM {table} JOIN page ON {id} = page.page_key
        ORDER BY {id}"""
    ).format(
        with_box=with_box,
        comma=sql.SQL(",") if query.bbox is not None else sql.SQL(""),
        id=sql.Identifier(collection.id_column),
        geometry=_geometry(query.crs.srid, query.crs.lat_first),
        properties=properties if props else sql.SQL(""),
        table=sql.Identifier(collection.table),
        from_box=from_box,
        conds=sql.SQL(" AND ").join(conds),
    )
    params["limit"] = query.limit + 1
    cur = await conn.execute(statement, params)
    rows = await cur.fetchall()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    features = b"[" + b",".join(r[1].encode() for r in rows) + b"]"
    matched = len(rows) if (not more and query.after is None) else None
    return Page(features, len(rows), rows[-1][0] if more else None, matched)


async def get_feature(
    conn: psycopg.AsyncConnection[Any], collection: Collection, feature_id: str, srid: int, lat_first: bool
) -> bytes:
    """One feature as GeoJSON bytes, or :class:`FeatureNotFound`."""
    missing = FeatureNotFound(f"collection {collection.id!r} has no feature {feature_id!r}")
    if collection.id_type == "int":
        key: Any = whole_number(feature_id)
        if key is None:
            raise missing
    else:
        key = feature_id
    properties = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(p), sql.Identifier(p)) for p in collection.properties
    )
    statement = sql.SQL(
        """SELECT json_build_object('type', 'Feature', 'id', {id}, 'geometry', {geometry},
                                    'properties', json_build_object({properties}))::text
           FROM {table} WHERE {where} AND {id} = %s"""
    ).format(
        id=sql.Identifier(collection.id_column),
        geometry=_geometry(srid, lat_first),
        properties=properties,
        table=sql.Identifier(collection.table),
        where=sql.SQL(collection.where),  # type: ignore[arg-type]
    )
    cur = await conn.execute(statement, [key])
    row = await cur.fetchone()
    if row is None:
        raise missing
    return row[0].encode()


async def get_extent(conn: psycopg.AsyncConnection[Any], collection: Collection) -> list[float] | None:
    """The collection's CRS84 bounding box (None when it is empty)."""
    statement = sql.SQL(
        "SELECT ST_AsGeoJSON(ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, 27700), 4326), 6) FROM {} WHERE {}"
    ).format(sql.Identifier(collection.table), sql.SQL(collection.where))  # type: ignore[arg-type]
    cur = await conn.execute(statement)
    row = await cur.fetchone()
    if not row or row[0] is None:
        return None
    geometry = json.loads(row[0])
    coords = geometry["coordinates"][0] if geometry["type"] == "Polygon" else [geometry["coordinates"]]
    xs = [c[0] for c in coords]
    ys = [c[1] for c in coords]
    return [min(xs), min(ys), max(xs), max(ys)]


async def data_version(conn: psycopg.AsyncConnection[Any], layer: str) -> int:
    """The current data version of a layer source (changes with every write)."""
    cur = await conn.execute("SELECT version FROM data_versions WHERE layer = %s", [layer])
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def previous_after(
    conn: psycopg.AsyncConnection[Any], collection: Collection, query: ItemsQuery
) -> tuple[bool, Any]:
    """Whether the page of ``query`` has one before it, and that page's cursor (None: the first page).

    The same conditions as :func:`get_items`, read backwards from the cursor: the page before
    holds the ``limit`` ids at or below it, and starts after the next lower one. (For the HTML
    pages' "Previous" link; the JSON pages, as OGC API Features, link forward only.)
    """
    if query.after is None:
        return False, None
    conds, params = _conditions(collection, query)
    conds.append(sql.SQL("{} <= %(after)s").format(sql.Identifier(collection.id_column)))
    params.update(after=query.after, limit=query.limit + 1)
    statement = sql.SQL(
        "{with_box} SELECT {id} FROM {table}{from_box} WHERE {conds} ORDER BY {id} DESC LIMIT %(limit)s"
    ).format(
        with_box=sql.SQL("WITH " + BOX_SQL) if query.bbox is not None else sql.SQL(""),  # type: ignore[arg-type]
        id=sql.Identifier(collection.id_column),
        table=sql.Identifier(collection.table),
        from_box=sql.SQL(", b") if query.bbox is not None else sql.SQL(""),
        conds=sql.SQL(" AND ").join(conds),
    )
    rows = await (await conn.execute(statement, params)).fetchall()
    if not rows:
        return False, None
    return True, rows[query.limit][0] if len(rows) > query.limit else None
