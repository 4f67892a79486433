"""Borough asset uploads: send a file, watch it being checked, read the preview and errors, apply."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from api.deps import BOROUGH_WRITE, AppSettings, Caller, Conn
from api.errors import BodyTooLarge
from geo.core.csv_out import write_records
from geo.core.jobs import with_progress
from geo.reference.boroughs import check_code
from geo.uploads import process as uploads
from geo.uploads.mapping import MAX_MAPPING_BYTES, load_mapping_file

router = APIRouter(prefix="/uploads", tags=["uploads"])


ERROR_COLUMNS = ["row", "source_id", "column", "value", "message"]


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


@router.post("", status_code=202, summary="Upload a borough's asset file", dependencies=[BOROUGH_WRITE])
async def create_upload(
    request: Request,
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
) -> JSONResponse:
    """Store the file, queue its processing and answer at once; ``GET /uploads/{id}`` shows progress."""
    caller.require_borough_write(check_code(borough))
    uploads.check_fields(kind, mode)
    limit = settings.upload.max_bytes
    ticket = request.app.state.jobs.admit(caller.key_id)
    folder = Path(settings.upload.dir) / uuid.uuid4().hex
    try:
        path = await _save(file, folder, limit)
        spec = None
        if mapping is not None:
            mapping_path = await _save(mapping, folder / "mapping", MAX_MAPPING_BYTES)
            spec = await asyncio.to_thread(load_mapping_file, mapping_path)
        name = file.filename or path.name
        chosen_kind = await asyncio.to_thread(
            uploads.inspect_isolated, path, layer, kind, name, settings.upload
        )
        upload_request = uploads.UploadRequest(borough, chosen_kind, mode, dry_run, skip_invalid, layer, spec)
        upload_id = await uploads.register_upload(conn, upload_request, path, name, caller)
    except BaseException:
        ticket.release()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    request.app.state.jobs.start(
        ticket, "uploads", upload_id, request.app.state.database_url, uploads.run_upload_job,
        request.app.state.database_url, upload_id, settings.upload, raw_min_zoom=settings.tiles.raw_min_zoom,
    )  # fmt: skip
    record = with_progress(await uploads.get_upload(conn, upload_id, caller))
    return JSONResponse(
        jsonable_encoder(record),
        status_code=202,
        headers={"Location": f"/uploads/{upload_id}"},
    )


@router.get("", summary="Recent uploads")
async def list_uploads(
    conn: Conn, caller: Caller, borough: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first; a borough key sees its own borough's uploads only."""
    caller.require_role("admin", "borough")
    return [
        with_progress(r) for r in await uploads.list_uploads(conn, caller, borough, min(max(limit, 1), 1000))
    ]


@router.get("/{upload_id}", summary="One upload: state, progress, counts, mapping, notes")
async def get_upload(upload_id: int, conn: Conn, caller: Caller) -> dict[str, Any]:
    """``state`` is queued, running, previewed, applied, rejected or failed; ``counts`` has new/changed/unchanged/retired."""
    caller.require_role("admin", "borough")
    return with_progress(await uploads.get_upload(conn, upload_id, caller))


@router.get("/{upload_id}/errors.csv", summary="Row errors as CSV", response_class=Response)
async def errors_csv(upload_id: int, conn: Conn, caller: Caller) -> Response:
    """One line per problem: row, source_id, column, value, message."""
    caller.require_role("admin", "borough")
    await uploads.get_upload(conn, upload_id, caller)
    body = write_records(ERROR_COLUMNS, await uploads.upload_errors(conn, upload_id))
    return Response(
        body, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="upload-{upload_id}-errors.csv"'},
    )  # fmt: skip


@router.get("/{upload_id}/errors.geojson", summary="Row errors as GeoJSON (WGS84)")
async def errors_geojson(upload_id: int, conn: Conn, caller: Caller) -> JSONResponse:
    """The errors that have a geometry, as features (others with a null geometry)."""
    caller.require_role("admin", "borough")
    await uploads.get_upload(conn, upload_id, caller)
    rows = await uploads.upload_errors(conn, upload_id)
    features = [
        {"type": "Feature", "geometry": r["geometry"], "properties": {k: r[k] for k in ERROR_COLUMNS}}
        for r in rows
    ]
    return JSONResponse(
        {"type": "FeatureCollection", "features": features}, media_type="application/geo+json"
    )


@router.post(
    "/{upload_id}/apply",
    status_code=202,
    summary="Apply a dry run that looked right",
    dependencies=[BOROUGH_WRITE],
)
async def apply_upload(
    upload_id: int, request: Request, conn: Conn, caller: Caller, settings: AppSettings
) -> dict[str, Any]:
    """Re-reads the stored file and applies it in one transaction (the counts may differ if data changed since)."""
    ticket = request.app.state.jobs.admit(caller.key_id)
    try:
        await uploads.mark_for_apply(conn, upload_id, caller)
    except BaseException:
        ticket.release()
        raise
    request.app.state.jobs.start(
        ticket, "uploads", upload_id, request.app.state.database_url, uploads.run_upload_job,
        request.app.state.database_url, upload_id, settings.upload, apply=True,
        raw_min_zoom=settings.tiles.raw_min_zoom,
    )  # fmt: skip
    return with_progress(await uploads.get_upload(conn, upload_id, caller))
