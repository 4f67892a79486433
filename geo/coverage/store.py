"""Storing a coverage report: its record in ``coverage_reports``, its state as it runs, its results.

A report is one row of ``coverage_reports`` (normalised parameters, the data versions it was
computed from, state, progress, summary, timings) plus its results in ``coverage_report_points``
(demand points and grid cells, written with one binary COPY), ``coverage_report_gaps`` and
``coverage_report_priorities``, so every download is served again without recomputing and the
same parameters on the same data versions give the same numbers.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb

from geo.access.audit import record
from geo.access.principals import Principal
from geo.core.jobs import ACTIVE, JobStatus, finish, owner
from geo.core.progress import Progress, silent
from geo.coverage.compute import STEPS, ReportResult, compute_report
from geo.coverage.demand_layers import OUTSIDE, Layer
from geo.coverage.errors import ReportDismissed
from geo.coverage.request import ReportRequest
from geo.coverage.sources import check_wayleaves
from geo.db import pgcopy


def create_report(conn: psycopg.Connection[Any], request: ReportRequest, principal: Principal) -> int:
    """Record a queued report; the caller must hold a key (admins, boroughs and operators may)."""
    principal.require_role("admin", "borough", "operator")
    check_wayleaves(conn, request)
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO coverage_reports (parameters, area, created_by, key_id, progress_total, owner, heartbeat_at)
               VALUES (%s, ST_GeomFromWKB(%s, 27700), %s, %s, %s, %s, now()) RETURNING id""",
            [
                Jsonb(request.parameters()),
                None if request.geometry is None else shapely.to_wkb(request.geometry),
                principal.name, principal.key_id, len(STEPS), owner(),
            ],
        ).fetchone()  # fmt: skip
        assert row is not None
        record(
            conn, principal, "report.create", "coverage_report", row[0], {"parameters": request.parameters()}
        )
    return int(row[0])


def _points_table(report_id: int, name: str, layer: Layer) -> pa.Table:
    """A layer's rows as an Arrow table named as the columns of ``coverage_report_points``.

    NULL where there is no label, no borough (``outside``), no distance within reach or no asset.
    """
    n = len(layer.xy)
    distance = np.asarray(layer.distance, dtype=float)
    asset_id = np.asarray(layer.asset_id, dtype=np.int64)
    borough = np.asarray(layer.borough, dtype=object)
    label = layer.label if layer.label is not None else np.full(n, None, dtype=object)
    area = layer.area_m2 if layer.area_m2 is not None else np.full(n, np.nan)
    return pa.table(
        {
            "report_id": pa.array(np.full(n, report_id, dtype=np.int64)),
            "layer": pa.array(np.full(n, name, dtype=object), pa.string()),
            "seq": pa.array(np.arange(n, dtype=np.int32)),
            "label": pa.array(label, pa.string()),
            "x": pa.array(layer.xy[:, 0], pa.float64()),
            "y": pa.array(layer.xy[:, 1], pa.float64()),
            "borough_code": pa.array(borough, pa.string(), mask=borough == OUTSIDE),
            "households": pa.array(layer.households, pa.float64()),
            "area_m2": pa.array(area, pa.float64(), mask=np.full(n, layer.area_m2 is None)),
            "distance_m": pa.array(distance, pa.float64(), mask=~np.isfinite(distance)),
            "asset_id": pa.array(asset_id, pa.int64(), mask=asset_id < 0),
        }
    )


def _copy_points(conn: psycopg.Connection[Any], report_id: int, name: str, layer: Layer) -> None:
    """Write a layer's rows with one binary COPY (:mod:`geo.db.pgcopy`), without a Python object per row."""
    if len(layer.xy):
        pgcopy.copy_table(conn, "coverage_report_points", _points_table(report_id, name, layer))


def store_result(conn: psycopg.Connection[Any], report_id: int, result: ReportResult) -> None:
    """Write a report's results (in the caller's transaction), replacing any earlier ones."""
    for table in ("coverage_report_points", "coverage_report_gaps", "coverage_report_priorities"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE report_id = %s").format(sql.Identifier(table)), [report_id]
        )
    if result.cells is not None:
        _copy_points(conn, report_id, "demand", result.demand)
        _copy_points(conn, report_id, "cell", result.cells)
    else:
        _copy_points(conn, report_id, "cell", result.demand)
    gaps = result.gaps
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO coverage_report_gaps (report_id, gap_id, cells, area_m2, households, geom)
               VALUES (%s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 27700))""",
            [
                (report_id, int(g), int(c), float(a), float(h), shapely.to_wkb(geom))
                for g, c, a, h, geom in zip(
                    gaps["gap_id"],
                    gaps["cells"],
                    gaps["area_m2"],
                    gaps["households"],
                    gaps.geometry.values,
                    strict=True,
                )
            ],
        )
        p = result.priorities
        cur.executemany(
            """INSERT INTO coverage_report_priorities (report_id, rank, asset_id, kind, status, x, y, gain,
                   cumulative, covered_households, household_share)
               SELECT %s, %s, %s, a.kind, a.status, ST_X(pt), ST_Y(pt), %s, %s, %s, %s
               FROM (SELECT 1) one
               LEFT JOIN assets a ON a.id = %s
               LEFT JOIN LATERAL (SELECT CASE WHEN GeometryType(a.geom) = 'POINT' THEN a.geom
                                              ELSE ST_PointOnSurface(a.geom) END AS pt) g ON true""",
            [
                (report_id, int(r), int(a), float(g), float(c), float(ch), None if pd.isna(s) else float(s), int(a))
                for r, a, g, c, ch, s in zip(
                    p["rank"], p["asset_id"], p["gain"], p["cumulative"], p["covered_households"],
                    p["household_share"], strict=True,
                )
            ],
        )  # fmt: skip


def _stop_if_dismissed(status: JobStatus, report_id: int) -> None:
    """Raise :class:`ReportDismissed` when the report was dismissed (checked once a step)."""
    row = status.conn.execute("SELECT state FROM coverage_reports WHERE id = %s", [report_id]).fetchone()
    if row is None or row[0] == "dismissed":
        raise ReportDismissed(f"coverage report {report_id} was dismissed while it ran")


def open_report(url: str, request: ReportRequest, principal: Principal) -> int:
    """:func:`create_report` on a connection of its own, committed; returns the report id."""
    with psycopg.connect(url) as conn:
        return create_report(conn, request, principal)


def run_new_report(url: str, request: ReportRequest, principal: Principal, *, spacing: float) -> int:
    """Record a report and compute it at once on one connection (the API's small reports); its id.

    Errors of the request itself (access, ``ready_now`` without wayleaves) are raised before
    the report exists; errors while computing end it ``failed``, as :func:`run_report` does.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        report_id = create_report(conn, request, principal)
        run_report(url, report_id, request, spacing=spacing, raise_errors=False, conn=conn)
    return report_id


def run_report(
    url: str,
    report_id: int,
    request: ReportRequest,
    progress: Progress = silent,
    *,
    spacing: float,
    raise_errors: bool = True,
    conn: psycopg.Connection[Any] | None = None,
) -> None:
    """Compute and store a queued report, recording its state, progress and timings as it goes.

    Whatever happens the report ends ``done`` or ``failed`` (with the message); the error is
    raised again unless ``raise_errors`` is false. Used for the reports computed at once and
    for the background ones alike; ``progress`` also receives every step (for the CLI's bar).
    ``spacing`` is the asset index's (the settings' ``spacing_m``); ``conn`` an autocommit
    connection to work on (one is opened otherwise).
    """
    with ACTIVE.tracking("coverage_reports", report_id):
        status = JobStatus(url, "coverage_reports", report_id, every=0.2, conn=conn)
        try:
            started = status.conn.execute(
                """UPDATE coverage_reports SET state = 'running', started_at = now(), progress_done = 0,
                       progress_total = %s, message = NULL
                   WHERE id = %s AND state = 'queued' RETURNING id""",
                [len(STEPS), report_id],
            ).fetchone()
            if started is None:  # dismissed while queued (DELETE /jobs/{id}): nothing to do
                raise ReportDismissed(f"coverage report {report_id} was dismissed before it started")

            def report(step: str, done: int, total: int) -> None:
                status.progress(step, done, total)
                progress(step, done, total)
                _stop_if_dismissed(status, report_id)

            conn = status.conn  # autocommit: the results and the state 'done' in one transaction
            result = compute_report(url, request, spacing, report, conn)
            started_s = time.perf_counter()
            with conn.transaction():
                store_result(conn, report_id, result)
                timings = {**result.timings, "store": round(time.perf_counter() - started_s, 4)}
                timings["total"] = round(sum(timings.values()), 4)
                done = conn.execute(
                    """UPDATE coverage_reports SET state = 'done', summary = %s, timings = %s, data_version = %s,
                           area = ST_GeomFromWKB(%s, 27700), progress_done = %s, finished_at = now()
                       WHERE id = %s AND state = 'running' RETURNING id""",
                    [
                        Jsonb(result.summary), Jsonb(timings), Jsonb(result.data_version),
                        shapely.to_wkb(result.request.geometry), len(STEPS), report_id,
                    ],
                ).fetchone()  # fmt: skip
                if done is None:  # dismissed meanwhile: its results are rolled back with this
                    raise ReportDismissed(f"coverage report {report_id} was dismissed while it ran")
        except ReportDismissed:
            return  # the dismissal is its final state
        except Exception as exc:
            # A dismissal recorded meanwhile stays the final state.
            values = {
                "state": "failed",
                "message": f"{type(exc).__name__}: {exc}",
                "finished_at": dt.datetime.now(dt.UTC),
            }
            finish(url, "coverage_reports", report_id, values, unless_finished=True)
            if raise_errors:
                raise
        finally:
            status.close()
