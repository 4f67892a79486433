"""Coverage reports: request one, watch it, read its summary and download its results."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, Conn, RequireRoles
from api.schemas import problems
from geo import coverage
from geo.access.principals import Role
from geo.core.csv_out import write_csv
from geo.core.jobs import with_progress
from geo.core.settings import CoverageSettings
from geo.coverage import CoverageRequest, JobProgress, ReportListItem, ReportRecord
from maps.coverage_report import report_page

router = APIRouter(prefix="/coverage", tags=["coverage"])

ROLES: tuple[Role, ...] = ("admin", "borough", "operator")
GEOJSON = {"application/geo+json": {"schema": {"type": "object"}}}
CSV = {"text/csv": {"schema": {"type": "string"}}}
NOT_READY = (409, "The report is queued, running or failed: its results cannot be read.")
#: The errors of a finished report's downloads and page.
DOWNLOAD_PROBLEMS = problems(400, 401, 403, 404, NOT_READY)


class ReportLinks(BaseModel):
    """The downloads of a report (once done)."""

    model_config = ConfigDict(extra="forbid")

    cells_geojson: str = Field(
        alias="cells.geojson", description="The grid cells with their distances (GeoJSON)."
    )
    gaps_geojson: str = Field(alias="gaps.geojson", description="The gaps as polygons (GeoJSON).")
    demand_csv: str = Field(alias="demand.csv", description="Every demand point and its distance (CSV).")
    priorities_csv: str = Field(alias="priorities.csv", description="The prioritised candidate assets (CSV).")
    report_html: str = Field(alias="report.html", description="The report as a page to read and print.")


class ReportAnswer(ReportRecord):
    """A coverage report as the API answers it: its record, its progress and its downloads."""

    progress: JobProgress = Field(description="Steps done of all.")
    links: ReportLinks = Field(description="The report's downloads.")


class ListedReport(ReportListItem):
    """A coverage report in the list: its record without the per-borough rows, progress, downloads."""

    progress: JobProgress = Field(description="Steps done of all.")
    links: ReportLinks = Field(description="The report's downloads.")


def get_coverage_settings(request: Request) -> CoverageSettings:
    """The coverage settings the app was built with."""
    return request.app.state.settings.coverage  # type: ignore[no-any-return]


def _json(record: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    # The records as they are (the response models only document them), dates in isoformat.
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
    response_model=ReportAnswer,
    responses=problems(
        401, 403, (409, "ready_now was asked of a database without wayleaves."), 413, 422, 429
    ),
)
async def create_report(request: Request, conn: Conn, caller: Caller, body: CoverageRequest) -> JSONResponse:
    """Small areas are computed before the answer (``state`` done); large ones run in the background.

    ``GET /coverage/reports/{id}`` shows the progress. A body that cannot be used is a 422
    problem whose ``errors`` say where, what and the value.
    """
    settings = get_coverage_settings(request)
    parsed = coverage.build_request(body, settings)
    url = request.app.state.database_url
    if parsed.estimated_size(await coverage.area_m2(conn, parsed)) > settings.max_sync_cells:
        jobs = request.app.state.jobs
        ticket = jobs.admit(caller.key_id)
        try:
            report_id = await asyncio.to_thread(coverage.open_report, url, parsed, caller)
        except BaseException:
            ticket.release()
            raise
        jobs.start(
            ticket, "coverage_reports", report_id, url, coverage.run_report, url, report_id, parsed,
            spacing=settings.spacing_m,
        )  # fmt: skip
    else:
        report_id = await asyncio.to_thread(
            coverage.run_new_report, url, parsed, caller, spacing=settings.spacing_m
        )
    record = _with_progress(await coverage.get_report(conn, report_id, caller))
    return _json(record, 201, {"Location": f"/coverage/reports/{report_id}"})


@router.get(
    "/reports",
    summary="Recent coverage reports",
    response_model=list[ListedReport],
    responses=problems(400, 401, 403),
)
async def list_reports(
    conn: Conn, caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> JSONResponse:
    """Newest first: every report for admins, a key's own reports for other keys."""
    return _json([_with_progress(r) for r in await coverage.list_reports(conn, caller, limit)])


@router.get(
    "/reports/{report_id}",
    summary="One report: state, progress, summary, parameters, data version",
    response_model=ReportAnswer,
    responses=problems(400, 401, 403, 404),
)
async def get_report(report_id: int, conn: Conn, caller: Caller) -> JSONResponse:
    """``state`` is queued, running, done or failed; ``summary`` is there once done."""
    return _json(_with_progress(await coverage.get_report(conn, report_id, caller)))


@router.get(
    "/reports/{report_id}/cells.geojson",
    summary="Grid cells with distances (GeoJSON, WGS84)",
    response_class=Response,
    responses={
        200: {"content": GEOJSON, "description": "A FeatureCollection of squares."},
        **DOWNLOAD_PROBLEMS,
    },
)
async def cells_geojson(report_id: int, conn: Conn, caller: Caller) -> StreamingResponse:
    """One square per grid cell: cell_id, borough_code, households, area_m2, distance_m, asset_id."""
    await coverage.finished_report(conn, report_id, caller)
    features = await coverage.cell_features(conn, report_id)

    def body() -> Any:
        yield '{"type":"FeatureCollection","features":['
        for start in range(0, len(features), 5000):
            yield ("," if start else "") + ",".join(features[start : start + 5000])
        yield "]}"

    return StreamingResponse(body(), media_type="application/geo+json")


@router.get(
    "/reports/{report_id}/gaps.geojson",
    summary="Gaps, largest first (GeoJSON, WGS84)",
    response_class=Response,
    responses={
        200: {"content": GEOJSON, "description": "A FeatureCollection of gap polygons."},
        **DOWNLOAD_PROBLEMS,
    },
)
async def gaps_geojson(report_id: int, conn: Conn, caller: Caller) -> JSONResponse:
    """Uncovered cells merged into polygons at the report's gap threshold: gap_id, cells, area_m2, households."""
    await coverage.finished_report(conn, report_id, caller)
    features = await coverage.gap_features(conn, report_id)
    return JSONResponse(
        {"type": "FeatureCollection", "features": features}, media_type="application/geo+json"
    )


def _csv(name: str, header: list[str], rows: list[Any]) -> Response:
    return Response(
        write_csv(header, rows), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip


@router.get(
    "/reports/{report_id}/demand.csv",
    summary="Demand points with distances (CSV, EPSG:27700)",
    response_class=Response,
    responses={
        200: {"content": CSV, "description": "One row per demand point or cell."},
        **DOWNLOAD_PROBLEMS,
        **problems((410, "The premises points were deleted at the end of their retention period.")),
    },
)
async def demand_csv(report_id: int, conn: Conn, caller: Caller) -> Response:
    """id, x, y, borough_code, households, area_m2, distance_m (empty beyond reach), asset_id."""
    await coverage.finished_report(conn, report_id, caller)
    rows = await coverage.demand_rows(conn, report_id)
    return _csv(f"coverage-{report_id}-demand.csv", coverage.DEMAND_COLUMNS, rows)


@router.get(
    "/reports/{report_id}/priorities.csv",
    summary="Candidate assets in the order chosen (CSV)",
    response_class=Response,
    responses={
        200: {"content": CSV, "description": "One row per chosen candidate asset."},
        **DOWNLOAD_PROBLEMS,
    },
)
async def priorities_csv(report_id: int, conn: Conn, caller: Caller) -> Response:
    """rank, asset_id, kind, status, gain, cumulative, covered_households, household_share, lon, lat, cost.

    Then the certificate of the whole choice, the same on every row: method, budget, spent,
    bound_households (no choice could add more) and proven_gap ((bound - added) / bound).
    """
    record = await coverage.finished_report(conn, report_id, caller)
    rows = await coverage.priority_rows(conn, report_id)
    return _csv(
        f"coverage-{report_id}-priorities.csv",
        coverage.PRIORITY_CSV_COLUMNS,
        coverage.priority_csv_rows(record, rows),
    )


@router.get(
    "/reports/{report_id}/report.html",
    summary="The report to read and print",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The page."},
        **DOWNLOAD_PROBLEMS,
    },
)
async def report_html(request: Request, report_id: int, conn: Conn, caller: Caller) -> HTMLResponse:
    """Map, coverage chart, borough bars and tables in one file that opens from disk and prints to A4."""
    html = await report_page(conn, report_id, caller, prefix=request.scope.get("root_path", ""))
    return HTMLResponse(html)
