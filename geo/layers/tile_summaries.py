"""The low-zoom tile summaries: clusters of point layers and merged lines, built after each bulk write.

Below the raw zoom a tile of a point layer carries clusters (a count per grid cell, :data:`CELLS`
x :data:`CELLS` cells a tile) and a tile of a line layer merged, simplified lines, both read from
summary tables per borough, subtype and status (and roll-up rows for everything), so a London-wide
z8 tile costs a few milliseconds. :func:`refresh_summaries` rebuilds them; :mod:`geo.layers.tiles`
reads them.
"""

from __future__ import annotations

from typing import Any

import psycopg

from geo.layers.collections import Collection

# Cluster cells per tile side at low zooms: a cluster every 16 px of a 512 px tile, finer than
# map clusterers' usual 40-80 px radius; 64 made z12 tiles of 4,000 clusters (15-20 ms).
CELLS = 32
HALF_WORLD = 20037508.342789244
WORLD = 2 * HALF_WORLD
#: The columns summaries are kept by: a filter on these alone can be served from them.
SUMMARY_COLUMNS = ("borough_code", "subtype", "status")

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
