"""The small data a web map embeds or asks for besides its tiles.

- :func:`borough_features`: the 33 outlines (simplified), their area, label point and live asset count;
- :func:`asset_counts`: live assets per kind;
- :func:`count_matrix`: live assets per borough, kind, subtype and status, from the tile summaries,
  so the map shades its borough choropleth by whatever filters are set without asking again;
- :func:`map_data`: the three, kept per data version (a page costs one small query while nothing changed);
- :func:`asset_wayleaves`: the public summary of the wayleaves on an asset's sites.

Assets themselves never pass through here: maps draw them from the vector tiles.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from geo.reference.model import KINDS

# Simplified in British National Grid (metres) before the transform, so the tolerance is ~10 m
# on the ground; 5 decimal places of a degree are ~1 m, finer than the simplification. The label
# goes at the centre of the largest circle inside the outline (the pole of inaccessibility), where
# a name fits best; the area is the land the GLA's boundary holds (it excludes the Thames).
BOROUGH_OUTLINES_SQL = """
SELECT json_build_object(
    'type', 'FeatureCollection',
    'features', coalesce(json_agg(json_build_object(
        'type', 'Feature',
        'id', b.code,
        'properties', json_build_object(
            'code', b.code, 'name', b.name, 'inner_london', b.inner_london,
            'area_km2', round((ST_Area(b.geom) / 1e6)::numeric, 2),
            'label', json_build_array(round(ST_X(l.p)::numeric, 5), round(ST_Y(l.p)::numeric, 5)),
            'bounds', json_build_array(
                round(ST_YMin(e.env)::numeric, 5), round(ST_XMin(e.env)::numeric, 5),
                round(ST_YMax(e.env)::numeric, 5), round(ST_XMax(e.env)::numeric, 5))),
        'geometry', ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(b.geom, %(tolerance)s), 4326), 5)::json
    ) ORDER BY b.code), '[]'::json))
FROM boroughs b
CROSS JOIN LATERAL (SELECT ST_Transform(b.geom, 4326)::box2d AS env) e
CROSS JOIN LATERAL (SELECT ST_Transform((ST_MaximumInscribedCircle(b.geom)).center, 4326) AS p) l
"""

# Live assets by borough and kind in one scan: the boroughs' counts and the kinds' both come from it.
COUNTS_SQL = "SELECT borough_code, kind, count(*) FROM assets WHERE retired_at IS NULL GROUP BY 1, 2"
VERSIONS_SQL = """
SELECT (SELECT coalesce(jsonb_object_agg(layer, version), '{}') FROM data_versions
        WHERE layer IN ('assets', 'boroughs'))::text,
       (SELECT coalesce(jsonb_object_agg(kind, built_from::text || grid), '{}') FROM tile_summary_builds)::text
"""

# Zoom 0 of the summaries holds every live asset once per (borough, subtype, status): a few
# thousand rows at London scale (20 ms) where counting the assets takes 0.2 s. Points and lines
# have one table each; both are rebuilt after every bulk write, as the tiles drawn from them are.
MATRIX_SQL = """
SELECT borough_code, kind, subtype, status, sum(n)::bigint
FROM tile_point_summaries WHERE z = 0 AND borough_code IS NOT NULL
GROUP BY 1, 2, 3, 4
UNION ALL
SELECT borough_code, kind, subtype, status, sum(n)::bigint
FROM tile_line_summaries WHERE z = 0 AND borough_code IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""


async def _outlines(conn: psycopg.AsyncConnection[Any], tolerance_m: float) -> dict[str, Any]:
    async with conn.cursor() as cur:
        await cur.execute(BOROUGH_OUTLINES_SQL, {"tolerance": tolerance_m})
        row = await cur.fetchone()
    assert row is not None
    collection: dict[str, Any] = row[0]
    for feature in collection["features"]:
        props = feature["properties"]
        props["bounds"] = [float(v) for v in props["bounds"]]
        props["label"] = [float(v) for v in props["label"]]
        props["area_km2"] = float(props["area_km2"])
    return collection


async def _counts(conn: psycopg.AsyncConnection[Any]) -> dict[tuple[str, str], int]:
    async with conn.cursor() as cur:
        await cur.execute(COUNTS_SQL)
        return {(borough, kind): int(n) for borough, kind, n in await cur.fetchall()}


def _with_counts(outlines: dict[str, Any], counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    by_borough: dict[str, int] = {}
    for (borough, _), n in counts.items():
        by_borough[borough] = by_borough.get(borough, 0) + n
    features = [
        {**f, "properties": {**f["properties"], "assets": by_borough.get(f["properties"]["code"], 0)}}
        for f in outlines["features"]
    ]
    return {**outlines, "features": features}


def _by_kind(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    return {kind: sum(n for (_, k), n in counts.items() if k == kind) for kind in KINDS}


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
        properties are ``code``, ``name``, ``inner_london``, ``assets`` (live assets of any kind),
        ``area_km2``, ``label`` (``[lon, lat]`` where its name fits best) and ``bounds``
        (``[south, west, north, east]`` of the unsimplified outline, in degrees).
    """
    return _with_counts(await _outlines(conn, tolerance_m), await _counts(conn))


async def asset_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Live (not retired) assets per kind, every kind present (0 when it has none)."""
    return _by_kind(await _counts(conn))


#: Part name -> (the database and versions it was made from, the part).
_kept: dict[str, tuple[tuple[str, ...], Any]] = {}


async def map_data(
    conn: psycopg.AsyncConnection[Any],
) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """:func:`borough_features`, :func:`asset_counts` and :func:`count_matrix`, kept per data version.

    Each part is read again only when what it is made from changed: the outlines with the boroughs'
    data version, the counts with the assets', the matrix with the summaries' builds. So a page
    costs one small query while nothing changed (at London scale the three take about 0.3 s).
    """
    cur = await conn.execute(VERSIONS_SQL)
    row = await cur.fetchone()
    assert row is not None
    data, builds = json.loads(row[0]), row[1]
    # Versions count per database: one process may serve (or test) several.
    where = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"

    async def kept(name: str, version: tuple[str, ...], make: Any) -> Any:
        found = _kept.get(name)
        if found is None or found[0] != version:
            found = _kept[name] = (version, await make())
        return found[1]

    outlines = await kept("outlines", (where, str(data.get("boroughs"))), lambda: _outlines(conn, 10.0))
    counts = await kept("counts", (where, str(data.get("assets"))), lambda: _counts(conn))
    matrix = await kept("matrix", (where, builds), lambda: count_matrix(conn))
    return _with_counts(outlines, counts), _by_kind(counts), matrix


async def count_matrix(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """Live assets per borough, kind, subtype and status, compactly (as the tile summaries count them).

    Returns
    -------
    dict
        ``boroughs``, ``kinds``, ``subtypes`` and ``statuses`` (the codes that occur) and ``rows``:
        ``[borough, kind, subtype, status, count]`` with each code as its index in its list. At
        London scale some 2,500 rows, about 40 KB of JSON.

    Performance: one scan of zoom 0 of the summaries, about 20 ms at London scale (560,000 assets).
    """
    async with conn.cursor() as cur:
        await cur.execute(MATRIX_SQL)
        rows = await cur.fetchall()
    lists: list[list[str]] = [[], [], [], []]
    index: list[dict[str, int]] = [{}, {}, {}, {}]
    out = []
    for row in rows:
        coded = []
        for n, value in enumerate(row[:4]):
            key = "" if value is None else str(value)
            if key not in index[n]:
                index[n][key] = len(lists[n])
                lists[n].append(key)
            coded.append(index[n][key])
        out.append([*coded, int(row[4])])
    boroughs, kinds, subtypes, statuses = lists
    return {"boroughs": boroughs, "kinds": kinds, "subtypes": subtypes, "statuses": statuses, "rows": out}


ASSET_WAYLEAVES_SQL = """
SELECT w.id, w.site_id, w.site_name, w.status, w.status_since, w.days_in_status
FROM wayleave_site_assets sa
JOIN wayleave_features w ON w.site_id = sa.site_id
WHERE sa.asset_id = %s
ORDER BY w.status_since DESC, w.id
LIMIT 50
"""


async def asset_wayleaves(conn: psycopg.AsyncConnection[Any], asset_id: int) -> list[dict[str, Any]]:
    """The wayleaves on the sites an asset belongs to, newest status first: what the public tiles show.

    Each is ``id``, ``site_id``, ``site_name``, ``status``, ``status_since`` and ``days_in_status``;
    never the operator or a contact (``/wayleaves/{id}`` gives those to the keys that may see them).
    """
    async with conn.cursor() as cur:
        await cur.execute(ASSET_WAYLEAVES_SQL, [asset_id])
        rows = await cur.fetchall()
    keys = ("id", "site_id", "site_name", "status", "status_since", "days_in_status")
    return [dict(zip(keys, row, strict=True)) for row in rows]
