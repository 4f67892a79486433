"""The small data a web map embeds: borough outlines, their bounds and live asset counts.

Assets themselves never pass through here: maps draw them from the vector tiles.
"""

from __future__ import annotations

from typing import Any

import psycopg

from geo.reference.model import KINDS

# Simplified in British National Grid (metres) before the transform, so the tolerance is ~10 m
# on the ground; 5 decimal places of a degree are ~1 m, finer than the simplification.
BOROUGHS_SQL = """
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(json_build_object(
        'type', 'Feature',
        'id', b.code,
        'properties', json_build_object(
            'code', b.code, 'name', b.name, 'inner_london', b.inner_london,
            'assets', coalesce(c.total, 0),
            'bounds', json_build_array(
                round(ST_YMin(e.env)::numeric, 5), round(ST_XMin(e.env)::numeric, 5),
                round(ST_YMax(e.env)::numeric, 5), round(ST_XMax(e.env)::numeric, 5))),
        'geometry', ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(b.geom, %(tolerance)s), 4326), 5)::json
    ) ORDER BY b.code), '[]'::json))
FROM boroughs b
CROSS JOIN LATERAL (SELECT ST_Transform(b.geom, 4326)::box2d AS env) e
LEFT JOIN (
    SELECT borough_code, count(*) AS total FROM assets WHERE retired_at IS NULL GROUP BY borough_code
) c ON c.borough_code = b.code
"""

COUNTS_SQL = "SELECT kind, count(*) FROM assets WHERE retired_at IS NULL GROUP BY kind"


async def borough_features(conn: psycopg.AsyncConnection[Any], tolerance_m: float = 10.0) -> dict[str, Any]:
    """The 33 authorities as a WGS84 GeoJSON FeatureCollection for a web map.

    Parameters
    ----------
    conn
        A connection to the project's database.
    tolerance_m
        Simplification tolerance in metres (British National Grid), ~10 m by default: the
        outlines stay true at street zooms and the collection stays around 200 KB.

    Returns
    -------
    dict
        A FeatureCollection sorted by code; each feature's ``id`` is the GSS code and its
        properties are ``code``, ``name``, ``inner_london``, ``assets`` (live assets of any kind)
        and ``bounds`` (``[south, west, north, east]`` of the unsimplified outline, in degrees).
    """
    async with conn.cursor() as cur:
        await cur.execute(BOROUGHS_SQL, {"tolerance": tolerance_m})
        row = await cur.fetchone()
    assert row is not None
    collection: dict[str, Any] = row[0]
    for feature in collection["features"]:
        feature["properties"]["bounds"] = [float(v) for v in feature["properties"]["bounds"]]
    return collection


async def asset_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Live (not retired) assets per kind, every kind present (0 when it has none)."""
    async with conn.cursor() as cur:
        await cur.execute(COUNTS_SQL)
        rows = await cur.fetchall()
    found = {kind: int(n) for kind, n in rows}
    return {kind: found.get(kind, 0) for kind in KINDS}
