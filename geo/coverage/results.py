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
    conn: psycopg.AsyncConnection[Any], report_id: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """The gaps of a report, largest first, as GeoJSON Features in WGS84."""
    cur = await conn.execute(
        """SELECT gap_id, cells, area_m2, households, ST_AsGeoJSON(ST_Transform(geom, 4326), 7)
           FROM coverage_report_gaps WHERE report_id = %s ORDER BY gap_id LIMIT %s""",
        [report_id, limit],
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


async def priority_rows(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[dict[str, Any]]:
    """The chosen candidate assets of a report in order (:data:`PRIORITY_COLUMNS`)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT rank, asset_id, kind, status, gain, cumulative, covered_households, household_share,
                      ST_X(p) AS lon, ST_Y(p) AS lat
               FROM coverage_report_priorities,
                    LATERAL (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(x, y), 27700), 4326) AS p) t
               WHERE report_id = %s ORDER BY rank""",
            [report_id],
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


async def serving_assets(
    conn: psycopg.AsyncConnection[Any], report_id: int, limit: int
) -> dict[str, Any] | None:
    """The assets nearest to some demand point or cell of a report, as WGS84 GeoJSON; None if more than ``limit``."""
    cur = await conn.execute(
        """WITH ids AS (SELECT DISTINCT asset_id FROM coverage_report_points
                        WHERE report_id = %s AND asset_id IS NOT NULL)
           SELECT (SELECT count(*) FROM ids), a.id, a.kind, a.subtype, a.status,
                  ST_AsGeoJSON(ST_Transform(a.geom, 4326), 6)
           FROM ids JOIN assets a ON a.id = ids.asset_id
           WHERE (SELECT count(*) FROM ids) <= %s ORDER BY a.id""",
        [report_id, limit],
    )
    rows = await cur.fetchall()
    if not rows:
        count = await (
            await conn.execute(
                "SELECT count(DISTINCT asset_id) FROM coverage_report_points WHERE report_id = %s",
                [report_id],
            )
        ).fetchone()
        if count and count[0] > limit:
            return None
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": i,
                "geometry": json.loads(g),
                "properties": {"id": i, "kind": k, "subtype": s, "status": st},
            }
            for _, i, k, s, st, g in rows
        ],
    }
