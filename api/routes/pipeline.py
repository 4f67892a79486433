"""LocalGov Digital Pipeline projects: import (admins), list and filter, place on the map, the unplaced list.

Owner name and email are personal data: :func:`geo.projects.store.redact` removes them for every caller
but admins, in every answer here; the ``pipeline_projects`` map layer has none of them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from api.deps import AppSettings, Caller, Conn, Reader, RequireRoles
from api.errors import BodyTooLarge
from geo.core.csv_out import write_records
from geo.core.errors import InvalidParameter
from geo.db.database import connect
from geo.projects import store as pipeline

router = APIRouter(prefix="/pipeline", tags=["pipeline"])
GEOJSON = "application/geo+json"
ERROR_COLUMNS = ["row", "source_id", "column", "value", "message"]


def _json(record: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(record), status_code=status, headers=headers)


@router.post(
    "/imports",
    status_code=201,
    summary="Import Pipeline's JSON or CSV export (admins)",
    dependencies=[Depends(RequireRoles("admin"))],
)
async def create_import(
    request: Request,
    caller: Caller,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="Pipeline's JSON (api/project) or PipelineReports.csv")],
    dry_run: Annotated[bool, Form(description="Count what would change; write nothing")] = False,
    skip_invalid: Annotated[
        bool, Form(description="Import the valid rows even when some have errors")
    ] = False,
) -> JSONResponse:
    """Import in one transaction and answer with the record: state, counts, message (errors at ``errors.csv``).

    Admin keys only: Pipeline is one shared register, exported whole, so one file holds every
    council's projects; borough keys place their own projects with ``PUT .../location``.
    """
    limit = settings.pipeline.max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(f"{file.filename}: the file is larger than the limit of {limit // 2**20} MB")
    url = request.app.state.database_url
    name = file.filename or "pipeline"

    def work() -> dict[str, Any]:
        with connect(url, autocommit=True) as conn:
            return pipeline.import_pipeline(
                conn, data, name, caller, dry_run=dry_run, skip_invalid=skip_invalid, url=url
            )

    record = await asyncio.to_thread(work)
    status = 201 if record["state"] in ("applied", "previewed") else 422
    return _json(record, status, {"Location": f"/pipeline/imports/{record['id']}"})


@router.get("/imports/{import_id}", summary="One import: state, counts, message (admins)")
async def get_import(import_id: int, conn: Conn, caller: Caller) -> JSONResponse:
    """``state`` is applied, previewed, rejected or failed; ``counts`` has new/changed/unchanged/unplaced."""
    return _json(await pipeline.get_import(conn, import_id, caller))


@router.get("/imports/{import_id}/errors.csv", summary="Row errors as CSV (admins)", response_class=Response)
async def import_errors_csv(import_id: int, conn: Conn, caller: Caller) -> Response:
    """One line per problem: row, source_id (Pipeline id or title), column, value, message."""
    rows = await pipeline.import_errors(conn, import_id, caller)
    return Response(
        write_records(ERROR_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pipeline-import-{import_id}-errors.csv"'},
    )


@router.get("/projects", summary="Pipeline projects, filtered (JSON, GeoJSON or CSV)", response_model=None)
async def list_projects(
    request: Request,
    conn: Conn,
    reader: Reader,
    status: Annotated[
        str | None, Query(description="Concept, Discovery, Alpha, Beta, Live, Decommissioned")
    ] = None,
    phase: Annotated[str | None, Query(description="Discover, Prototype, Build, Improve")] = None,
    tag: Annotated[str | None, Query(description="Tags, comma-separated (any of them)")] = None,
    start: Annotated[str | None, Query(description="Running on or after this date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, Query(description="Running on or before this date (YYYY-MM-DD)")] = None,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy (CRS84 unless bbox-crs)")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description="CRS84 or EPSG:27700")] = None,
    borough: Annotated[str | None, Query(description="GSS codes, comma-separated")] = None,
    placement: Annotated[str | None, Query(description="exact, borough, london, unplaced")] = None,
    london_wide: Annotated[bool, Query(description="With bbox: also London-wide projects")] = False,
    format: Annotated[str | None, Query(description="json (default), geojson or csv")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    after: Annotated[int | None, Query(description="Cursor of the next page")] = None,
) -> Response:
    """Projects in id order. With ``bbox``, a project matches by its site, else by its borough."""
    query = pipeline.parse_query(
        status=status, phase=phase, tag=tag, start=start, end=end, bbox=bbox, bbox_crs=bbox_crs,
        borough=borough, placement=placement, include_london_wide=london_wide, limit=limit, after=after,
    )  # fmt: skip
    rows, next_after = await pipeline.list_projects(conn, query, reader)
    kind = format or ("geojson" if GEOJSON in request.headers.get("accept", "") else "json")
    if kind == "csv":
        return Response(pipeline.to_csv(rows), media_type="text/csv; charset=utf-8")
    if kind == "geojson":
        body = {
            "type": "FeatureCollection",
            "numberReturned": len(rows),
            "next_after": next_after,
            "features": [pipeline.to_feature(r) for r in rows],
        }
        return Response(json.dumps(jsonable_encoder(body)), media_type=GEOJSON)
    if kind != "json":
        raise InvalidParameter(f"format: {format!r} is not json, geojson or csv")
    return _json({"count": len(rows), "next_after": next_after, "projects": rows})


@router.get("/projects/{project_id}", summary="One Pipeline project")
async def get_project(project_id: int, conn: Conn, reader: Reader) -> JSONResponse:
    """The project with its placement, site (``location``) and drawn point (``geometry``), WGS84."""
    return _json(await pipeline.get_project(conn, project_id, reader))


@router.put(
    "/projects/{project_id}/location",
    summary="Set or clear a project's site",
    dependencies=[Depends(RequireRoles("admin", "borough"))],
)
async def set_location(
    project_id: int,
    conn: Conn,
    caller: Caller,
    geometry: Annotated[
        dict[str, Any] | None,
        Body(
            description="A GeoJSON geometry (Point, Polygon...) in WGS84 lon/lat or EPSG:27700; null to clear",
            examples=[{"type": "Point", "coordinates": [-0.1276, 51.5072]}],
        ),
    ] = None,
    crs: Annotated[int | None, Query(description="4326 or 27700 (default: told by the coordinates)")] = None,
) -> JSONResponse:
    """The site overrides the organisation's placement. Admins: any project; borough keys: their own borough's."""
    return _json(await pipeline.set_location(conn, project_id, geometry, caller, crs))


@router.get("/unplaced", summary="Projects not placed, with the reason")
async def unplaced(conn: Conn, reader: Reader) -> JSONResponse:
    """Organisations outside London or not recognised, and no site: kept, listed here, never dropped."""
    rows = await pipeline.unplaced(conn, reader)
    return _json({"count": len(rows), "projects": rows})
