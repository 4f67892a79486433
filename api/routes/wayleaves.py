"""Wayleaves: list, create, read, edit details, change status, history, KPIs and bulk status updates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import MISSING, BaseModel, ConfigDict, Field, WithJsonSchema

from api.deps import BOROUGH_WRITE, Caller, Conn
from api.errors import BodyTooLarge
from api.params import IfMatch, JsonOrCsv, ListBbox
from api.schemas import IsoDatetime, problems
from geo import wayleaves
from geo.core.errors import InvalidParameter
from geo.core.row_errors import errors_csv
from geo.core.settings import WayleaveSettings

router = APIRouter(prefix="/wayleaves", tags=["wayleaves"])
CSV = "text/csv; charset=utf-8"

Status = Annotated[str, WithJsonSchema({"type": "string", "enum": list(wayleaves.STATUSES)})]
InitialStatus = Annotated[str, WithJsonSchema({"type": "string", "enum": list(wayleaves.INITIAL)})]
Template = Annotated[str, WithJsonSchema({"type": "string", "enum": list(wayleaves.TEMPLATES)})]
RESTRICTED = "Only for admins and the owning borough (absent for every other caller)."
LINE = "One line, at most 200 characters."
AS_CSV = "CSV instead with format=csv or 'Accept: text/csv'"


def _settings(request: Request) -> WayleaveSettings:
    return request.app.state.settings.wayleave  # type: ignore[no-any-return]


def _version(if_match: int | None, body_version: int | None) -> int:
    if body_version is not None:
        return body_version
    if if_match is not None:
        return if_match
    raise wayleaves.VersionRequired(
        "say which version you read: 'expected_version' in the body or an If-Match header"
    )


# Bodies ------------------------------------------------------------------------------------------------
class NewWayleave(BaseModel):
    """A wayleave to create: on an existing site, or on assets that make a new site."""

    operator: str = Field(
        examples=["Openreach"], description="The operator's name, as its wayleaves carry it"
    )
    template: Template = Field(default="standardised", description="standardised or bespoke")
    template_version: str | None = Field(
        default=None, examples=["CoL 2023.1"], description=f"The template's version. {LINE}"
    )
    site_id: int | None = Field(default=None, description="An existing site's id (or give asset_ids)")
    asset_ids: list[int] | None = Field(
        default=None, description="The assets of a new site, all in one borough (when no site_id)"
    )
    site_name: str | None = Field(
        default=None, description="The new site's name (default: 'assets' and their ids)"
    )
    status: InitialStatus = Field(default="identified", description="identified or requested")
    reference: str | None = Field(
        default=None, description=f"The borough's reference, unique in the borough. {LINE}"
    )
    operator_reference: str | None = Field(default=None, description=f"The operator's own reference. {LINE}")
    expires_on: dt.date | None = Field(default=None, description="When the agreement ends")
    notes: str | None = Field(default=None, description="Internal notes, at most 10,000 characters")
    contact_name: str | None = Field(default=None, description=f"The landlord or site contact. {LINE}")
    contact_email: str | None = Field(
        default=None, examples=["estates@example.org"], description="The contact's email address"
    )
    contact_phone: str | None = Field(
        default=None, examples=["020 7946 0000"], description="The contact's phone: digits, spaces, + ( ) - ."
    )
    note: str | None = Field(default=None, description="Note of the first event")
    at: dt.datetime | None = Field(default=None, description="Backdate the first event (admin imports)")


class WayleaveEdit(BaseModel):
    """The details to change; fields left out stay as they are, null (or "") clears one.

    Status and key dates are not here: they move through ``/transitions``. Other fields are
    refused by name (422).
    """

    model_config = ConfigDict(extra="allow")  # so geo.wayleaves names what cannot be edited, and why

    template: Template | None = Field(
        default=None, examples=["bespoke"], description="standardised or bespoke"
    )
    template_version: str | None = Field(
        default=None, examples=["CoL 2023.1"], description=f"The template's version. {LINE}"
    )
    reference: str | None = Field(
        default=None, description=f"The borough's reference, unique in the borough. {LINE}"
    )
    operator_reference: str | None = Field(
        default=None,
        description=f"The operator's own reference: the one field operator keys may change. {LINE}",
    )
    expires_on: dt.date | None = Field(default=None, description="Not before the signature or go-live")
    notes: str | None = Field(default=None, description="Internal notes, at most 10,000 characters")
    contact_name: str | None = Field(default=None, description=f"The landlord or site contact. {LINE}")
    contact_email: str | None = Field(
        default=None, examples=["estates@example.org"], description="The contact's email address"
    )
    contact_phone: str | None = Field(
        default=None, examples=["020 7946 0000"], description="The contact's phone: digits, spaces, + ( ) - ."
    )
    expected_version: int | None = Field(default=None, description="The version you read (or If-Match)")


class Transition(BaseModel):
    """A status change."""

    to: Status = Field(examples=["requested"], description="The new status: one the rules allow next")
    note: str | None = Field(default=None, description="Why, or what happened")
    expected_version: int | None = Field(default=None, description="The version you read (or If-Match)")
    at: dt.datetime | None = Field(default=None, description="Backdate the event (admin imports)")


# Responses ---------------------------------------------------------------------------------------------
class Wayleave(BaseModel):
    """A wayleave as the caller may see it, with its clock and the statuses allowed next."""

    id: int = Field(ge=1, description="The wayleave's id")
    site_id: int = Field(ge=1, description="Its site's id")
    site_name: str = Field(description="Its site's name")
    borough_code: str = Field(pattern=r"^E09[0-9]{6}$", description="GSS code of the site's borough")
    operator: str = Field(description="The operator's name")
    template: Template = Field(description="standardised or bespoke")
    template_version: str | None = Field(description="The template's version")
    status: Status = Field(description="The current status: the replay of its events (see /history)")
    status_since: IsoDatetime = Field(description="When it entered the status")
    resume_status: Status | None = Field(description="While on_hold: the status it returns to")
    requested_on: dt.date | None = Field(description="Key date: first requested (London date)")
    surveyed_on: dt.date | None = Field(description="Key date: first surveyed")
    terms_issued_on: dt.date | None = Field(description="Key date: terms first issued")
    signed_on: dt.date | None = Field(description="Key date: first signed")
    live_on: dt.date | None = Field(description="Key date: first live")
    expires_on: dt.date | None = Field(description="When the agreement ends")
    reference: str | None = Field(description="The borough's reference, unique in the borough")
    operator_reference: str | None = Field(description="The operator's own reference")
    notes: str | None | MISSING = Field(default=MISSING, description=f"Internal notes. {RESTRICTED}")
    contact_name: str | None | MISSING = Field(
        default=MISSING, description=f"The landlord or site contact. {RESTRICTED}"
    )
    contact_email: str | None | MISSING = Field(
        default=MISSING, description=f"The contact's email. {RESTRICTED}"
    )
    contact_phone: str | None | MISSING = Field(
        default=MISSING, description=f"The contact's phone. {RESTRICTED}"
    )
    version: int = Field(ge=1, description="Its version: one more at each status change or edit (ETag)")
    created_at: IsoDatetime = Field(description="When it was created")
    created_by: str | MISSING = Field(default=MISSING, description=f"Who created it. {RESTRICTED}")
    asset_ids: list[int] = Field(description="The assets of its site")
    allowed_next: list[Status] = Field(description="The statuses it may move to next")
    days_in_status: int = Field(description="Whole days since it entered the status")
    working_days_in_status: int = Field(ge=0, description="Working days since it entered the status")
    due_on: dt.date | None = Field(
        description="The last day to move on from the status; null without a deadline"
    )
    overdue: bool = Field(description="Whether today is past due_on")
    next_chase_on: dt.date | None = Field(description="While requested: the next date to chase the landlord")


class Event(BaseModel):
    """One status change: the events replayed give the status."""

    seq: int = Field(ge=1, description="1 for the first event, then one more each")
    at: IsoDatetime = Field(description="When it happened (backdated by imports)")
    recorded_at: IsoDatetime = Field(description="When the service recorded it")
    by: str | MISSING = Field(default=MISSING, description=f"Who made it. {RESTRICTED}")
    from_status: Status | None = Field(description="The status it left; null for the first event")
    to_status: Status = Field(description="The status it entered")
    resume_status: Status | None = Field(description="For a move to on_hold: the status it returns to")
    note: str | None | MISSING = Field(default=MISSING, description=f"Its note. {RESTRICTED}")


class FieldChange(BaseModel):
    """One field of an edit."""

    field: str = Field(description="The detail changed")
    old: str | None = Field(description="Its value before, as text (dates YYYY-MM-DD); null when empty")
    new: str | None = Field(description="Its value after, as text; null when cleared")


class Edit(BaseModel):
    """One edit of a wayleave's details: the version it made and every field it changed."""

    version: int = Field(ge=2, description="The version the edit made")
    at: IsoDatetime = Field(description="When")
    by: str | MISSING = Field(default=MISSING, description=f"Who. {RESTRICTED}")
    fields: list[FieldChange] = Field(description="The fields changed, in the order of the details")


class KpiSummary(BaseModel):
    """The KPIs of a group of wayleaves."""

    total: int = Field(ge=0, description="Wayleaves in the group")
    by_status: dict[str, int] = Field(description="Wayleaves per status, every status listed")
    overdue: int = Field(ge=0, description="Wayleaves past the deadline of their status")
    signed: int = Field(ge=0, description="Wayleaves signed after a request")
    median_days_to_sign: float | None = Field(
        description="Median days from the first request to the first signature; null when none signed"
    )
    p90_days_to_sign: float | None = Field(description="90th percentile of the same; null when none signed")
    signed_within_share: float | None = Field(
        ge=0,
        le=1,
        description="Share signed within signed_within_days, of the requests whose outcome at that age is known",
    )


class _BoroughKey(BaseModel):
    borough_code: str = Field(pattern=r"^E09[0-9]{6}$", description="GSS code of the borough")


class _OperatorKey(BaseModel):
    operator: str = Field(description="The operator's name")


# The key's class comes last so that its field comes first, as the answer gives it.
class BoroughKpis(KpiSummary, _BoroughKey):
    """The KPIs of one borough's wayleaves."""


class OperatorKpis(KpiSummary, _OperatorKey):
    """The KPIs of one operator's wayleaves."""


class Stalled(BaseModel):
    """An open or on-hold wayleave past the deadline of its status."""

    id: int = Field(ge=1, description="The wayleave's id")
    site_name: str = Field(description="Its site's name")
    borough_code: str = Field(pattern=r"^E09[0-9]{6}$", description="GSS code of the site's borough")
    operator: str = Field(description="The operator's name")
    status: Status = Field(description="Its status")
    status_since: IsoDatetime = Field(description="When it entered the status")
    days_in_status: int = Field(description="Whole days since")
    working_days_in_status: int = Field(ge=0, description="Working days since")
    due_on: dt.date = Field(description="The last day it had to move on")


class Kpis(BaseModel):
    """KPIs over the wayleaves the caller may see (operators: their own): overall, per borough, per operator."""

    generated_at: IsoDatetime = Field(description="When they were computed")
    signed_within_days: int = Field(ge=1, description="The N of signed_within_share")
    overall: KpiSummary = Field(description="Every wayleave the caller may see")
    by_borough: list[BoroughKpis] = Field(description="Per borough, by GSS code")
    by_operator: list[OperatorKpis] = Field(description="Per operator, by name")
    stalled: list[Stalled] = Field(description="Stalled wayleaves, longest in status first")


class BulkRowError(BaseModel):
    """One problem with one row of a bulk CSV."""

    row: int = Field(ge=1, description="The data row (1 = the first after the header)")
    source_id: str | None = Field(description="The row's wayleave_id, else its reference")
    column: str | None = Field(description="The column at fault")
    value: str | None = Field(description="Its value")
    message: str = Field(description="What is wrong")


class BulkReport(BaseModel):
    """What a bulk update did, or would do (dry run): nothing at all when a row has an error."""

    rows: int = Field(ge=0, description="Data rows read")
    applied: int = Field(ge=0, description="Status changes applied (0 on a dry run or with errors)")
    dry_run: bool = Field(description="Checked only")
    errors: list[BulkRowError] = Field(description="Every row error; empty when the file is valid")


Boroughs = Annotated[str | None, Query(description="GSS codes, comma-separated")]
Operators = Annotated[str | None, Query(description="Operators, comma-separated")]
Statuses = Annotated[
    str | None,
    Query(
        description=f"Statuses, comma-separated ({', '.join(wayleaves.STATUSES)}); an unknown one is a 400",
        examples=["requested,surveyed"],
    ),
]
Overdue = Annotated[bool | None, Query(description="Only overdue (true) or on-time (false)")]


def _once(request: Request, *names: str) -> None:
    """A list filter given twice would silently keep one value: say how to give several."""
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise InvalidParameter(
                f"{name}: given {len(values)} times ({', '.join(v[:40] for v in values[:5])}); "
                f"give several values comma-separated in one parameter ({name}={','.join(values[:2])})"
            )


def _next_link(request: Request, after: int | None) -> str | None:
    if after is None:
        return None
    return f'<{request.url.include_query_params(after=after)}>; rel="next"'


class StatusCount(BaseModel):
    """The wayleaves of one status among those counted."""

    total: int = Field(ge=0, description="Wayleaves in the status")
    overdue: int = Field(ge=0, description="Of them, past the deadline of the status")


class Counts(BaseModel):
    """How many wayleaves match the filters, overall and per status: every page of the list together."""

    total: int = Field(ge=0, description="Wayleaves matching the filters")
    overdue: int = Field(ge=0, description="Of them, overdue")
    by_status: dict[str, StatusCount] = Field(description="Per status, every status listed (0 when none)")


# Routes ------------------------------------------------------------------------------------------------
@router.get(
    "",
    summary="Wayleaves, filtered, a page at a time",
    response_model=list[Wayleave],
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": (
                f"The wayleaves, in id order; {AS_CSV}. When more match than ``limit``, a "
                '``Link: <…after=ID…>; rel="next"`` header gives the next page (``/wayleaves/counts`` '
                "says how many match in all)."
            ),
        },
        **problems(400, 401, 422),
    },
)
async def list_wayleaves(
    request: Request,
    response: Response,
    conn: Conn,
    caller: Caller,
    bbox: ListBbox,
    format: JsonOrCsv,
    borough: Boroughs = None,
    operator: Operators = None,
    status: Statuses = None,
    overdue: Overdue = None,
    after: Annotated[int | None, Query(description="Return ids after this one (the next page)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many (a page)")] = 1000,
) -> Any:
    """Operators see their own wayleaves; contacts and notes only for admins and the owning borough.

    Filters combine with AND, the values of one filter with OR. Several values go comma-separated
    in one parameter (``status=requested,surveyed``), as on every list of the API; a filter given
    twice is a 400. Page on with ``after`` (the ``Link`` header's next page).
    """
    _once(request, "borough", "operator", "status")
    query = wayleaves.parse_query(borough, operator, status, overdue, bbox, after, limit)
    page = await wayleaves.wayleave_page(conn, caller, query, _settings(request))
    link = _next_link(request, page.next_after)
    if format == "csv":
        return Response(wayleaves.to_csv(page.rows), media_type=CSV, headers={"Link": link} if link else None)
    if link:
        response.headers["Link"] = link
    return page.rows


@router.get(
    "/counts",
    summary="How many wayleaves match the filters, per status",
    response_model=Counts,
    responses=problems(400, 401, 422),
)
async def count_wayleaves(
    request: Request,
    conn: Conn,
    caller: Caller,
    bbox: ListBbox,
    borough: Boroughs = None,
    operator: Operators = None,
    status: Statuses = None,
    overdue: Overdue = None,
) -> dict[str, Any]:
    """The totals of the list's filters (every page together), as the caller may see them."""
    _once(request, "borough", "operator", "status")
    query = wayleaves.parse_query(borough, operator, status, overdue, bbox)
    return await wayleaves.count_wayleaves(conn, caller, query, _settings(request))


@router.post(
    "",
    summary="Create a wayleave",
    status_code=201,
    dependencies=[BOROUGH_WRITE],
    response_model=Wayleave,
    responses=problems(401, 403, 409, 422),
)
async def create_wayleave(request: Request, body: NewWayleave, conn: Conn, caller: Caller) -> dict[str, Any]:
    """Borough keys create wayleaves on their own sites, admin keys anywhere."""
    return await wayleaves.create_wayleave(conn, caller, **body.model_dump(), settings=_settings(request))


@router.get(
    "/kpis",
    summary="KPIs per borough and operator",
    response_model=Kpis,
    responses={
        200: {"content": {"text/csv": {}}, "description": f"The KPIs; {AS_CSV} (one row per group)"},
        **problems(400, 401),
    },
)
async def kpis(
    request: Request,
    conn: Conn,
    caller: Caller,
    format: JsonOrCsv,
) -> Any:
    """Counts by status, days from request to signature (median, 90th percentile), share signed fast, stalled list."""
    result = await wayleaves.wayleave_kpis(conn, caller, _settings(request))
    if format == "csv":
        return Response(wayleaves.kpis_csv(result), media_type=CSV)
    return result


@router.post(
    "/bulk",
    summary="Status updates from a CSV, all or nothing",
    response_model=BulkReport,
    dependencies=[BOROUGH_WRITE],
    responses={
        200: {"description": "Every row applied, or checked (dry run)"},
        422: {
            "model": BulkReport,
            "content": {"text/csv": {}},
            "description": "Row errors, nothing applied (CSV with format=csv); or a problem document for a file that cannot be read",
        },
        **problems(400, 401, 403, 413),
    },
)
async def bulk(
    conn: Conn,
    caller: Caller,
    request: Request,
    file: Annotated[UploadFile, File(description="CSV: wayleave_id or reference, to, [version, note, at]")],
    format: JsonOrCsv,
    dry_run: Annotated[bool, Query(description="Check only, apply nothing")] = False,
) -> Any:
    """422 with every row error when any row is invalid: nothing is applied then."""
    limit = _settings(request).bulk_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(f"{file.filename}: the CSV is larger than the limit of {limit:,} bytes")
    rows = wayleaves.read_bulk_csv(data)
    report = await wayleaves.bulk_transition(conn, caller, rows, dry_run=dry_run)
    status = 422 if report.errors else 200
    if format == "csv":
        return Response(errors_csv(report.errors), media_type=CSV, status_code=status)
    return JSONResponse(report.to_dict(), status_code=status)


@router.get(
    "/{wayleave_id}",
    summary="One wayleave",
    response_model=Wayleave,
    responses=problems(401, 403, 404),
)
async def get_wayleave(
    wayleave_id: int, request: Request, conn: Conn, caller: Caller, response: Response
) -> dict[str, Any]:
    """The wayleave, its clock and allowed next statuses; ``ETag`` is its version."""
    row = await wayleaves.get_wayleave(conn, wayleave_id, caller, _settings(request))
    response.headers["ETag"] = f'"{row["version"]}"'
    return row


@router.patch(
    "/{wayleave_id}",
    summary="Edit a wayleave's details",
    response_model=Wayleave,
    responses=problems(400, 401, 403, 404, 409, 422, 428),
)
async def patch_wayleave(
    wayleave_id: int,
    body: WayleaveEdit,
    request: Request,
    conn: Conn,
    caller: Caller,
    response: Response,
    if_match: IfMatch,
) -> dict[str, Any]:
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
    response.headers["ETag"] = f'"{row["version"]}"'
    return row


@router.post(
    "/{wayleave_id}/transitions",
    summary="Change a wayleave's status",
    dependencies=[BOROUGH_WRITE],
    response_model=Wayleave,
    responses=problems(400, 401, 403, 404, 409, 422, 428),
)
async def post_transition(
    wayleave_id: int,
    body: Transition,
    request: Request,
    conn: Conn,
    caller: Caller,
    if_match: IfMatch,
) -> dict[str, Any]:
    """409 with the allowed next statuses when the rules refuse it, or when the wayleave changed since you read it."""
    expected = _version(if_match, body.expected_version)
    return await wayleaves.transition(
        conn, wayleave_id, body.to, caller, expected_version=expected, note=body.note, at=body.at,
        settings=_settings(request),
    )  # fmt: skip


@router.get(
    "/{wayleave_id}/history",
    summary="A wayleave's events, oldest first",
    response_model=list[Event],
    responses=problems(401, 403, 404),
)
async def get_history(wayleave_id: int, conn: Conn, caller: Caller) -> list[dict[str, Any]]:
    """Who, when, from, to and note (notes and authors for admins and the owning borough only).

    Only status changes: their replay is the status. Edits of the details are at ``/changes``.
    """
    return await wayleaves.history(conn, wayleave_id, caller)


@router.get(
    "/{wayleave_id}/changes",
    summary="Edits of a wayleave's details, oldest first",
    response_model=list[Edit],
    responses=problems(401, 403, 404),
)
async def get_changes(wayleave_id: int, conn: Conn, caller: Caller) -> list[dict[str, Any]]:
    """Each edit: the version it made, when, who, and every field's old and new value.

    Notes, contacts and authors for admins and the owning borough only: other keys see edits of
    the other fields.
    """
    return await wayleaves.changes(conn, wayleave_id, caller)
