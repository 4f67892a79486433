"""Coverage reports: request one, watch it, read its summary and download its results."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from api.deps import Caller, Conn, RequireRoles
from geo.access.principals import Role
from geo.core.csv_out import write_csv
from geo.core.jobs import with_progress
from geo.core.settings import CoverageSettings
from geo.coverage import reports
from maps.coverage_report import report_page

router = APIRouter(prefix="/coverage", tags=["coverage"])

ROLES: tuple[Role, ...] = ("admin", "borough", "operator")


def get_coverage_settings(request: Request) -> CoverageSettings:
    """The coverage settings the app was built with."""
    return request.app.state.settings.coverage  # type: ignore[no-any-return]


def _json(record: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(record), status_code=status, headers=headers)


def _with_progress(record: dict[str, Any]) -> dict[str, Any]:
    record = with_progress(record)
    record["links"] = {
        name: f"/coverage/reports/{record['id']}/{name}"
        for name in ("cells.geojson", "gaps.geojson", "demand.csv", "priorities.csv", "report.html")
    }
    return record


@router.post(
    "/reports",
    status_code=201,
    summary="Request a coverage report",
    dependencies=[Depends(RequireRoles(*ROLES))],
)
async def create_report(
    request: Request,
    conn: Conn,
    caller: Caller,
    body: Annotated[dict[str, Any], Body(description="area, thresholds, demand, filters, k, radius")],
) -> JSONResponse:
    """Small areas are computed before the answer (``state`` done); large ones run in the background.

    ``GET /coverage/reports/{id}`` shows the progress. See ``geo.coverage.reports.parse_request``
    for every field.
    """
    settings = get_coverage_settings(request)
    parsed = reports.parse_request(body, settings)
    url = request.app.state.database_url
    if parsed.estimated_size(await reports.area_m2(conn, parsed)) > settings.max_sync_cells:
        jobs = request.app.state.jobs
        ticket = jobs.admit(caller.key_id)
        try:
            report_id = await asyncio.to_thread(reports.open_report, url, parsed, caller)
        except BaseException:
            ticket.release()
            raise
        jobs.start(ticket, "coverage_reports", report_id, url, reports.run_report, url, report_id, parsed)
    else:
        report_id = await asyncio.to_thread(reports.run_new_report, url, parsed, caller)
    record = _with_progress(await reports.get_report(conn, report_id, caller))
    return _json(record, 201, {"Location": f"/coverage/reports/{report_id}"})


@router.get("/reports", summary="Recent coverage reports")
async def list_reports(
    conn: Conn, caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> JSONResponse:
    """Newest first: every report for admins, a key's own reports for other keys."""
    return _json([_with_progress(r) for r in await reports.list_reports(conn, caller, limit)])


@router.get("/reports/{report_id}", summary="One report: state, progress, summary, parameters, data version")
async def get_report(report_id: int, conn: Conn, caller: Caller) -> JSONResponse:
    """``state`` is queued, running, done or failed; ``summary`` is there once done."""
    return _json(_with_progress(await reports.get_report(conn, report_id, caller)))


@router.get("/reports/{report_id}/cells.geojson", summary="Grid cells with distances (GeoJSON, WGS84)")
async def cells_geojson(report_id: int, conn: Conn, caller: Caller) -> StreamingResponse:
    """One square per grid cell: cell_id, borough_code, households, area_m2, distance_m, asset_id."""
    await reports.finished_report(conn, report_id, caller)
    features = await reports.cell_features(conn, report_id)

    def body() -> Any:
        yield '{"type":"FeatureCollection","features":['
        for start in range(0, len(features), 5000):
            yield ("," if start else "") + ",".join(features[start : start + 5000])
        yield "]}"

    return StreamingResponse(body(), media_type="application/geo+json")


@router.get("/reports/{report_id}/gaps.geojson", summary="Gaps, largest first (GeoJSON, WGS84)")
async def gaps_geojson(report_id: int, conn: Conn, caller: Caller) -> JSONResponse:
    """Uncovered cells merged into polygons at the report's gap threshold: gap_id, cells, area_m2, households."""
    await reports.finished_report(conn, report_id, caller)
    features = await reports.gap_features(conn, report_id)
    return JSONResponse(
        {"type": "FeatureCollection", "features": features}, media_type="application/geo+json"
    )


def _csv(name: str, header: list[str], rows: list[Any]) -> Response:
    return Response(
        write_csv(header, rows), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip


@router.get("/reports/{report_id}/demand.csv", summary="Demand points with distances (CSV, EPSG:27700)")
async def demand_csv(report_id: int, conn: Conn, caller: Caller) -> Response:
    """id, x, y, borough_code, households, area_m2, distance_m (empty beyond reach), asset_id."""
    await reports.finished_report(conn, report_id, caller)
    rows = await reports.demand_rows(conn, report_id)
    return _csv(f"coverage-{report_id}-demand.csv", reports.DEMAND_COLUMNS, rows)


@router.get("/reports/{report_id}/priorities.csv", summary="Candidate assets in the order chosen (CSV)")
async def priorities_csv(report_id: int, conn: Conn, caller: Caller) -> Response:
    """rank, asset_id, kind, status, gain, cumulative, covered_households, household_share, lon, lat."""
    await reports.finished_report(conn, report_id, caller)
    rows = await reports.priority_rows(conn, report_id)
    return _csv(
        f"coverage-{report_id}-priorities.csv",
        reports.PRIORITY_COLUMNS,
        [[r[c] for c in reports.PRIORITY_COLUMNS] for r in rows],
    )


@router.get(
    "/reports/{report_id}/report.html", response_class=HTMLResponse, summary="The report to read and print"
)
async def report_html(request: Request, report_id: int, conn: Conn, caller: Caller) -> HTMLResponse:
    """Map, coverage chart, borough bars and tables; scripts served from ``/static``."""
    html = await report_page(conn, report_id, caller, prefix=request.scope.get("root_path", ""))
    return HTMLResponse(html)
