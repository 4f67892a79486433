"""OGC API Features queries: bbox (in CRS84 or British National Grid), filters, keyset paging.

Pages are in id order, except an asset layer's pages with a bbox: those are in place order,
``(asset_cell_key(geom), id)`` (:mod:`geo.layers.cells`), read range by range from the layer's
key index, so a page costs about its own rows however many the box holds; their cursor is
``key:id``.

Filters are the collection's own parameters (``borough``, ``subtype``…) and CQL2 (Part 3), read
and translated by :mod:`geo.layers.filtering` for the caller's role; both end as conditions of
the same statement.

The GeoJSON of each feature is written by PostGIS, and pages are joined as bytes, so a
10,000-feature page is never parsed or re-serialised in Python.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
import shapely
from psycopg import sql

from geo.access.principals import Principal
from geo.core.crs import Crs
from geo.core.errors import InvalidParameter, NotFound
from geo.core.query import BOX_SQL, Bbox, whole_number
from geo.layers import cells, filtering
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
    #: The cursor: the last id of the page before, or with :func:`by_place` its ``(key, id)``.
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


def by_place(collection: Collection, bbox: Bbox | None) -> bool:
    """Whether pages of the layer with this bbox are in place order (asset layers with a bbox)."""
    return collection.kind is not None and bbox is not None


def parse_after(collection: Collection, value: str | None, bbox: Bbox | None = None) -> Any:
    """The keyset cursor of a ``next`` link: an id, or ``key:id`` for pages in place order."""
    if value is None or value == "":
        return None
    if by_place(collection, bbox):
        key, colon, ident = value.partition(":")
        cursor = (whole_number(key), whole_number(ident))
        if not colon or None in cursor:
            raise InvalidParameter(
                f"after: {value[:40]!r} is not the cursor of a page with a bbox (key:id, as its next link gives)"
            )
        return cursor
    if collection.id_type == "int":
        return parse_id(value, "after")
    return value


def cursor_text(after: Any) -> str:
    """A cursor as its ``after`` parameter."""
    return f"{after[0]}:{after[1]}" if isinstance(after, tuple) else str(after)


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


#: The place key of an asset, as the layers' key indexes hold it (migration 0021).
CELL_KEY = sql.SQL("asset_cell_key(geom)")


def _order(collection: Collection, query: ItemsQuery) -> sql.Composable:
    """The page order: ``id``, or the place key and ``id``."""
    id_column = sql.SQL("{}.{}").format(
        sql.Identifier(collection.table), sql.Identifier(collection.id_column)
    )
    return sql.SQL("{}, {}").format(CELL_KEY, id_column) if by_place(collection, query.bbox) else id_column


def _after(
    collection: Collection,
    query: ItemsQuery,
    conds: list[sql.Composable],
    params: dict[str, Any],
    op: str = ">",
) -> None:
    if query.after is None:
        return
    if by_place(collection, query.bbox):
        conds.append(sql.SQL("({}, id) {} (%(after_key)s, %(after)s)").format(CELL_KEY, sql.SQL(op)))
        params["after_key"], params["after"] = query.after
    else:
        conds.append(sql.SQL("{} {} %(after)s").format(sql.Identifier(collection.id_column), sql.SQL(op)))
        params["after"] = query.after


def rows_statement(
    collection: Collection,
    query: ItemsQuery,
    limit: int,
    text: bool = False,
    covering: bool = False,
    coordinates: bool = False,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement of the file formats: the same rows as :func:`get_items` (conditions, cursor, order).

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
              WHERE {conds} ORDER BY {order} LIMIT %(limit)s) AS g"""
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
        order=_order(collection, query),
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
    """A page of features, ordered by id (or in place order, :func:`by_place`), after the cursor.

    Paging is keyset (``id > after``), so the 5,000th page costs what the first does.
    ``matched`` is given only when it is free: when the whole result fits in this page.
    """
    if by_place(collection, query.bbox):
        return await _get_items_by_place(conn, collection, query)
    conds, params = _conditions(collection, query)
    _after(collection, query, conds, params)
    with_box = sql.SQL("WITH " + BOX_SQL) if query.bbox is not None else sql.SQL("WITH")  # type: ignore[arg-type]
    from_box = sql.SQL(", b") if query.bbox is not None else sql.SQL("")
    statement = sql.SQL(
        """{with_box}{comma}
        -- The page's keys first: the GeoJSON is then built for these rows only, not for every
        -- row the bbox matches before the sort.
        page AS (SELECT {id} AS page_key FROM {table}{from_box} WHERE {conds} ORDER BY {id} LIMIT %(limit)s)
        SELECT {id}, {feature} FROM {table} JOIN page ON {id} = page.page_key
        ORDER BY {id}"""
    ).format(
        with_box=with_box,
        comma=sql.SQL(",") if query.bbox is not None else sql.SQL(""),
        id=sql.Identifier(collection.id_column),
        feature=_feature_json(
            collection, selected_properties(collection, query), query.crs.srid, query.crs.lat_first
        ),
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


def _feature_json(
    collection: Collection, properties: tuple[str, ...], srid: int, lat_first: bool
) -> sql.Composable:
    """A row as its GeoJSON Feature (text), written by PostGIS: id, geometry in ``srid``, ``properties``."""
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(p), sql.Identifier(p)) for p in properties
    )
    return sql.SQL(
        "json_build_object('type', 'Feature', 'id', {id}, 'geometry', {geometry}, "
        "'properties', json_build_object({properties}))::text"
    ).format(id=sql.Identifier(collection.id_column), geometry=_geometry(srid, lat_first), properties=pairs)


#: Rows first read at a time for a page in place order (doubled while the page is not full, up
#: to :data:`MAX_CHUNK_ROWS`).
CHUNK_ROWS = 200
MAX_CHUNK_ROWS = 6400


#: The key ranges and single keys of a bbox (:func:`cells.segments`): a client pages through one
#: box, and what a box is in British National Grid never changes (a few kB an entry).
_SEGMENTS: dict[tuple[Any, ...], tuple[list[tuple[int, int]], list[int]]] = {}
MAX_SEGMENTS = 256


async def _segments(
    conn: psycopg.AsyncConnection[Any], bbox: Bbox
) -> tuple[list[tuple[int, int]], list[int]]:
    """The key ranges and single keys of the box the pages test (:data:`BOX_SQL`), kept for the next page."""
    key = (*bbox.box, bbox.srid)
    if (found := _SEGMENTS.get(key)) is None:
        row = await (await conn.execute(
            f"WITH {BOX_SQL} SELECT ST_AsBinary(box), ST_XMin(box), ST_YMin(box), ST_XMax(box), ST_YMax(box) FROM b",  # type: ignore[arg-type]
            bbox.params(),
        )).fetchone()  # fmt: skip
        assert row is not None
        # A box of no width or height is a polygon GEOS may not even read: its envelope is the area then.
        area = shapely.box(*row[1:])
        if area.area > 0:
            area = shapely.from_wkb(bytes(row[0]))
        if len(_SEGMENTS) >= MAX_SEGMENTS:
            del _SEGMENTS[next(iter(_SEGMENTS))]
        found = _SEGMENTS[key] = cells.segments(area)
    return found


async def _get_items_by_place(
    conn: psycopg.AsyncConnection[Any], collection: Collection, query: ItemsQuery
) -> Page:
    """A page of an asset layer in a bbox, in ``(key, id)`` order: the box's key ranges read in turn.

    The ranges and single keys of the box (:func:`cells.segments`), in key order, are read as
    one stream: each from the layer's key index in order from the cursor, one after the other,
    until ``chunk`` rows are read in all; the box is tested on those rows. While the page is not
    full, the next chunk (twice as long) starts after the last row read. A page so reads about
    its own rows and those of its cells that lie outside the box, however many the box holds.
    """
    assert query.bbox is not None
    box_params = query.bbox.params()
    ranges, singles = await _segments(conn, query.bbox)

    def key_of(row: Any) -> tuple[int, int]:
        return cells.geometry_key(*row[:4]), row[4]

    conds, params = _conditions(collection, dataclasses.replace(query, bbox=None))
    params.update(box_params)
    need = query.limit + 1
    # Every range and single key, in key order: one stream of rows.
    segments = sorted([*ranges, *((key, key) for key in singles)])
    statement = sql.SQL(
        # The keys of the rows read are worked out here from their bounding boxes
        # (cells.geometry_key, the function's twin): asked of the function, they took half the time.
        # Each range is read in key order from the layer's key index (the LIMIT right on the
        # ordered scan: the planner never reads the box through the GiST index to sort it), the
        # ranges one after the other, and reading stops after ``chunk`` rows in all. The box is a
        # scalar subquery, not joined: joined, the sort carried its copy in every row (770 MB for
        # a London-wide box's thousands of vertices).
        """WITH {box}
        SELECT ST_XMin(p.geom), ST_YMin(p.geom), ST_XMax(p.geom), ST_YMax(p.geom), p.id,
               p.geom && (SELECT box FROM b) AND ST_Intersects(p.geom, (SELECT box FROM b))
        FROM unnest(%(lo)s::bigint[], %(hi)s::bigint[]) WITH ORDINALITY AS seg(lo, hi, n),
             LATERAL (SELECT id, geom, row_number() OVER (ORDER BY {key}, id) AS rn FROM {table}
                      WHERE {key} BETWEEN seg.lo AND seg.hi AND {conds}
                      ORDER BY {key}, id LIMIT %(chunk)s) AS p
        ORDER BY seg.n, p.rn LIMIT %(chunk)s"""
    )
    cursor = query.after
    page: list[Any] = []
    chunk = max(CHUNK_ROWS, 2 * need)
    while segments and len(page) < need:
        if cursor is not None:
            segments = [(max(lo, cursor[0]), hi) for lo, hi in segments if hi >= cursor[0]]
            params["after_key"], params["after"] = cursor
        params.update(lo=[lo for lo, _ in segments], hi=[hi for _, hi in segments], chunk=chunk)
        where = (
            [*conds, sql.SQL("({}, id) > (%(after_key)s, %(after)s)").format(CELL_KEY)] if cursor else conds
        )
        rows = await (await conn.execute(statement.format(
            box=sql.SQL(BOX_SQL),  # type: ignore[arg-type]
            key=CELL_KEY,
            table=sql.Identifier(collection.table),
            conds=sql.SQL(" AND ").join(where),
        ), params)).fetchall()  # fmt: skip
        page += [r for r in rows if r[5]]
        if len(rows) < chunk:
            break
        cursor = key_of(rows[-1])
        chunk = min(2 * chunk, MAX_CHUNK_ROWS)
    more = len(page) > query.limit
    page = page[: query.limit]
    # The GeoJSON of the page's rows only, once they are known.
    features_of = sql.SQL("SELECT id, {feature} FROM {table} WHERE id = ANY(%(ids)s)").format(
        feature=_feature_json(
            collection, selected_properties(collection, query), query.crs.srid, query.crs.lat_first
        ),
        table=sql.Identifier(collection.table),
    )
    ids = [r[4] for r in page]
    built = dict(await (await conn.execute(features_of, {"ids": ids})).fetchall()) if ids else {}
    features = b"[" + b",".join(built[i].encode() for i in ids) + b"]"
    matched = len(page) if (not more and query.after is None) else None
    return Page(features, len(page), key_of(page[-1]) if more else None, matched)


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
    statement = sql.SQL("SELECT {feature} FROM {table} WHERE {where} AND {id} = %s").format(
        feature=_feature_json(collection, collection.properties, srid, lat_first),
        id=sql.Identifier(collection.id_column),
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
    _after(collection, query, conds, params, "<=")
    params["limit"] = query.limit + 1
    place = by_place(collection, query.bbox)
    statement = sql.SQL(
        "{with_box} SELECT {columns} FROM {table}{from_box} WHERE {conds} ORDER BY {order} LIMIT %(limit)s"
    ).format(
        with_box=sql.SQL("WITH " + BOX_SQL) if query.bbox is not None else sql.SQL(""),  # type: ignore[arg-type]
        columns=sql.SQL("{}, id").format(CELL_KEY) if place else sql.Identifier(collection.id_column),
        table=sql.Identifier(collection.table),
        from_box=sql.SQL(", b") if query.bbox is not None else sql.SQL(""),
        conds=sql.SQL(" AND ").join(conds),
        order=sql.SQL("{} DESC, id DESC").format(CELL_KEY)
        if place
        else sql.SQL("{} DESC").format(sql.Identifier(collection.id_column)),
    )
    rows = await (await conn.execute(statement, params)).fetchall()
    if not rows:
        return False, None
    if len(rows) <= query.limit:
        return True, None
    return True, tuple(rows[query.limit]) if place else rows[query.limit][0]
