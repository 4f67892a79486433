"""Borough asset uploads: send a file, watch it being checked, read the preview and errors, apply."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import MISSING, BaseModel, Field

from api.deps import BOROUGH_WRITE, AppSettings, Caller, Conn
from api.errors import BodyTooLarge
from api.schemas import problems
from geo.core import row_errors
from geo.core.jobs import with_progress

# By name, so the readers (pandas, GDAL) load with the app rather than on its first upload.
from geo.uploads import MAX_MAPPING_BYTES, check_request, records, run_upload_job, submit, upload_errors
from geo.uploads.row_map import DEFAULT_LIMIT, MAX_LIMIT, row_map

router = APIRouter(prefix="/uploads", tags=["uploads"])


class JobProgress(BaseModel):
    """How far a job is."""

    done: int = Field(
        description="Work done in the current step: rows while validating, then the compare and apply steps"
    )
    total: int | None = Field(description="Work of the current step (null until known)")
    fraction: float | None = Field(description="done / total, to 4 places (null while the total is unknown)")


class UploadCounts(BaseModel):
    """What the file holds and what it changes; present once the job has read the file."""

    rows: int | MISSING = Field(default=MISSING, description="Rows (features) read from the file")
    valid: int | MISSING = Field(default=MISSING, description="Rows without errors")
    invalid: int | MISSING = Field(default=MISSING, description="Rows with at least one error")
    errors: int | MISSING = Field(default=MISSING, description="Row errors found (see errors.csv)")
    new: int | MISSING = Field(default=MISSING, description="Valid rows that add an asset")
    changed: int | MISSING = Field(default=MISSING, description="Valid rows that change a stored asset")
    unchanged: int | MISSING = Field(default=MISSING, description="Valid rows equal to the stored asset")
    retired: int | MISSING = Field(
        default=MISSING, description="Stored assets the file no longer holds (replace mode)"
    )


class UploadSource(BaseModel):
    """What was found out about the file."""

    file_name: str = Field(description="The name the file was sent with")
    format: str = Field(description="GeoPackage, Shapefile, GeoJSON, FlatGeobuf, KML, KMZ, CSV or XLSX")
    layer: str | None = Field(description="The layer, sheet or Shapefile read")
    layers: list[str] = Field(description="Every layer of the file")
    crs: str = Field(description="The CRS the coordinates were read in (EPSG:xxxx where possible)")
    crs_inferred: bool = Field(description="Whether the CRS was inferred from the coordinates")
    columns: list[str] = Field(description="Attribute columns (coordinate and WKT columns of tables aside)")
    geometry_columns: list[str] = Field(description="Table columns the geometry was built from")
    row_count: int | None = Field(description="Rows or features the file says it has")
    geometry_type: str | None = Field(description="The geometry type the layer declares")
    notes: list[str] = Field(description="What was inferred or fixed while reading")


class UploadMapping(BaseModel):
    """Where each column of the file went."""

    kind: str = Field(description="The asset kind the file was mapped as")
    columns: dict[str, str] = Field(description="Column -> model field, or extra, ignored or geometry")
    values: dict[str, dict[str, str]] = Field(
        description="Field -> {value in the file: code}, from the mapping file"
    )
    defaults: dict[str, Any] = Field(description="Field -> the value of rows that give none")
    notes: list[str] = Field(description="What the mapping decided for want of a column")


class RowError(BaseModel):
    """One problem with one row of the file."""

    row: int = Field(description="The row (feature) number, 1-based, header not counted")
    source_id: str | None = Field(description="The row's own identifier, where it has one")
    column: str | None = Field(description="The column of the file the problem is in")
    value: str | None = Field(description="The value as sent")
    message: str = Field(description="What is wrong, and what is allowed")


class UploadRejection(BaseModel):
    """Why the whole file was rejected."""

    message: str = Field(description="The complete message")
    file: str | None = Field(description="The file's name")
    layer: str | None = Field(description="The layer concerned")
    column: str | None = Field(description="The column concerned")
    value: str | None = Field(description="The value concerned")
    candidates: list[str] = Field(description="The layers to choose from, when one must be named")


class MapRowsKept(BaseModel):
    """The sample of valid rows the job kept for the upload's map."""

    every: int = Field(description="Rows whose number is 1 modulo this were kept (1: every valid row)")
    kept: int = Field(description="Valid rows kept")


class UploadReport(BaseModel):
    """The job's report on the file; a rejected file has only ``rejected``."""

    source: UploadSource | MISSING = Field(default=MISSING, description="What was found out about the file")
    notes: list[str] | MISSING = Field(
        default=MISSING, description="Everything inferred or fixed: CRS, axes, encoding, defaults"
    )
    repairs: list[RowError] | MISSING = Field(
        default=MISSING, description="Geometries repaired (the first 100)"
    )
    errors_kept: int | MISSING = Field(default=MISSING, description="Row errors stored for the downloads")
    tolerance_m: float | MISSING = Field(
        default=MISSING, description="How far outside the borough an asset may lie, in metres"
    )
    rejected: UploadRejection | MISSING = Field(
        default=MISSING, description="Why the whole file was rejected"
    )
    map_rows: MapRowsKept | MISSING = Field(
        default=MISSING, description="The valid rows kept for the map (rows.geojson)"
    )


class Upload(BaseModel):
    """An upload: what was asked, its state and progress, and what the file holds and changes."""

    id: int = Field(description="The upload's id")
    borough_code: str = Field(description="GSS code of the borough the assets belong to")
    kind: Literal["public_building", "street_furniture", "duct"] = Field(description="The asset kind")
    mode: Literal["append", "replace"] = Field(description="append (upsert) or replace (also retire)")
    dry_run: bool = Field(description="Preview only (true until a dry run is applied)")
    skip_invalid: bool = Field(description="Apply the valid rows even when some have errors")
    layer: str | None = Field(description="The layer asked for")
    file_name: str = Field(description="The name the file was sent with")
    size_bytes: int = Field(description="The file's size")
    sha256: str = Field(description="The file's SHA-256, hex")
    state: Literal["queued", "running", "previewed", "applied", "rejected", "failed", "interrupted"] = Field(
        description="queued, running, then previewed, applied, rejected, failed or interrupted"
    )
    progress_done: int = Field(description="As progress.done")
    progress_total: int | None = Field(description="As progress.total")
    format: str | None = Field(description="The file's format, once read")
    crs: str | None = Field(description="The file's CRS, once read")
    mapping: UploadMapping | None = Field(description="Where each column went, once read")
    counts: UploadCounts = Field(
        description="Rows read, valid, invalid, errors; new, changed, unchanged, retired"
    )
    changed_fields: dict[str, int] = Field(description="Field -> how many changed assets it changes in")
    report: UploadReport = Field(description="The job's report on the file")
    message: str | None = Field(description="Why it was rejected or failed")
    load_id: int | None = Field(description="The load that wrote the assets, once applied")
    created_by: str = Field(description="Who uploaded")
    applied_by: str | None = Field(description="Who applied the dry run")
    created_at: dt.datetime = Field(description="When it was uploaded")
    started_at: dt.datetime | None = Field(description="When its job last started")
    finished_at: dt.datetime | None = Field(description="When its job last ended")
    applied_at: dt.datetime | None = Field(description="When it was applied")
    file_deleted_at: dt.datetime | None = Field(description="When the received file was deleted (retention)")
    progress: JobProgress = Field(description="How far the job is")


class RowErrorFeature(BaseModel):
    """A row error as a GeoJSON feature."""

    type: Literal["Feature"] = Field(description="Feature")
    geometry: dict[str, Any] | None = Field(description="The row's geometry in WGS84, null without one")
    properties: RowError = Field(description="The error")


class RowErrorFeatures(BaseModel):
    """The row errors of an upload as a GeoJSON feature collection."""

    type: Literal["FeatureCollection"] = Field(description="FeatureCollection")
    features: list[RowErrorFeature] = Field(description="One feature per row error, in row order")


class RowMapError(BaseModel):
    """One error of an invalid row."""

    column: str | None = Field(description="The column of the file the problem is in")
    message: str = Field(description="What is wrong, and what is allowed")


class RowMapProperties(BaseModel):
    """A row of the file on the map."""

    row: int = Field(description="The row (feature) number, 1-based, header not counted")
    source_id: str | None = Field(description="The row's own identifier, where it has one")
    valid: bool = Field(description="Whether the row has no error")
    errors: list[RowMapError] = Field(description="The row's errors, in order (empty for a valid row)")


class RowMapFeature(BaseModel):
    """A row of the file as a GeoJSON point feature."""

    type: Literal["Feature"] = Field(description="Feature")
    id: int = Field(description="The row number")
    geometry: dict[str, Any] = Field(
        description="A point of the row's geometry in WGS84 (on its surface; the centroid if it is invalid)"
    )
    properties: RowMapProperties = Field(description="The row's number, identifier, validity and errors")


class RowMapCounts(BaseModel):
    """How many rows there are and how many are returned."""

    valid: int = Field(description="Valid rows in the file")
    invalid: int = Field(description="Rows with at least one error in the file")
    valid_kept: int = Field(description="Valid rows the job kept for the map (all, up to 20,000)")
    invalid_located: int = Field(
        description="Rows with errors that have a usable geometry, among the errors kept"
    )
    valid_returned: int = Field(description="Valid rows in this answer")
    invalid_returned: int = Field(description="Rows with errors in this answer")


class RowMapFeatures(BaseModel):
    """An upload's rows as a GeoJSON feature collection, sampled to the limit."""

    type: Literal["FeatureCollection"] = Field(description="FeatureCollection")
    numberMatched: int = Field(description="Rows that could be drawn: valid rows and located invalid rows")
    numberReturned: int = Field(description="Features in this answer")
    counts: RowMapCounts = Field(description="The counts by validity")
    sampled_every: int = Field(
        description="The valid rows kept are those whose number is 1 modulo this (1: all of them)"
    )
    features: list[RowMapFeature] = Field(description="One point feature per row, in row order")


class GeoJSONResponse(JSONResponse):
    """JSON as ``application/geo+json``."""

    media_type = "application/geo+json"


def _safe_name(name: str | None) -> str:
    base = Path(name or "upload").name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"


async def _save(upload: UploadFile, folder: Path, limit: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / _safe_name(upload.filename)
    size = 0
    with open(target, "wb") as out:
        while block := await upload.read(2**20):
            size += len(block)
            if size > limit:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise BodyTooLarge(
                    f"{upload.filename}: the file is larger than the limit of {limit // 2**20} MB"
                )
            out.write(block)
    return target


@router.post(
    "",
    status_code=202,
    summary="Upload a borough's asset file",
    dependencies=[BOROUGH_WRITE],
    response_model=Upload,
)
async def create_upload(
    request: Request,
    response: Response,
    conn: Conn,
    caller: Caller,
    settings: AppSettings,
    file: Annotated[
        UploadFile,
        File(description="GeoPackage, zipped Shapefile, GeoJSON, FlatGeobuf, KML/KMZ, CSV or XLSX"),
    ],
    borough: Annotated[str, Form(description="GSS code of the borough the assets belong to")],
    kind: Annotated[
        str | None, Form(description="public_building, street_furniture or duct (default: from the geometry)")
    ] = None,
    layer: Annotated[
        str | None, Form(description="Layer, sheet or Shapefile to read when the file has several")
    ] = None,
    mapping: Annotated[UploadFile | None, File(description="Column/value mapping (YAML or JSON)")] = None,
    mode: Annotated[
        str, Form(description="append (upsert) or replace (also retire what the file no longer holds)")
    ] = "append",
    dry_run: Annotated[bool, Form(description="Preview only: nothing is written to the assets")] = False,
    skip_invalid: Annotated[
        bool, Form(description="Apply the valid rows even when some have errors")
    ] = False,
) -> dict[str, Any]:
    """Store the file, queue its processing and answer at once; ``GET /uploads/{id}`` shows progress."""
    check_request(borough, kind, mode, caller)  # before the file is stored
    ticket = request.app.state.jobs.admit(caller.key_id)
    folder = Path(settings.upload.dir) / uuid.uuid4().hex
    try:
        path = await _save(file, folder, settings.upload.max_bytes)
        spec = None if mapping is None else await _save(mapping, folder / "mapping", MAX_MAPPING_BYTES)
        record = await submit(
            conn, path, file_name=file.filename or path.name, borough=borough, kind=kind, mode=mode,
            dry_run=dry_run, skip_invalid=skip_invalid, layer=layer, mapping=spec,
            settings=settings.upload, principal=caller,
        )  # fmt: skip
    except BaseException:
        ticket.release()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    request.app.state.jobs.start(
        ticket, "uploads", record["id"], request.app.state.database_url, run_upload_job,
        request.app.state.database_url, record["id"], settings.upload, raw_min_zoom=settings.tiles.raw_min_zoom,
    )  # fmt: skip
    response.headers["Location"] = f"/uploads/{record['id']}"
    return with_progress(record)


@router.get("", summary="Recent uploads", response_model=list[Upload])
async def list_uploads(
    conn: Conn, caller: Caller, borough: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first; a borough key sees its own borough's uploads only."""
    caller.require_role("admin", "borough")
    return [
        with_progress(r) for r in await records.list_uploads(conn, caller, borough, min(max(limit, 1), 1000))
    ]


@router.get(
    "/{upload_id}",
    summary="One upload: state, progress, counts, mapping, notes",
    response_model=Upload,
)
async def get_upload(upload_id: int, conn: Conn, caller: Caller) -> dict[str, Any]:
    """``state`` is queued, running, previewed, applied, rejected or failed; ``counts`` has new/changed/unchanged/retired."""
    caller.require_role("admin", "borough")
    return with_progress(await records.get_upload(conn, upload_id, caller))


@router.get(
    "/{upload_id}/errors.csv",
    summary="Row errors as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per row error"}},
)
async def errors_csv(upload_id: int, conn: Conn, caller: Caller) -> Response:
    """One line per problem: row, source_id, column, value, message."""
    caller.require_role("admin", "borough")
    await records.get_upload(conn, upload_id, caller)
    return Response(
        row_errors.errors_csv(await upload_errors(conn, upload_id)), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="upload-{upload_id}-errors.csv"'},
    )  # fmt: skip


@router.get(
    "/{upload_id}/errors.geojson",
    summary="Row errors as GeoJSON (WGS84)",
    response_model=RowErrorFeatures,
    response_class=GeoJSONResponse,
)
async def errors_geojson(upload_id: int, conn: Conn, caller: Caller) -> dict[str, Any]:
    """The errors that have a geometry, as features (others with a null geometry)."""
    caller.require_role("admin", "borough")
    await records.get_upload(conn, upload_id, caller)
    rows = await upload_errors(conn, upload_id)
    features = [
        {
            "type": "Feature",
            "geometry": r["geometry"],
            "properties": {k: r[k] for k in row_errors.ERROR_COLUMNS},
        }
        for r in rows
    ]
    return {"type": "FeatureCollection", "features": features}


@router.post(
    "/{upload_id}/apply",
    status_code=202,
    summary="Apply a dry run that looked right",
    dependencies=[BOROUGH_WRITE],
    response_model=Upload,
)
async def apply_upload(
    upload_id: int, request: Request, conn: Conn, caller: Caller, settings: AppSettings
) -> dict[str, Any]:
    """Re-reads the stored file and applies it in one transaction (the counts may differ if data changed since)."""
    ticket = request.app.state.jobs.admit(caller.key_id)
    try:
        await records.mark_for_apply(conn, upload_id, caller)
    except BaseException:
        ticket.release()
        raise
    request.app.state.jobs.start(
        ticket, "uploads", upload_id, request.app.state.database_url, run_upload_job,
        request.app.state.database_url, upload_id, settings.upload, apply=True,
        raw_min_zoom=settings.tiles.raw_min_zoom,
    )  # fmt: skip
    return with_progress(await records.get_upload(conn, upload_id, caller))


@router.get(
    "/{upload_id}/rows.geojson",
    summary="The file's rows for a map: valid and invalid, as WGS84 points",
    response_model=RowMapFeatures,
    response_class=GeoJSONResponse,
    responses=problems(
        400, 401, 403, (404, "No upload has that id that this key may see"),
        (409, "The upload's file has not been read yet, or was rejected before its rows were"),
        (410, "The rows were deleted after the retention period of row errors"),
    ),
)  # fmt: skip
async def rows_geojson(
    upload_id: int,
    conn: Conn,
    caller: Caller,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Most features to return, 1 to {MAX_LIMIT}")
    ] = DEFAULT_LIMIT,
) -> Response:
    """Every format and CRS: a point per row (RFC 7946, WGS84), ``valid`` true or false, with the errors.

    The staged rows of a job do not outlive it, so the job keeps, for this map, up to 20,000 of
    the valid rows (all of them, or every ``sampled_every``-th row, evenly spaced), and the
    invalid rows are the errors kept (``errors_kept``, with the row's geometry). Every run
    replaces them: a previewed upload has its preview's rows, an applied one those of the apply
    (the same file read again); a rejected one its rows if they were read. They are deleted
    with the row errors after the retention period (then 410).

    Answers at most ``limit`` features, a sample that is the same on every call: rows with
    errors first (up to half the limit, more when the valid rows leave room), then the valid
    ones, each evenly spaced by row. ``numberMatched`` and ``counts`` say how many there are.
    """
    caller.require_role("admin", "borough")
    upload = await records.get_upload(conn, upload_id, caller)
    found = await row_map(conn, upload, limit)
    return Response(found.to_json(), media_type="application/geo+json")
