"""Mapbox vector tiles from PostGIS, Martin-style: ``ST_AsMVT`` over stored Web Mercator geometry.

From the raw zoom (13 by default) a tile carries the features themselves, capped per tile.
Below it, point layers carry clusters (a count per grid cell, 32 x 32 cells a tile) and
line layers carry merged, simplified lines, both read from summary tables built after
each bulk write (:mod:`geo.layers.tile_summaries`), so a London-wide z8 tile costs a few
milliseconds instead of half a second of on-the-fly clustering. Web maps draw grid clusters
from the same summaries, merged into 4 x 4 cells a tile (``cluster_cells``; the GLA map merges
them again into 2 x 2): one labelled symbol per cell, so symbols never pile into a mass.

A CQL2 ``filter`` (:mod:`geo.layers.tile_filters`) adds its condition to a raw tile's query.
Below the raw zoom, one that only picks boroughs, subtypes and statuses reads the summaries like
the parameters do; any other is counted from the features in the tile, on the same grid with the
same centroids (so the counts are those the summaries would give): bounded in memory by the grid
(1,024 cells a tile, one merged line a tile for line layers) and in time by the statement timeout.
Such a tile follows the layer's data version rather than the summaries' build.
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
from geo.layers.tile_filters import TileFilter, merge_terms
from geo.layers.tile_summaries import (
    CELLS,
    HALF_WORLD,
    SUMMARY_COLUMNS,
    WORLD,
    borough_refresh_statements,
    refresh_statements,
    refresh_summaries,
    refresh_summaries_async,
    stale_summary_kinds,
    summaries_current,
    summary_grid,
    summary_version,
)

__all__ = [
    "CELLS",
    "HALF_WORLD",
    "WORLD",
    "borough_refresh_statements",
    "refresh_statements",
    "refresh_summaries",
    "refresh_summaries_async",
    "stale_summary_kinds",
    "summaries_current",
    "summary_grid",
    "summary_version",
]

EXTENT = 4096
BUFFER = 64


class InvalidTile(NotFound):
    """z/x/y outside the tile matrix (404)."""


def check_tile(z: int, x: int, y: int, max_zoom: int) -> None:
    """Raise :class:`InvalidTile` unless z/x/y names a tile of the Web Mercator matrix."""
    if not 0 <= z <= max_zoom:
        raise InvalidTile(f"zoom {z} is outside 0..{max_zoom}")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidTile(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{2**z - 1} at zoom {z}")


# Tile queries ------------------------------------------------------------------------------------------
def _filter_conditions(filters: dict[str, list[str]]) -> sql.Composable:
    parts = [
        sql.SQL("{} = ANY({})").format(sql.Identifier(c), sql.Placeholder(f"f_{c}")) for c in sorted(filters)
    ]
    return sql.SQL("").join(sql.SQL(" AND ") + p for p in parts)


def _conditions(filters: dict[str, list[str]], where: TileFilter | None) -> sql.Composable:
    """The parameters' conditions and the CQL2 filter's, each after an AND."""
    cql = sql.SQL("") if where is None else sql.SQL(" AND ({})").format(where.compiled.sql)
    return sql.Composed([_filter_conditions(filters), cql])


def summary_filters(
    collection: Collection, filters: dict[str, list[str]], where: TileFilter | None
) -> dict[str, list[str]] | None:
    """The filters as summary column -> values, or None when the summaries cannot answer them."""
    if collection.low_zoom == "raw" or any(c not in SUMMARY_COLUMNS for c in filters):
        return None
    if where is None:
        return filters
    return None if where.summary is None else merge_terms(filters, where.summary)


def from_summaries(
    collection: Collection,
    z: int,
    raw_min_zoom: int,
    filters: dict[str, list[str]] | None = None,
    where: TileFilter | None = None,
) -> bool:
    """Whether tile zoom ``z`` of the collection, with these filters, is read from the summaries."""
    if z >= raw_min_zoom or collection.low_zoom == "raw":
        return False
    return summary_filters(collection, filters or {}, where) is not None


def _raw_query(
    collection: Collection, filters: dict[str, list[str]], where: TileFilter | None
) -> sql.Composed:
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
        filters=_conditions(filters, where),
    )


def _summary_rows(filters: dict[str, list[str]]) -> sql.Composable:
    """Unfiltered tiles read the roll-up rows; filtered ones the detail rows that match."""
    if not filters:
        return sql.SQL(" AND borough_code IS NULL AND subtype IS NULL AND status IS NULL")
    return sql.SQL(" AND borough_code IS NOT NULL") + _filter_conditions(filters)


def _cells(
    collection: Collection, filters: dict[str, list[str]], where: TileFilter | None
) -> tuple[sql.Composable | None, sql.Composable]:
    """Where a tile's grid cells (``cx, cy, n, sx, sy``) come from: a CTE ``live`` it needs (or None), and the source.

    The summary rows when they can answer the filters; else the features in the tile, each a
    cell of the summaries' grid by its centroid, exactly as the summaries place it.
    """
    in_tile = sql.SQL(
        "cx BETWEEN %(x)s * {cells} AND %(x)s * {cells} + {last} AND cy BETWEEN %(y)s * {cells} AND %(y)s * {cells} + {last}"
    ).format(cells=sql.Literal(CELLS), last=sql.Literal(CELLS - 1))
    rows = summary_filters(collection, filters, where)
    if rows is not None:
        source = sql.SQL("tile_point_summaries WHERE kind = %(kind)s AND z = %(z)s AND {}{}").format(
            in_tile, _summary_rows(rows)
        )
        return None, source
    live = sql.SQL(
        """live AS (
            SELECT floor((ST_X(c) + {half}) / ({world} / 2 ^ %(z)s / {cells}))::int AS cx,
                   floor(({half} - ST_Y(c)) / ({world} / 2 ^ %(z)s / {cells}))::int AS cy,
                   1 AS n, ST_X(c) AS sx, ST_Y(c) AS sy
            -- OFFSET 0 keeps the centroid computed once a row (as the summaries do).
            FROM (SELECT ST_Centroid(geom_3857) AS c FROM {table}
                  WHERE {where} AND geom_3857 && ST_TileEnvelope(%(z)s, %(x)s, %(y)s){filters} OFFSET 0) a)"""
    ).format(
        half=sql.Literal(HALF_WORLD),
        world=sql.Literal(WORLD),
        cells=sql.Literal(CELLS),
        table=sql.Identifier(collection.table),
        where=sql.SQL(collection.where),  # type: ignore[arg-type]
        filters=_conditions(filters, where),
    )
    return live, sql.SQL("live WHERE {}").format(in_tile)


def _points_query(
    collection: Collection, filters: dict[str, list[str]], where: TileFilter | None
) -> sql.Composed:
    live, source = _cells(collection, filters, where)
    return sql.SQL(
        """WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env), {live}
        c AS (SELECT sum(n)::int AS count, sum(sx) / sum(n) AS mx, sum(sy) / sum(n) AS my
              FROM {source}
              GROUP BY cx, cy),
        f AS (SELECT count, ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(mx, my), 3857), t.env, {extent}, {buffer}, true) AS geom
              FROM c, t)
        SELECT ST_AsMVT(f, %(layer)s, {extent}, 'geom') FROM f"""
    ).format(
        live=sql.SQL("") if live is None else live + sql.SQL(","),
        source=source,
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
    )


def _lines_query(
    collection: Collection, filters: dict[str, list[str]], where: TileFilter | None
) -> sql.Composed:
    common = {
        "margin": sql.Literal(BUFFER / EXTENT),
        "extent": sql.Literal(EXTENT),
        "buffer": sql.Literal(BUFFER),
    }
    rows = summary_filters(collection, filters, where)
    if rows is not None:
        return sql.SQL(
            """WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,
                             ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}) AS benv),
            f AS (SELECT round(length_m)::int AS length_m, n AS count,
                         ST_AsMVTGeom(geom, t.env, {extent}, {buffer}, true) AS geom
                  FROM tile_line_summaries, t
                  WHERE kind = %(kind)s AND z = %(z)s AND geom && t.benv{rows})
            SELECT ST_AsMVT(f, %(layer)s, {extent}, 'geom') FROM f WHERE geom IS NOT NULL"""
        ).format(rows=_summary_rows(rows), **common)
    # One merged, simplified line a tile for the lines that match (the summaries keep one per
    # borough, subtype and status): its memory is the tile's matching lines, once.
    return sql.SQL(
        """WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,
                         ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}) AS benv),
        m AS (SELECT round(sum(ST_Length(geom)))::int AS length_m, count(*)::int AS count,
                     ST_Simplify(ST_LineMerge(ST_Collect(geom_3857)), {world} / 2 ^ %(z)s / 256, true) AS g
              FROM {table}, t WHERE {where} AND geom_3857 && t.benv{filters}),
        f AS (SELECT length_m, count, ST_AsMVTGeom(g, t.env, {extent}, {buffer}, true) AS geom FROM m, t WHERE count > 0)
        SELECT ST_AsMVT(f, %(layer)s, {extent}, 'geom') FROM f WHERE geom IS NOT NULL"""
    ).format(
        world=sql.Literal(WORLD),
        table=sql.Identifier(collection.table),
        where=sql.SQL(collection.where),  # type: ignore[arg-type]
        filters=_conditions(filters, where),
        **common,
    )


def _params(
    collection: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
    where: TileFilter | None,
    rows: dict[str, list[str]] | None,
) -> dict[str, Any]:
    """The query's parameters: the summaries' filters (``rows``), or the parameters' and the CQL2 filter's."""
    params: dict[str, Any] = {"z": z, "x": x, "y": y, "layer": collection.id, "kind": collection.kind}
    params.update({f"f_{c}": v for c, v in (rows if rows is not None else filters).items()})
    if where is not None and rows is None:
        params.update(where.compiled.params)
    return params


# Grid clusters ------------------------------------------------------------------------------------------
#: Cluster cells per tile side for a map's grid clusters: one every 64 px of a 256 px tile, each
#: the sum of 8 x 8 summary cells, so a cluster tile costs what a summary tile does.
CLUSTER_CELLS = 4
_MERGE = CELLS // CLUSTER_CELLS


class NoClusters(NotFound):
    """The collection is not a point layer: it has no clusters (404)."""


def _clusters_query(
    collection: Collection, filters: dict[str, list[str]], where: TileFilter | None
) -> sql.Composed:
    live, source = _cells(collection, filters, where)
    return sql.SQL(
        """{with_live}SELECT (cx - %(x)s * {cells}) / {merge} AS i, (cy - %(y)s * {cells}) / {merge} AS j,
                  sum(n)::int, sum(sx) / sum(n), sum(sy) / sum(n)
           FROM {source}
           GROUP BY 1, 2 ORDER BY 1, 2"""
    ).format(
        with_live=sql.SQL("") if live is None else sql.SQL("WITH ") + live + sql.SQL(" "),
        cells=sql.Literal(CELLS),
        merge=sql.Literal(_MERGE),
        source=source,
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
    where: TileFilter | None = None,
) -> list[dict[str, Any]]:
    """The grid clusters of one tile: a count per cell of a :data:`CLUSTER_CELLS` grid, with the mean position.

    Call :func:`check_clusters` first. Each cell is ``{"i", "j", "count", "x", "y"}``: its column and
    row (0 at the west and north edges) and the mean position of its assets in pixels of a 256-pixel
    tile, so a map can draw one symbol per cell, kept inside the cell, whose symbols never overlap.

    Performance: one indexed range of the summary table, like a low-zoom tile (about a millisecond);
    with a CQL2 filter the summaries cannot answer, one pass over the tile's features.
    """
    rows = summary_filters(collection, filters, where)
    params = _params(collection, z, x, y, filters, where, rows)
    cur = await conn.execute(_clusters_query(collection, filters, where), params)
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


def _filters_key(filters: dict[str, list[str]], where: TileFilter | None) -> tuple[Any, ...]:
    return (
        tuple(sorted((k, tuple(v)) for k, v in filters.items())),
        where.key if where is not None else None,
    )


async def cached_clusters(
    cache: TileCache,
    version: str,
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    collection: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
    where: TileFilter | None = None,
) -> bytes:
    """A cluster tile as JSON bytes (``collection, z, x, y, cells_per_side, cells``), cached like tiles."""
    key = ("clusters", collection.id, z, x, y, _filters_key(filters, where), version)
    body = cache.get(key)
    if body is None:
        cells = await cluster_cells(await connect(), collection, z, x, y, filters, where)
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
    where: TileFilter | None = None,
) -> bytes:
    """One tile of a collection as MVT bytes (empty bytes when nothing is in it)."""
    raw = z >= raw_min_zoom or collection.low_zoom == "raw"
    rows = None if raw else summary_filters(collection, filters, where)
    params = _params(collection, z, x, y, filters, where, rows)
    if raw:
        query = _raw_query(collection, filters, where)
        params["cap"] = max_features
    elif collection.low_zoom == "points":
        query = _points_query(collection, filters, where)
    else:
        query = _lines_query(collection, filters, where)
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


async def tile_version(
    conn: psycopg.AsyncConnection[Any],
    collection: Collection,
    z: int,
    raw_min_zoom: int,
    filters: dict[str, list[str]] | None = None,
    where: TileFilter | None = None,
) -> str:
    """What a tile's content follows: its summaries' build when read from them, else the layer's data."""
    if from_summaries(collection, z, raw_min_zoom, filters, where):
        return await summary_version(conn, collection)
    return str(await data_version(conn, collection.version_layer))


async def known_tile_version(
    versions: KnownVersions,
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    collection: Collection,
    z: int,
    raw_min_zoom: int,
    filters: dict[str, list[str]] | None = None,
    where: TileFilter | None = None,
) -> str:
    """:func:`tile_version` as this worker knows it; ``connect()`` is called only to read it anew."""
    if from_summaries(collection, z, raw_min_zoom, filters, where):
        key = ("summaries", str(collection.kind))
    else:
        key = ("data", collection.version_layer)

    async def read() -> str:
        return await tile_version(await connect(), collection, z, raw_min_zoom, filters, where)

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
    where: TileFilter | None = None,
) -> bytes:
    """A tile from the cache, or made and kept there; gzip-compressed if asked (and not empty).

    ``version`` is :func:`tile_version`'s (with the same filters); None (a time-dependent layer) bypasses the cache.
    ``connect()`` gives the connection to make the tile with (taken only on a miss).
    """
    key = (collection.id, z, x, y, _filters_key(filters, where), version, gzipped)
    body = cache.get(key) if version is not None else None
    if body is None:
        body = await get_tile(
            await connect(), collection, z, x, y, filters, settings.raw_min_zoom, settings.max_features, where
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
