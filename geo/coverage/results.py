"""Reading coverage reports back: their records, and a finished one's rows and features (downloads, page).

Admins see every report, other keys the reports they asked for; anyone else is told there is no
such report.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from geo.access.principals import Principal
from geo.coverage.errors import ReportNotFound, ReportNotReady, ReportPurged

REPORT_COLUMNS = """id, parameters, data_version, state, progress_done, progress_total, summary, timings,
    message, created_by, created_at, started_at, finished_at"""


def _visible(
    row: dict[str, Any] | None, key_id: int | None, principal: Principal, report_id: int
) -> dict[str, Any]:
    if row is None or (not principal.is_admin and key_id != principal.key_id):
        raise ReportNotFound(f"no coverage report has id {report_id}")
    return row


async def get_report(
    conn: psycopg.AsyncConnection[Any], report_id: int, principal: Principal
) -> dict[str, Any]:
    """One report's record: admins see every report, other keys the reports they asked for."""
    principal.require_role("admin", "borough", "operator")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {REPORT_COLUMNS}, key_id FROM coverage_reports WHERE id = %s", [report_id])
        row = await cur.fetchone()
    record = _visible(row, row.pop("key_id") if row is not None else None, principal, report_id)
    return record


async def list_reports(
    conn: psycopg.AsyncConnection[Any], principal: Principal, limit: int = 100
) -> list[dict[str, Any]]:
    """Recent reports, newest first, without their per-borough rows."""
    principal.require_role("admin", "borough", "operator")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {REPORT_COLUMNS} FROM coverage_reports
                WHERE %(admin)s OR key_id IS NOT DISTINCT FROM %(key)s ORDER BY id DESC LIMIT %(limit)s""",
            {"admin": principal.is_admin, "key": principal.key_id, "limit": limit},
        )
        rows = await cur.fetchall()
    for row in rows:
        if row["summary"]:
            row["summary"] = {k: v for k, v in row["summary"].items() if k not in ("boroughs", "profile")}
    return rows


async def finished_report(
    conn: psycopg.AsyncConnection[Any], report_id: int, principal: Principal
) -> dict[str, Any]:
    """The record of a report whose results can be read; :class:`ReportNotReady` otherwise."""
    record = await get_report(conn, report_id, principal)
    if record["state"] != "done":
        raise ReportNotReady(
            f"coverage report {report_id} is {record['state']}; its results are not available"
            + (f" ({record['message']})" if record.get("message") else "")
        )
    return record


async def _demand_kept(conn: psycopg.AsyncConnection[Any], report_id: int) -> None:
    """Raise :class:`ReportPurged` when the report's premises points were deleted (retention)."""
    cur = await conn.execute("SELECT points_purged_at FROM coverage_reports WHERE id = %s", [report_id])
    row = await cur.fetchone()
    if row and row[0] is not None:
        raise ReportPurged(
            f"coverage report {report_id}: its premises points were deleted on {row[0]:%Y-%m-%d} "
            "(retention of personal data); its summary stays, request the report again for them"
        )


DEMAND_COLUMNS = ["id", "x", "y", "borough_code", "households", "area_m2", "distance_m", "asset_id"]
CELL_LABEL = "coalesce(label, (x - sqrt(area_m2) / 2)::bigint || '_' || (y - sqrt(area_m2) / 2)::bigint)"


async def demand_rows(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[tuple[Any, ...]]:
    """The demand rows of a report (:data:`DEMAND_COLUMNS`): postcodes, premises or grid cells.

    :class:`ReportPurged` once its premises points are deleted (rather than the grid cells).
    """
    await _demand_kept(conn, report_id)
    cur = await conn.execute(
        f"""SELECT {CELL_LABEL}, x, y, borough_code, households, area_m2, distance_m, asset_id
            FROM coverage_report_points
            WHERE report_id = %(id)s AND layer = CASE WHEN EXISTS (
                SELECT 1 FROM coverage_report_points WHERE report_id = %(id)s AND layer = 'demand')
                THEN 'demand' ELSE 'cell' END
            ORDER BY seq""",
        {"id": report_id},
    )
    return await cur.fetchall()


async def cell_features(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[str]:
    """The grid cells of a report as GeoJSON Feature strings, squares in WGS84."""
    cur = await conn.execute(
        f"""SELECT json_build_object(
                'type', 'Feature', 'id', {CELL_LABEL},
                'geometry', ST_AsGeoJSON(ST_Transform(ST_MakeEnvelope(
                    x - sqrt(area_m2) / 2, y - sqrt(area_m2) / 2, x + sqrt(area_m2) / 2, y + sqrt(area_m2) / 2,
                    27700), 4326), 7)::json,
                'properties', json_build_object('cell_id', {CELL_LABEL}, 'borough_code', borough_code,
                    'households', households, 'area_m2', area_m2, 'distance_m', distance_m, 'asset_id', asset_id)
            )::text
            FROM coverage_report_points WHERE report_id = %s AND layer = 'cell' ORDER BY seq""",
        [report_id],
    )
    return [r[0] for r in await cur.fetchall()]


async def gap_features(
    conn: psycopg.AsyncConnection[Any], report_id: int, limit: int | None = None, *, digits: int = 7
) -> list[dict[str, Any]]:
    """The gaps of a report, largest first, as GeoJSON Features in WGS84.

    ``digits``: decimals of a degree (7, about a centimetre, for the download; the page's map
    takes 5, about a metre). The polygons are as stored: their edges are the cells' own, which
    simplifying would not shorten.
    """
    cur = await conn.execute(
        """SELECT gap_id, cells, area_m2, households, ST_AsGeoJSON(ST_Transform(geom, 4326), %s)
           FROM coverage_report_gaps WHERE report_id = %s ORDER BY gap_id LIMIT %s""",
        [digits, report_id, limit],
    )
    return [
        {
            "type": "Feature",
            "id": g,
            "geometry": json.loads(geom),
            "properties": {"gap_id": g, "cells": c, "area_m2": a, "households": h},
        }
        for g, c, a, h, geom in await cur.fetchall()
    ]


PRIORITY_COLUMNS = [
    "rank", "asset_id", "kind", "status", "gain", "cumulative", "covered_households", "household_share", "lon", "lat",
]  # fmt: skip


#: The priorities CSV: :data:`PRIORITY_COLUMNS`, each row's cost (budgeted reports), then the
#: certificate of the whole choice on every row (:func:`priority_csv_rows`).
PRIORITY_CSV_COLUMNS = [
    *PRIORITY_COLUMNS, "cost", "method", "budget", "spent", "bound_households", "proven_gap",
]  # fmt: skip


def priority_csv_rows(record: dict[str, Any], rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows of the priorities CSV (:data:`PRIORITY_CSV_COLUMNS`).

    The certificate (the LP bound on what any choice could add, the proven gap) is the summary's
    ``priorities``; a report from before it was added leaves those columns empty.
    """
    cert = (record.get("summary") or {}).get("priorities") or {}
    costs = cert.get("costs") or []
    whole = [cert.get("method"), cert.get("budget"), cert.get("spent"), cert.get("bound"), cert.get("gap")]
    out = []
    for row in rows:
        rank = int(row["rank"])
        cost = costs[rank - 1] if 0 < rank <= len(costs) else None
        out.append([*(row[c] for c in PRIORITY_COLUMNS), cost, *whole])
    return out


#: What :func:`priority_rows` adds to :data:`PRIORITY_COLUMNS` (the CSV keeps to those).
PRIORITY_DETAILS = [
    "x", "y", "source_id", "name", "subtype", "subtype_label", "status_label", "borough_code", "borough",
    "postcode", "postcode_distance_m",
]  # fmt: skip

PRIORITIES_SQL = """
SELECT p.rank, p.asset_id, p.kind, p.status, p.gain, p.cumulative, p.covered_households, p.household_share,
       ST_X(w.pt) AS lon, ST_Y(w.pt) AS lat, p.x, p.y, a.source_id, nullif(btrim(a.name), '') AS name,
       a.subtype, st.label AS subtype_label, ss.label AS status_label,
       coalesce(a.borough_code, here.code) AS borough_code, b.name AS borough
FROM coverage_report_priorities p
LEFT JOIN assets a ON a.id = p.asset_id
LEFT JOIN asset_subtypes st ON st.kind = a.kind AND st.code = a.subtype
LEFT JOIN asset_statuses ss ON ss.code = p.status
LEFT JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.x, p.y), 27700) AS bng) g ON true
LEFT JOIN LATERAL (SELECT ST_Transform(g.bng, 4326) AS pt) w ON true
-- The borough of an asset deleted since: the one its stored point lies in.
LEFT JOIN LATERAL (SELECT code FROM boroughs WHERE a.id IS NULL AND geom && g.bng
                   AND ST_Intersects(geom, g.bng) ORDER BY code LIMIT 1) here ON true
LEFT JOIN boroughs b ON b.code = coalesce(a.borough_code, here.code)
WHERE p.report_id = %s ORDER BY p.rank"""


def nearest_postcodes(xy: list[tuple[float, float] | None]) -> list[dict[str, Any] | None]:
    """The shipped postcode centroid nearest to each British National Grid point.

    From the Code-Point Open centroids the product ships (:func:`geo.reference.places.postcodes`,
    read once per process, then one vectorised distance a point): ``postcode``, ``distance_m``
    and the postcode's ``borough_code``; None for a missing point.
    """
    if all(point is None for point in xy):
        return [None] * len(xy)
    from geo.reference.places import postcodes

    index = postcodes()
    out: list[dict[str, Any] | None] = []
    for point in xy:
        if point is None:
            out.append(None)
            continue
        i, distance = index.nearest(*point)
        code = str(index.borough[i]) or None
        out.append({"postcode": str(index.codes[i]), "distance_m": round(distance, 1), "borough_code": code})
    return out


async def priority_rows(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[dict[str, Any]]:
    """The chosen candidate assets of a report in order: :data:`PRIORITY_COLUMNS` and :data:`PRIORITY_DETAILS`.

    The details say which asset it is and where: its name (None for most street furniture),
    source id, subtype and status labels and borough as the assets are now (the report stores
    the kind, status and point chosen), and the postcode nearest to that point.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(PRIORITIES_SQL, [report_id])
        rows = await cur.fetchall()
    places = nearest_postcodes([None if r["x"] is None else (r["x"], r["y"]) for r in rows])
    for row, place in zip(rows, places, strict=True):
        row["postcode"] = place["postcode"] if place else None
        row["postcode_distance_m"] = place["distance_m"] if place else None
    return rows


async def gap_places(
    conn: psycopg.AsyncConnection[Any], report_id: int, limit: int | None = None
) -> dict[int, dict[str, Any]]:
    """Where the largest gaps are: gap id -> the postcode nearest a point inside the gap, and its borough."""
    cur = await conn.execute(
        """SELECT gap_id, ST_X(pt), ST_Y(pt)
           FROM coverage_report_gaps, LATERAL (SELECT ST_PointOnSurface(geom) AS pt) p
           WHERE report_id = %s ORDER BY gap_id LIMIT %s""",
        [report_id, limit],
    )
    rows = await cur.fetchall()
    places = nearest_postcodes([(x, y) for _, x, y in rows])
    return {int(g): place for (g, _, _), place in zip(rows, places, strict=True) if place is not None}


async def context_boroughs(
    conn: psycopg.AsyncConnection[Any], report_id: int, *, margin_m: float = 1000.0, simplify_m: float = 20.0
) -> list[dict[str, Any]]:
    """The boroughs around a report's area, for its map: code, name, label point and outline.

    Every borough within ``margin_m`` of the area's box, its outline simplified by
    ``simplify_m`` (WGS84, 5 decimals) and a point for its name (``lon``, ``lat``) inside its
    part near the area; those whose name point is in the area first, then the largest (the map
    names them first when names would overlap).
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT b.code, b.name, ST_X(l.pt) AS lon, ST_Y(l.pt) AS lat,
                      ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(b.geom, %(tol)s), 4326), 5)::json
                          AS geometry
               FROM coverage_reports r
               JOIN boroughs b ON b.geom && ST_Expand(r.area, %(margin)s)
               -- The name goes on the part of the borough near the area (a neighbour's own
               -- centre may be off the map).
               CROSS JOIN LATERAL (SELECT ST_PointOnSurface(ST_MakeValid(ST_ClipByBox2D(
                   b.geom, ST_Expand(r.area, %(margin)s)::box2d))) AS inside) i
               CROSS JOIN LATERAL (SELECT ST_Transform(i.inside, 4326) AS pt) l
               WHERE r.id = %(id)s
               ORDER BY ST_Intersects(i.inside, r.area) DESC, ST_Area(b.geom) DESC, b.code""",
            {"id": report_id, "margin": margin_m, "tol": simplify_m},
        )
        return await cur.fetchall()


async def area_feature(conn: psycopg.AsyncConnection[Any], report_id: int) -> dict[str, Any] | None:
    """The report's area as a GeoJSON geometry in WGS84 (simplified to 5 m)."""
    cur = await conn.execute(
        "SELECT ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(area, 5), 4326), 6) FROM coverage_reports WHERE id = %s",
        [report_id],
    )
    row = await cur.fetchone()
    return json.loads(row[0]) if row and row[0] else None
