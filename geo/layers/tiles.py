"""Mapbox vector tiles from PostGIS, Martin-style: ``ST_AsMVT`` over stored Web Mercator geometry.

From the raw zoom (13 by default) a tile carries the features themselves, capped per tile.
Below it, point layers carry clusters (a count per grid cell, 32 x 32 cells a tile) and
line layers carry merged, simplified lines, both read from summary tables built after
each bulk write (``refresh_summaries``), so a London-wide z8 tile costs a few
milliseconds instead of half a second of on-the-fly clustering. Web maps draw grid clusters
from the same summaries, merged into 4 x 4 cells a tile (``cluster_cells``; the GLA map merges
them again into 2 x 2): one labelled symbol per cell, so symbols never pile into a mass.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import psycopg
from psycopg import sql

from geo.core.errors import InvalidParameter, NotFound
from geo.core.settings import TileSettings
from geo.db.versions import KnownVersions
from geo.layers.collections import COLLECTIONS, Collection
from geo.layers.features import data_version

EXTENT = 4096
BUFFER = 64
# Cluster cells per tile side at low zooms: a cluster every 16 px of a 512 px tile, finer than
# map clusterers' usual 40-80 px radius; 64 made z12 tiles of 4,000 clusters (15-20 ms).
CELLS = 32
HALF_WORLD = 20037508.342789244
WORLD = 2 * HALF_WORLD


class InvalidTile(NotFound):
    """z/x/y outside the tile matrix (404)."""


def check_tile(z: int, x: int, y: int, max_zoom: int) -> None:
    """Raise :class:`InvalidTile` unless z/x/y names a tile of the Web Mercator matrix."""
    if not 0 <= z <= max_zoom:
        raise InvalidTile(f"zoom {z} is outside 0..{max_zoom}")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidTile(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{2**z - 1} at zoom {z}")


# Summaries ---------------------------------------------------------------------------------------------
# Cells nest: a cell at zoom z holds the cells of zoom max_z whose indexes shifted right by
# (max_z - z) equal its own, so the finest grid is computed once from the geometries and every
# coarser zoom is integer arithmetic on it.
POINT_SUMMARY_SQL = f"""
WITH base AS MATERIALIZED (
    SELECT floor((ST_X(c) + {HALF_WORLD}) / ({WORLD} / 2 ^ %(max_z)s / {CELLS}))::int AS cx,
           floor(({HALF_WORLD} - ST_Y(c)) / ({WORLD} / 2 ^ %(max_z)s / {CELLS}))::int AS cy,
           borough_code, subtype, status, count(*) AS n, sum(ST_X(c)) AS sx, sum(ST_Y(c)) AS sy
    -- OFFSET 0 keeps the subquery: flattened, each use of c computed the centroid again (4 a row).
    FROM (SELECT ST_Centroid(geom_3857) AS c, borough_code, subtype, status
          FROM assets WHERE kind = %(kind)s AND retired_at IS NULL OFFSET 0) a
    GROUP BY 1, 2, 3, 4, 5
)
INSERT INTO tile_point_summaries (kind, z, cx, cy, borough_code, subtype, status, n, sx, sy)
SELECT %(kind)s, z, cx >> (%(max_z)s - z), cy >> (%(max_z)s - z), borough_code, subtype, status,
       sum(n), sum(sx), sum(sy)
FROM base CROSS JOIN generate_series(0, %(max_z)s) AS z(z)
-- The roll-up rows (attributes NULL) serve unfiltered tiles without a second GROUP BY.
GROUP BY GROUPING SETS ((1, 2, 3, 4, 5, 6, 7), (1, 2, 3, 4))
"""

LINE_SUMMARY_SQL = f"""
INSERT INTO tile_line_summaries (kind, z, borough_code, subtype, status, length_m, n, geom)
SELECT %(kind)s, z, borough_code, subtype, status, sum(length_m), count(*),
       ST_Simplify(ST_LineMerge(ST_Collect(geom_3857)), {WORLD} / 2 ^ z / 256, true)
FROM (
    SELECT z.z, a.borough_code, a.subtype, a.status, a.geom_3857, ST_Length(a.geom) AS length_m,
           floor((ST_X(ST_StartPoint(ST_GeometryN(a.geom_3857, 1))) + {HALF_WORLD}) / ({WORLD} / 2 ^ z.z))::int AS tx,
           floor(({HALF_WORLD} - ST_Y(ST_StartPoint(ST_GeometryN(a.geom_3857, 1)))) / ({WORLD} / 2 ^ z.z))::int AS ty
    FROM assets a CROSS JOIN generate_series(0, %(max_z)s) AS z(z)
    WHERE a.kind = %(kind)s AND a.retired_at IS NULL
) lines
GROUP BY GROUPING SETS ((z, tx, ty, borough_code, subtype, status), (z, tx, ty))
"""


def summary_grid(raw_min_zoom: int) -> str:
    """The grid the summaries are built on: cells per tile side and finest zoom, e.g. ``'32/12'``."""
    return f"{CELLS}/{raw_min_zoom - 1}"


# One rebuild of a kind at a time, across processes (each service worker, the CLI): two at once
# would each delete the rows they see and insert their own, leaving both sets.
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('tile_summaries'), hashtext(%(kind)s))"

RECORD_BUILD_SQL = """INSERT INTO tile_summary_builds (kind, built_from, grid)
SELECT %(kind)s, version, %(grid)s FROM data_versions WHERE layer = 'assets'
ON CONFLICT (kind) DO UPDATE SET built_from = EXCLUDED.built_from, grid = EXCLUDED.grid, built_at = now()"""


def refresh_statements(kind: str, low_zoom: str, raw_min_zoom: int) -> list[tuple[str, dict[str, Any]]]:
    """The SQL that rebuilds one kind's summaries, stamped with the current data version and grid."""
    table = "tile_point_summaries" if low_zoom == "points" else "tile_line_summaries"
    build = POINT_SUMMARY_SQL if low_zoom == "points" else LINE_SUMMARY_SQL
    params = {"kind": kind, "max_z": raw_min_zoom - 1, "grid": summary_grid(raw_min_zoom)}
    return [
        (LOCK_SQL, params),
        # Enough memory to hash the grouping sets; sorting them spills to disk and takes seconds.
        ("SET LOCAL work_mem = '256MB'", {}),
        (f"DELETE FROM {table} WHERE kind = %(kind)s", params),
        (build, params),
        (RECORD_BUILD_SQL, params),
    ]


# One borough's detail rows of a point layer (the roll-up rows are rebuilt from all boroughs' detail rows).
BOROUGH_POINT_SUMMARY_SQL = f"""
WITH base AS MATERIALIZED (
    SELECT floor((ST_X(c) + {HALF_WORLD}) / ({WORLD} / 2 ^ %(max_z)s / {CELLS}))::int AS cx,
           floor(({HALF_WORLD} - ST_Y(c)) / ({WORLD} / 2 ^ %(max_z)s / {CELLS}))::int AS cy,
           subtype, status, count(*) AS n, sum(ST_X(c)) AS sx, sum(ST_Y(c)) AS sy
    FROM (SELECT ST_Centroid(geom_3857) AS c, subtype, status
          FROM assets WHERE kind = %(kind)s AND borough_code = %(borough)s AND retired_at IS NULL OFFSET 0) a
    GROUP BY 1, 2, 3, 4
)
INSERT INTO tile_point_summaries (kind, z, cx, cy, borough_code, subtype, status, n, sx, sy)
SELECT %(kind)s, z, cx >> (%(max_z)s - z), cy >> (%(max_z)s - z), %(borough)s, subtype, status,
       sum(n), sum(sx), sum(sy)
FROM base CROSS JOIN generate_series(0, %(max_z)s) AS z(z)
GROUP BY 2, 3, 4, 6, 7
"""

ROLLUP_POINT_SUMMARY_SQL = """
INSERT INTO tile_point_summaries (kind, z, cx, cy, borough_code, subtype, status, n, sx, sy)
SELECT kind, z, cx, cy, NULL, NULL, NULL, sum(n), sum(sx), sum(sy)
FROM tile_point_summaries WHERE kind = %(kind)s AND borough_code IS NOT NULL
GROUP BY kind, z, cx, cy
"""


def borough_refresh_statements(
    kind: str, borough_code: str, raw_min_zoom: int
) -> list[tuple[str, dict[str, Any]]]:
    """The SQL that rebuilds one borough's share of a point layer's summaries (the others are unchanged)."""
    params = {
        "kind": kind,
        "borough": borough_code,
        "max_z": raw_min_zoom - 1,
        "grid": summary_grid(raw_min_zoom),
    }
    return [
        (LOCK_SQL, params),
        ("SET LOCAL work_mem = '256MB'", {}),
        ("DELETE FROM tile_point_summaries WHERE kind = %(kind)s AND borough_code = %(borough)s", params),
        (BOROUGH_POINT_SUMMARY_SQL, params),
        ("DELETE FROM tile_point_summaries WHERE kind = %(kind)s AND borough_code IS NULL", params),
        (ROLLUP_POINT_SUMMARY_SQL, params),
        (RECORD_BUILD_SQL, params),
    ]


def summaries_current(conn: psycopg.Connection[Any], kind: str, raw_min_zoom: int) -> bool:
    """Whether the kind's summaries were built from the current data version on the current grid
    (so a borough's share can be redone alone)."""
    row = conn.execute(
        """SELECT b.built_from = v.version AND b.grid IS NOT DISTINCT FROM %s
           FROM tile_summary_builds b, data_versions v
           WHERE b.kind = %s AND v.layer = 'assets'""",
        [summary_grid(raw_min_zoom), kind],
    ).fetchone()
    return bool(row and row[0])


async def stale_summary_kinds(
    conn: psycopg.AsyncConnection[Any], collections: list[Collection], raw_min_zoom: int
) -> list[str]:
    """The kinds whose summaries are missing, behind the data or of another grid (the service
    rebuilds them when it starts: after an upgrade, a crash, or a new raw zoom setting)."""
    kinds = sorted({c.kind for c in collections if c.kind and c.low_zoom in ("points", "lines")})
    cur = await conn.execute(
        """SELECT k.kind FROM unnest(%s::text[]) AS k(kind)
           LEFT JOIN tile_summary_builds b ON b.kind = k.kind
           CROSS JOIN (SELECT version FROM data_versions WHERE layer = 'assets') v
           WHERE b.kind IS NULL OR b.built_from <> v.version OR b.grid IS DISTINCT FROM %s
           ORDER BY k.kind""",
        [kinds, summary_grid(raw_min_zoom)],
    )
    return [row[0] for row in await cur.fetchall()]


def refresh_summaries(
    conn: psycopg.Connection[Any],
    collections: list[Collection],
    raw_min_zoom: int,
    *,
    borough_code: str | None = None,
) -> None:
    """Rebuild the low-zoom summaries of the given asset layers (call after bulk writes).

    With ``borough_code``, only that borough's assets changed since the summaries were current
    (the caller checked :func:`summaries_current` before writing): point layers then rebuild that
    borough's rows and the roll-up rows only; line layers are always rebuilt whole.

    Performance: about 2 s per 500,000 points on 2 cores (whole rebuild); ducts less.
    """
    for c in collections:
        if c.kind and c.low_zoom in ("points", "lines"):
            if borough_code is not None and c.low_zoom == "points":
                statements = borough_refresh_statements(c.kind, borough_code, raw_min_zoom)
            else:
                statements = refresh_statements(c.kind, c.low_zoom, raw_min_zoom)
            for statement, params in statements:
                conn.execute(statement.encode(), params)


async def refresh_summaries_async(
    conn: psycopg.AsyncConnection[Any],
    collections: list[Collection],
    raw_min_zoom: int,
    *,
    only_stale: bool = False,
) -> None:
    """:func:`refresh_summaries` on an async connection, in one transaction.

    With ``only_stale``, a kind found current once its lock is held (another process rebuilt
    it meanwhile) is left alone.
    """
    async with conn.transaction():
        for c in collections:
            if c.kind and c.low_zoom in ("points", "lines"):
                statements = refresh_statements(c.kind, c.low_zoom, raw_min_zoom)
                lock, params = statements[0]
                await conn.execute(lock.encode(), params)
                if only_stale and not await stale_summary_kinds(conn, [c], raw_min_zoom):
                    continue
                for statement, params in statements[1:]:
                    await conn.execute(statement.encode(), params)


async def summary_version(conn: psycopg.AsyncConnection[Any], collection: Collection) -> str:
    """The data version and grid the collection's summaries were built from ('0' when never built)."""
    cur = await conn.execute(
        "SELECT built_from, grid FROM tile_summary_builds WHERE kind = %s", [collection.kind]
    )
    row = await cur.fetchone()
    return f"{row[0]}.{row[1]}".replace("/", "-") if row else "0"


# Tile queries ------------------------------------------------------------------------------------------
def _filter_conditions(filters: dict[str, list[str]]) -> sql.Composable:
    parts = [
        sql.SQL("{} = ANY({})").format(sql.Identifier(c), sql.Placeholder(f"f_{c}")) for c in sorted(filters)
    ]
    return sql.SQL("").join(sql.SQL(" AND ") + p for p in parts)


def _raw_query(collection: Collection, filters: dict[str, list[str]]) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(p) for p in collection.tile_properties)
    return sql.SQL(
        """WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,
                         ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}) AS benv),
        f AS (SELECT {id} AS id, {columns}, ST_AsMVTGeom({geom}, t.env, {extent}, {buffer}, true) AS geom
              FROM {table}, t
              WHERE {where} AND {geom} && t.benv{filters}
              LIMIT %(cap)s)
        SELECT ST_AsMVT(f, %(layer)s, {extent}, 'geom', 'id') FROM f"""
    ).format(
        margin=sql.Literal(BUFFER / EXTENT),
        id=sql.Identifier(collection.id_column) if collection.id_type == "int" else sql.SQL("NULL::int"),
        columns=columns,
        geom=sql.SQL("geom_3857"),
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
        table=sql.Identifier(collection.table),
        where=sql.SQL(collection.where),  # type: ignore[arg-type]
        filters=_filter_conditions(filters),
    )


def _summary_rows(filters: dict[str, list[str]]) -> sql.Composable:
    """Unfiltered tiles read the roll-up rows; filtered ones the detail rows that match."""
    if not filters:
        return sql.SQL(" AND borough_code IS NULL AND subtype IS NULL AND status IS NULL")
    return sql.SQL(" AND borough_code IS NOT NULL") + _filter_conditions(filters)


def _points_query(filters: dict[str, list[str]]) -> sql.Composed:
    return sql.SQL(
        """WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env),
        c AS (SELECT sum(n)::int AS count, sum(sx) / sum(n) AS mx, sum(sy) / sum(n) AS my
              FROM tile_point_summaries
              WHERE kind = %(kind)s AND z = %(z)s
                AND cx BETWEEN %(x)s * {cells} AND %(x)s * {cells} + {last}
                AND cy BETWEEN %(y)s * {cells} AND %(y)s * {cells} + {last}{rows}
              GROUP BY cx, cy),
        f AS (SELECT count, ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(mx, my), 3857), t.env, {extent}, {buffer}, true) AS geom
              FROM c, t)
        SELECT ST_AsMVT(f, %(layer)s, {extent}, 'geom') FROM f"""
    ).format(
        cells=sql.Literal(CELLS),
        last=sql.Literal(CELLS - 1),
        rows=_summary_rows(filters),
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
    )


def _lines_query(filters: dict[str, list[str]]) -> sql.Composed:
    return sql.SQL(
        """WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,
                         ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}) AS benv),
        f AS (SELECT round(length_m)::int AS length_m, n AS count,
                     ST_AsMVTGeom(geom, t.env, {extent}, {buffer}, true) AS geom
              FROM tile_line_summaries, t
              WHERE kind = %(kind)s AND z = %(z)s AND geom && t.benv{rows})
        SELECT ST_AsMVT(f, %(layer)s, {extent}, 'geom') FROM f WHERE geom IS NOT NULL"""
    ).format(
        margin=sql.Literal(BUFFER / EXTENT),
        rows=_summary_rows(filters),
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
    )


# Grid clusters ------------------------------------------------------------------------------------------
#: Cluster cells per tile side for a map's grid clusters: one every 64 px of a 256 px tile, each
#: the sum of 8 x 8 summary cells, so a cluster tile costs what a summary tile does.
CLUSTER_CELLS = 4
_MERGE = CELLS // CLUSTER_CELLS


class NoClusters(NotFound):
    """The collection is not a point layer: it has no clusters (404)."""


def _clusters_query(filters: dict[str, list[str]]) -> sql.Composed:
    return sql.SQL(
        """SELECT (cx - %(x)s * {cells}) / {merge} AS i, (cy - %(y)s * {cells}) / {merge} AS j,
                  sum(n)::int, sum(sx) / sum(n), sum(sy) / sum(n)
           FROM tile_point_summaries
           WHERE kind = %(kind)s AND z = %(z)s
             AND cx BETWEEN %(x)s * {cells} AND %(x)s * {cells} + {last}
             AND cy BETWEEN %(y)s * {cells} AND %(y)s * {cells} + {last}{rows}
           GROUP BY 1, 2 ORDER BY 1, 2"""
    ).format(
        cells=sql.Literal(CELLS),
        merge=sql.Literal(_MERGE),
        last=sql.Literal(CELLS - 1),
        rows=_summary_rows(filters),
    )


def check_clusters(collection: Collection, z: int, raw_min_zoom: int) -> None:
    """Raise unless the collection has clusters at zoom ``z`` (point layers, below the raw zoom)."""
    if collection.low_zoom != "points":
        points = ", ".join(sorted(c.id for c in COLLECTIONS.values() if c.low_zoom == "points"))
        raise NoClusters(f"collection {collection.id!r} has no clusters; point layers have: {points}")
    if not 0 <= z < raw_min_zoom:
        raise InvalidParameter(
            f"z: clusters are made at zooms 0 to {raw_min_zoom - 1}; from zoom {raw_min_zoom} "
            f"the tiles (/tiles/{collection.id}/{{z}}/{{x}}/{{y}}.mvt) carry each feature"
        )


async def cluster_cells(
    conn: psycopg.AsyncConnection[Any],
    collection: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """The grid clusters of one tile: a count per cell of a :data:`CLUSTER_CELLS` grid, with the mean position.

    Call :func:`check_clusters` first. Each cell is ``{"i", "j", "count", "x", "y"}``: its column and
    row (0 at the west and north edges) and the mean position of its assets in pixels of a 256-pixel
    tile, so a map can draw one symbol per cell, kept inside the cell, whose symbols never overlap.

    Performance: one indexed range of the summary table, like a low-zoom tile (about a millisecond).
    """
    params: dict[str, Any] = {"z": z, "x": x, "y": y, "kind": collection.kind}
    params.update({f"f_{c}": v for c, v in filters.items()})
    cur = await conn.execute(_clusters_query(filters), params)
    size = WORLD / 2**z
    west, north = x * size - HALF_WORLD, HALF_WORLD - y * size
    return [
        {
            "i": int(i),
            "j": int(j),
            "count": int(n),
            "x": round((mx - west) / size * 256, 1),
            "y": round((north - my) / size * 256, 1),
        }
        for i, j, n, mx, my in await cur.fetchall()
    ]


async def cached_clusters(
    cache: TileCache,
    version: str,
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    collection: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
) -> bytes:
    """A cluster tile as JSON bytes (``collection, z, x, y, cells_per_side, cells``), cached like tiles."""
    key = (
        "clusters",
        collection.id,
        z,
        x,
        y,
        tuple(sorted((k, tuple(v)) for k, v in filters.items())),
        version,
    )
    body = cache.get(key)
    if body is None:
        cells = await cluster_cells(await connect(), collection, z, x, y, filters)
        answer = {"collection": collection.id, "z": z, "x": x, "y": y, "cells_per_side": CLUSTER_CELLS}
        body = json.dumps({**answer, "cells": cells}, separators=(",", ":")).encode()
        cache.put(key, body)
    return body


async def get_tile(
    conn: psycopg.AsyncConnection[Any],
    collection: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
    raw_min_zoom: int,
    max_features: int,
) -> bytes:
    """One tile of a collection as MVT bytes (empty bytes when nothing is in it)."""
    params: dict[str, Any] = {"z": z, "x": x, "y": y, "layer": collection.id, "kind": collection.kind}
    params.update({f"f_{c}": v for c, v in filters.items()})
    if z >= raw_min_zoom or collection.low_zoom == "raw":
        query = _raw_query(collection, filters)
        params["cap"] = max_features
    elif collection.low_zoom == "points":
        query = _points_query(filters)
    else:
        query = _lines_query(filters)
    cur = await conn.execute(query, params, binary=True)
    row = await cur.fetchone()
    return bytes(row[0]) if row and row[0] else b""


class TileCache:
    """Finished tiles, least recently used dropped first, within ``max_bytes`` and ``max_entries``.

    Keys carry the layer's data version (see the tile route), so a write to the layer makes
    new keys and a stale tile is never served: it just ages out. One per worker process,
    used from its event loop only (no lock). ``max_bytes`` 0 keeps nothing.

    An entry costs its body, its key and :data:`ENTRY_OVERHEAD` (the dictionary's and the
    objects' own memory): thousands of empty tiles, or keys with long filters, fill the cache
    as surely as large tiles do, and then age out.
    """

    #: Bytes an entry costs beyond its body and key: the dict slot, the key tuple, the bytes object.
    ENTRY_OVERHEAD = 512

    def __init__(self, max_bytes: int, max_entries: int = 100_000) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.size = 0
        self._tiles: OrderedDict[Hashable, tuple[bytes, int]] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        """The tile stored under ``key`` (now the most recently used), or None."""
        found = self._tiles.get(key)
        if found is None:
            return None
        self._tiles.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, body: bytes) -> None:
        """Keep a tile, dropping the least recently used ones beyond the limits."""
        cost = len(body) + len(repr(key)) + self.ENTRY_OVERHEAD
        if cost > self.max_bytes // 8:  # no single tile may take over the cache
            return
        old = self._tiles.pop(key, None)
        self.size += cost - (old[1] if old is not None else 0)
        self._tiles[key] = (body, cost)
        while self.size > self.max_bytes or len(self._tiles) > self.max_entries:
            _, (_, dropped) = self._tiles.popitem(last=False)
            self.size -= dropped

    def __len__(self) -> int:
        return len(self._tiles)


def _from_summaries(collection: Collection, z: int, raw_min_zoom: int) -> bool:
    return z < raw_min_zoom and collection.low_zoom != "raw"


async def tile_version(
    conn: psycopg.AsyncConnection[Any], collection: Collection, z: int, raw_min_zoom: int
) -> str:
    """What a tile's content follows: its summaries' build below the raw zoom, the layer's data above."""
    if _from_summaries(collection, z, raw_min_zoom):
        return await summary_version(conn, collection)
    return str(await data_version(conn, collection.version_layer))


async def known_tile_version(
    versions: KnownVersions,
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    collection: Collection,
    z: int,
    raw_min_zoom: int,
) -> str:
    """:func:`tile_version` as this worker knows it; ``connect()`` is called only to read it anew."""
    if _from_summaries(collection, z, raw_min_zoom):
        key = ("summaries", str(collection.kind))
    else:
        key = ("data", collection.version_layer)

    async def read() -> str:
        return await tile_version(await connect(), collection, z, raw_min_zoom)

    return await versions.get(key, read)


async def cached_tile(
    cache: TileCache,
    version: str | None,
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    collection: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
    settings: TileSettings,
    *,
    gzipped: bool,
) -> bytes:
    """A tile from the cache, or made and kept there; gzip-compressed if asked (and not empty).

    ``version`` is :func:`tile_version`'s; None (a time-dependent layer) bypasses the cache.
    ``connect()`` gives the connection to make the tile with (taken only on a miss).
    """
    key = (collection.id, z, x, y, tuple(sorted((k, tuple(v)) for k, v in filters.items())), version, gzipped)
    body = cache.get(key) if version is not None else None
    if body is None:
        body = await get_tile(
            await connect(), collection, z, x, y, filters, settings.raw_min_zoom, settings.max_features
        )
        if gzipped and body:
            body = gzip.compress(body, compresslevel=5)
        if version is not None:
            cache.put(key, body)
    return body


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The WGS84 bounds (west, south, east, north) of a tile."""

    def lon(tx: int) -> float:
        return tx / 2**z * 360 - 180

    def lat(ty: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ty / 2**z))))

    return lon(x), lat(y + 1), lon(x + 1), lat(y)
