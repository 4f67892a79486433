"""LocalGov Digital Pipeline projects: import (admins), list and filter, place on the map, the unplaced list.

Owner name and email are personal data: :func:`geo.projects.redact` removes them for every caller
but admins, in every answer here; the ``pipeline_projects`` map layer has none of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.encoders import jsonable_encoder
from pydantic import MISSING, BaseModel, ConfigDict, Field, WithJsonSchema

from api.deps import AppSettings, Caller, Conn, Reader, RequireRoles
from api.errors import BodyTooLarge
from api.params import JsonGeojsonOrCsv, ListBbox
from api.schemas import IsoDatetime, problems
from geo import projects
from geo.core.row_errors import errors_csv
from geo.db.database import connect

router = APIRouter(prefix="/pipeline", tags=["pipeline"])
GEOJSON = "application/geo+json"
CSV = "text/csv; charset=utf-8"

Status = Annotated[str, WithJsonSchema({"type": "string", "enum": list(projects.STATUSES)})]
Phase = Annotated[str, WithJsonSchema({"type": "string", "enum": list(projects.PHASES)})]
Placement = Annotated[str, WithJsonSchema({"type": "string", "enum": list(projects.PLACEMENTS)})]
ADMINS_ONLY = "Personal data: admins only (absent for every other caller)."


# Bodies ------------------------------------------------------------------------------------------------
class Location(BaseModel):
    """A project's site: a GeoJSON geometry (RFC 7946), or a Feature whose geometry is taken.

    Coordinates are WGS84 longitude, latitude or British National Grid eastings, northings (told
    by the ``crs`` parameter, else by their values); the site must lie in London.
    """

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"type": "Point", "coordinates": [-0.1276, 51.5072]}]}
    )

    type: Literal[
        "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection",
        "Feature",
    ] = Field(description="The GeoJSON type: a geometry type, or Feature")  # fmt: skip
    coordinates: list[Any] | None = Field(
        default=None,
        description="The positions, nested as the type needs: [x, y] for a Point, rings of positions for a Polygon",
    )
    geometries: list[dict[str, Any]] | None = Field(
        default=None, description="The members of a GeometryCollection"
    )
    geometry: dict[str, Any] | None = Field(default=None, description="A Feature's geometry")


# Responses ---------------------------------------------------------------------------------------------
class Project(BaseModel):
    """A Pipeline project with its placement, its site and the point the map draws (both WGS84)."""

    id: int = Field(ge=1, description="The project's id in this service")
    pipeline_id: int | None = Field(
        description="Pipeline's own id; null for a project only seen in the CSV export"
    )
    title: str = Field(description="The project's title")
    tags: list[str] = Field(description="Pipeline's tags")
    content: str | None = Field(description="The description (full projects only)")
    status: Status | None = Field(description="The project status")
    phase: Phase | None = Field(description="The agile life-cycle phase")
    project_start: dt.date | None = Field(description="When the project starts")
    project_end: dt.date | None = Field(description="When the project ends")
    estimated_time: str | None = Field(description="Pipeline's estimated duration, as text")
    organisation: str = Field(description="The organisation's name (empty when Pipeline gives none)")
    organisation_id: int | None = Field(description="Pipeline's id of the organisation")
    organisation_url: str | None = Field(description="The organisation's web site")
    organisation_email: str | None = Field(description="The organisation's contact address")
    organisation_twitter: str | None = Field(description="The organisation's Twitter handle")
    department: str | None = Field(description="The department running the project")
    owner: str | None | MISSING = Field(
        default=MISSING, description=f"The project owner's name. {ADMINS_ONLY}"
    )
    owner_email: str | None | MISSING = Field(
        default=MISSING, description=f"The project owner's email. {ADMINS_ONLY}"
    )
    created_by: str | None | MISSING = Field(
        default=MISSING, description=f"Who created it in Pipeline. {ADMINS_ONLY}"
    )
    created_on: IsoDatetime | None = Field(description="When it was created in Pipeline")
    modified_by: str | None | MISSING = Field(
        default=MISSING, description=f"Who last changed it in Pipeline. {ADMINS_ONLY}"
    )
    modified_on: IsoDatetime | None = Field(description="When it was last changed in Pipeline")
    allow_external_collaboration: bool | None = Field(description="Whether others may join the project")
    funding_band: str | None = Field(description="The funding band, as Pipeline words it")
    collaboration_level: str | None = Field(description="The collaboration level, as Pipeline words it")
    last_updated: IsoDatetime | None = Field(description="When Pipeline last updated it")
    borough_code: str | None = Field(
        pattern=r"^E09[0-9]{6}$", description="GSS code of its borough (by organisation, else by site)"
    )
    london_wide: bool = Field(description="Whether the organisation is London-wide (GLA, TfL...)")
    placement: Placement = Field(
        description="exact (its site), borough (its organisation's borough), london (London-wide) or unplaced"
    )
    unplaced_reason: str | None = Field(description="Why it could not be placed (unplaced only)")
    source: Literal["json", "csv", "api"] = Field(
        description="What wrote it: a JSON or CSV import, or the API"
    )
    version: int = Field(
        ge=1, description="Its version: 1, then one more at each change (history keeps the others)"
    )
    valid_from: IsoDatetime = Field(description="Since when this version holds")
    changed_by: str | MISSING = Field(
        default=MISSING, description=f"Who made this version (a key's label). {ADMINS_ONLY}"
    )
    location: dict[str, Any] | None = Field(description="Its site as a GeoJSON geometry, null without one")
    geometry: dict[str, Any] | None = Field(
        description="What the map draws (the site, or a point in its borough) as GeoJSON; null when not drawn"
    )


class ProjectPage(BaseModel):
    """A page of projects in id order."""

    count: int = Field(ge=0, description="Projects on this page")
    next_after: int | None = Field(description="The cursor of the next page (after=), null on the last")
    projects: list[Project] = Field(description="The projects")


class UnplacedProjects(BaseModel):
    """The projects that could not be placed, by organisation."""

    count: int = Field(ge=0, description="How many")
    projects: list[Project] = Field(description="The projects, each with its unplaced_reason")


class ImportCounts(BaseModel):
    """What the file holds and what it changes; the changes once the rows were applied (or previewed)."""

    rows: int | MISSING = Field(default=MISSING, ge=0, description="Projects (rows) in the file")
    valid: int | MISSING = Field(default=MISSING, ge=0, description="Rows without errors")
    invalid: int | MISSING = Field(default=MISSING, ge=0, description="Rows with at least one error")
    errors: int | MISSING = Field(default=MISSING, ge=0, description="Row errors (see errors.csv)")
    new: int | MISSING = Field(default=MISSING, ge=0, description="Projects added")
    changed: int | MISSING = Field(default=MISSING, ge=0, description="Projects changed")
    unchanged: int | MISSING = Field(default=MISSING, ge=0, description="Projects equal to the stored ones")
    unplaced: int | MISSING = Field(default=MISSING, ge=0, description="Projects that could not be placed")


class ImportRecord(BaseModel):
    """An import of a Pipeline file: what was sent, its state and counts."""

    id: int = Field(ge=1, description="The import's id")
    file_name: str = Field(description="The name the file was sent with")
    sha256: str = Field(description="The file's SHA-256, hex")
    size_bytes: int = Field(ge=0, description="The file's size")
    format: Literal["json", "csv"] = Field(description="How the file was read")
    dry_run: bool = Field(description="Counted only, nothing written")
    skip_invalid: bool = Field(description="The valid rows were to be imported even if some had errors")
    state: Literal["running", "previewed", "applied", "rejected", "failed", "interrupted"] = Field(
        description="running, then applied, previewed (dry run), rejected (row errors), failed or interrupted"
    )
    counts: ImportCounts = Field(
        description="rows, valid, invalid, errors; new, changed, unchanged, unplaced"
    )
    message: str | None = Field(description="Why it was rejected or failed")
    created_by: str = Field(description="Who imported (the key's label)")
    created_at: IsoDatetime = Field(description="When the import started")
    finished_at: IsoDatetime | None = Field(description="When it ended")


# Routes ------------------------------------------------------------------------------------------------
@router.post(
    "/imports",
    status_code=201,
    summary="Import Pipeline's JSON or CSV export (admins)",
    dependencies=[Depends(RequireRoles("admin"))],
    response_model=ImportRecord,
    responses={
        422: {"model": ImportRecord, "description": "The file was rejected: the record says why"},
        **problems(401, 403, 413),
    },
)
async def create_import(
    request: Request,
    response: Response,
    caller: Caller,
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="Pipeline's JSON (api/project) or PipelineReports.csv")],
    dry_run: Annotated[bool, Form(description="Count what would change; write nothing")] = False,
    skip_invalid: Annotated[
        bool, Form(description="Import the valid rows even when some have errors")
    ] = False,
) -> dict[str, Any]:
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
            return projects.import_pipeline(
                conn, data, name, caller, dry_run=dry_run, skip_invalid=skip_invalid, url=url
            )

    record = await asyncio.to_thread(work)
    response.status_code = 201 if record["state"] in ("applied", "previewed") else 422
    response.headers["Location"] = f"/pipeline/imports/{record['id']}"
    return record


@router.get(
    "/imports/{import_id}",
    summary="One import: state, counts, message (admins)",
    response_model=ImportRecord,
    responses=problems(400, 401, 403, 404),
)
async def get_import(import_id: int, conn: Conn, caller: Caller) -> dict[str, Any]:
    """``state`` is applied, previewed, rejected or failed; ``counts`` has new/changed/unchanged/unplaced."""
    return await projects.get_import(conn, import_id, caller)


@router.get(
    "/imports/{import_id}/errors.csv",
    summary="Row errors as CSV (admins)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "One line per row error"},
        **problems(400, 401, 403, 404),
    },
)
async def import_errors_csv(import_id: int, conn: Conn, caller: Caller) -> Response:
    """One line per problem: row, source_id (Pipeline id or title), column, value, message."""
    rows = await projects.import_errors(conn, import_id, caller)
    return Response(
        errors_csv(rows),
        media_type=CSV,
        headers={"Content-Disposition": f'attachment; filename="pipeline-import-{import_id}-errors.csv"'},
    )


@router.get(
    "/projects",
    summary="Pipeline projects, filtered (JSON, GeoJSON or CSV)",
    response_model=ProjectPage,
    responses={
        200: {
            "content": {GEOJSON: {}, "text/csv": {}},
            "description": "A page of projects: JSON, a GeoJSON FeatureCollection (format=geojson) or CSV",
        },
        **problems(400),
    },
)
async def list_projects(
    conn: Conn,
    reader: Reader,
    bbox: ListBbox,
    format: JsonGeojsonOrCsv,
    status: Annotated[
        str | None, Query(description="Concept, Discovery, Alpha, Beta, Live, Decommissioned")
    ] = None,
    phase: Annotated[str | None, Query(description="Discover, Prototype, Build, Improve")] = None,
    tag: Annotated[str | None, Query(description="Tags, comma-separated (any of them)")] = None,
    start: Annotated[str | None, Query(description="Running on or after this date (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, Query(description="Running on or before this date (YYYY-MM-DD)")] = None,
    borough: Annotated[str | None, Query(description="GSS codes, comma-separated")] = None,
    placement: Annotated[str | None, Query(description="exact, borough, london, unplaced")] = None,
    london_wide: Annotated[bool, Query(description="With bbox: also London-wide projects")] = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    after: Annotated[int | None, Query(description="Cursor of the next page")] = None,
) -> Any:
    """Projects in id order. With ``bbox``, a project matches by its site, else by its borough."""
    query = projects.parse_query(
        status=status, phase=phase, tag=tag, start=start, end=end, bbox=bbox,
        borough=borough, placement=placement, include_london_wide=london_wide, limit=limit, after=after,
    )  # fmt: skip
    rows, next_after = await projects.list_projects(conn, query, reader)
    if format == "csv":
        return Response(projects.to_csv(rows), media_type=CSV)
    if format == "geojson":
        body = {
            "type": "FeatureCollection",
            "numberReturned": len(rows),
            "next_after": next_after,
            "features": [projects.to_feature(r) for r in rows],
        }
        return Response(json.dumps(jsonable_encoder(body)), media_type=GEOJSON)
    return {"count": len(rows), "next_after": next_after, "projects": rows}


@router.get(
    "/projects/{project_id}",
    summary="One Pipeline project",
    response_model=Project,
    responses=problems(400, 404),
)
async def get_project(project_id: int, conn: Conn, reader: Reader) -> dict[str, Any]:
    """The project with its placement, site (``location``) and drawn point (``geometry``), WGS84."""
    return await projects.get_project(conn, project_id, reader)


@router.put(
    "/projects/{project_id}/location",
    summary="Set or clear a project's site",
    dependencies=[Depends(RequireRoles("admin", "borough"))],
    response_model=Project,
    responses=problems(400, 401, 403, 404, 422),
)
async def set_location(
    project_id: int,
    conn: Conn,
    caller: Caller,
    location: Annotated[
        Location | None,
        Body(description="A GeoJSON geometry in WGS84 lon/lat or EPSG:27700; null (or no body) to clear"),
    ] = None,
    crs: Annotated[int | None, Query(description="4326 or 27700 (default: told by the coordinates)")] = None,
) -> dict[str, Any]:
    """The site overrides the organisation's placement. Admins: any project; borough keys: their own borough's."""
    geometry = None if location is None else location.model_dump(exclude_unset=True)
    return await projects.set_location(conn, project_id, geometry, caller, crs)


@router.get(
    "/unplaced",
    summary="Projects not placed, with the reason",
    response_model=UnplacedProjects,
)
async def unplaced(conn: Conn, reader: Reader) -> dict[str, Any]:
    """Organisations outside London or not recognised, and no site: kept, listed here, never dropped."""
    rows = await projects.unplaced(conn, reader)
    return {"count": len(rows), "projects": rows}
