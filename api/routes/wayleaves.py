"""Wayleaves: list, create, read, edit details, change status, history, KPIs and bulk status updates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import BOROUGH_WRITE, Caller, Conn, parse_if_match
from api.errors import BodyTooLarge
from geo.core.settings import WayleaveSettings
from geo.wayleaves import kpis as wayleave_kpis
from geo.wayleaves import store as wayleaves

router = APIRouter(prefix="/wayleaves", tags=["wayleaves"])
CSV = "text/csv; charset=utf-8"

#: Statuses of this module's domain errors (installed by create_app).


def _settings(request: Request) -> WayleaveSettings:
    return request.app.state.settings.wayleave  # type: ignore[no-any-return]


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        if format not in ("json", "csv"):
            raise wayleaves.InvalidWayleave(f"format: {format!r} is not json or csv")
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _version(if_match: str | None, body_version: int | None) -> int:
    if body_version is not None:
        return body_version
    version = parse_if_match(if_match)
    if version is not None:
        return version
    raise wayleaves.VersionRequired(
        "say which version you read: 'expected_version' in the body or an If-Match header"
    )


class NewWayleave(BaseModel):
    """A wayleave to create: on an existing site, or on assets that make a new site."""

    operator: str = Field(examples=["Openreach"])
    template: str = Field(default="standardised", examples=["standardised"])
    template_version: str | None = Field(default=None, examples=["CoL 2023.1"])
    site_id: int | None = None
    asset_ids: list[int] | None = None
    site_name: str | None = None
    status: str = Field(default="identified", description="identified or requested")
    reference: str | None = None
    operator_reference: str | None = None
    expires_on: dt.date | None = None
    notes: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    note: str | None = Field(default=None, description="Note of the first event")
    at: dt.datetime | None = Field(default=None, description="Backdate the first event (admin imports)")


class WayleaveEdit(BaseModel):
    """The details to change; fields left out stay as they are, null (or "") clears one.

    Status and key dates are not here: they move through ``/transitions``. Other fields are
    refused by name (422).
    """

    model_config = ConfigDict(extra="allow")  # so geo.wayleaves.store names what cannot be edited, and why

    template: str | None = Field(default=None, examples=["bespoke"], description="standardised or bespoke")
    template_version: str | None = Field(default=None, examples=["CoL 2023.1"])
    reference: str | None = Field(default=None, description="The borough's reference, unique in the borough")
    operator_reference: str | None = Field(
        default=None, description="The operator's own reference: the one field operator keys may change"
    )
    expires_on: dt.date | None = Field(default=None, description="Not before the signature or go-live")
    notes: str | None = None
    contact_name: str | None = None
    contact_email: str | None = Field(default=None, examples=["estates@example.org"])
    contact_phone: str | None = Field(default=None, examples=["020 7946 0000"])
    expected_version: int | None = Field(default=None, description="The version you read (or If-Match)")


class Transition(BaseModel):
    """A status change."""

    to: str = Field(examples=["requested"])
    note: str | None = None
    expected_version: int | None = Field(default=None, description="The version you read (or If-Match)")
    at: dt.datetime | None = Field(default=None, description="Backdate the event (admin imports)")


@router.get("", summary="Wayleaves, filtered", response_model=None)
async def list_wayleaves(
    request: Request,
    conn: Conn,
    caller: Caller,
    borough: Annotated[str | None, Query(description="GSS codes, comma-separated")] = None,
    operator: Annotated[str | None, Query(description="Operators, comma-separated")] = None,
    status: Annotated[str | None, Query(description="Statuses, comma-separated")] = None,
    overdue: Annotated[bool | None, Query(description="Only overdue (true) or on-time (false)")] = None,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy")] = None,
    bbox_crs: Annotated[int, Query(alias="bbox-crs", description="4326 (default) or 27700")] = 4326,
    after: Annotated[int | None, Query(description="Return ids after this one")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Annotated[str | None, Query(description="json (default) or csv")] = None,
) -> Any:
    """Operators see their own wayleaves; contacts and notes only for admins and the owning borough."""
    query = wayleaves.parse_query(borough, operator, status, overdue, bbox, bbox_crs, after, limit)
    rows = await wayleaves.list_wayleaves(conn, caller, query, _settings(request))
    if _wants_csv(request, format):
        return Response(wayleaves.to_csv(rows), media_type=CSV)
    return rows


@router.post("", summary="Create a wayleave", status_code=201, dependencies=[BOROUGH_WRITE])
async def create_wayleave(request: Request, body: NewWayleave, conn: Conn, caller: Caller) -> dict[str, Any]:
    """Borough keys create wayleaves on their own sites, admin keys anywhere."""
    return await wayleaves.create_wayleave(conn, caller, **body.model_dump(), settings=_settings(request))


@router.get("/kpis", summary="KPIs per borough and operator", response_model=None)
async def kpis(
    request: Request,
    conn: Conn,
    caller: Caller,
    format: Annotated[str | None, Query(description="json (default) or csv")] = None,
) -> Any:
    """Counts by status, days from request to signature (median, 90th percentile), share signed fast, stalled list."""
    result = await wayleave_kpis.wayleave_kpis(conn, caller, _settings(request))
    if _wants_csv(request, format):
        return Response(wayleave_kpis.kpis_csv(result), media_type=CSV)
    return result


@router.post(
    "/bulk",
    summary="Status updates from a CSV, all or nothing",
    response_model=None,
    dependencies=[BOROUGH_WRITE],
)
async def bulk(
    conn: Conn,
    caller: Caller,
    request: Request,
    file: Annotated[UploadFile, File(description="CSV: wayleave_id or reference, to, [version, note, at]")],
    dry_run: Annotated[bool, Query(description="Check only, apply nothing")] = False,
    format: Annotated[str | None, Query(description="Error report as json (default) or csv")] = None,
) -> Any:
    """422 with every row error when any row is invalid: nothing is applied then."""
    limit = _settings(request).bulk_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(f"{file.filename}: the CSV is larger than the limit of {limit:,} bytes")
    rows = wayleaves.read_bulk_csv(data)
    report = await wayleaves.bulk_transition(conn, caller, rows, dry_run=dry_run)
    status = 422 if report.errors else 200
    if _wants_csv(request, format):
        return Response(wayleaves.errors_csv(report.errors), media_type=CSV, status_code=status)
    return JSONResponse(report.to_dict(), status_code=status)


@router.get("/{wayleave_id}", summary="One wayleave")
async def get_wayleave(wayleave_id: int, request: Request, conn: Conn, caller: Caller) -> Response:
    """The wayleave, its clock and allowed next statuses; ``ETag`` is its version."""
    row = await wayleaves.get_wayleave(conn, wayleave_id, caller, _settings(request))
    return JSONResponse(jsonable_encoder(row), headers={"ETag": f'"{row["version"]}"'})


@router.patch("/{wayleave_id}", summary="Edit a wayleave's details")
async def patch_wayleave(
    wayleave_id: int,
    body: WayleaveEdit,
    request: Request,
    conn: Conn,
    caller: Caller,
    if_match: Annotated[str | None, Header(description="The version you read")] = None,
) -> Response:
    """409 when the wayleave changed since you read it or the reference is taken; every edit is kept (``/changes``).

    Admin keys edit every wayleave, borough keys their own borough's, operator keys only the
    ``operator_reference`` of their own operator's. ``ETag`` is the new version.
    """
    caller.require_key()
    expected = _version(if_match, body.expected_version)
    changes = body.model_dump(exclude_unset=True, exclude={"expected_version"})
    row = await wayleaves.update_wayleave(
        conn, wayleave_id, changes, caller, expected_version=expected, settings=_settings(request)
    )
    return JSONResponse(jsonable_encoder(row), headers={"ETag": f'"{row["version"]}"'})


@router.post("/{wayleave_id}/transitions", summary="Change a wayleave's status", dependencies=[BOROUGH_WRITE])
async def post_transition(
    wayleave_id: int,
    body: Transition,
    request: Request,
    conn: Conn,
    caller: Caller,
    if_match: Annotated[str | None, Header(description="The version you read")] = None,
) -> dict[str, Any]:
    """409 with the allowed next statuses when the rules refuse it, or when the wayleave changed since you read it."""
    expected = _version(if_match, body.expected_version)
    return await wayleaves.transition(
        conn, wayleave_id, body.to, caller, expected_version=expected, note=body.note, at=body.at,
        settings=_settings(request),
    )  # fmt: skip


@router.get("/{wayleave_id}/history", summary="A wayleave's events, oldest first")
async def get_history(wayleave_id: int, conn: Conn, caller: Caller) -> list[dict[str, Any]]:
    """Who, when, from, to and note (notes and authors for admins and the owning borough only).

    Only status changes: their replay is the status. Edits of the details are at ``/changes``.
    """
    return await wayleaves.history(conn, wayleave_id, caller)


@router.get("/{wayleave_id}/changes", summary="Edits of a wayleave's details, oldest first")
async def get_changes(wayleave_id: int, conn: Conn, caller: Caller) -> list[dict[str, Any]]:
    """Each edit: the version it made, when, who, and every field's old and new value.

    Notes, contacts and authors for admins and the owning borough only: other keys see edits of
    the other fields.
    """
    return await wayleaves.changes(conn, wayleave_id, caller)
