"""OGC API - Processes 1.0: the ``coverage`` process, its execution and its jobs (the coverage reports).

The jobs are the coverage reports of ``/coverage/reports``, made by the same functions; the
documents are :mod:`geo.coverage.processes`'. Only asynchronous execution is offered: an
execute request answers 201 with ``Location: /jobs/{id}`` and the job's ``statusInfo``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, Conn, RequireRoles
from api.params import base_url
from api.routes.coverage import ROLES, get_coverage_settings
from api.routes.ogc_html import HTML, HTML_RESPONSE, OgcFormat, Pages
from api.schemas import problems
from geo import coverage, webhooks
from geo.access.principals import AuthenticationFailed
from geo.coverage import InvalidCoverageRequest
from geo.coverage import processes as ogc
from geo.layers.features import parse_datetime

router = APIRouter(tags=["OGC API Processes"])

NO_SUCH_PROCESS = (404, "No process has that id (type …/no-such-process).")
NO_SUCH_JOB = (404, "No job has that id, or this key may not see it (type …/no-such-job).")
PREFER_HELP = "respond-async (the only mode offered, and the default)."


class ExecuteRequest(BaseModel):
    """The standard's execute request: the inputs of the coverage process (see /processes/coverage)."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(
        description="The process inputs by id: the fields of a coverage request (area, thresholds, k…), "
        'each a plain value or qualified as {"value": …}.',
        examples=[{"area": {"boroughs": ["E09000007"]}, "k": 5}],
    )
    outputs: dict[str, Any] | None = Field(
        None, description="Ignored: every output is kept; choose at /jobs/{id}/results?outputs=."
    )
    subscriber: dict[str, Any] | None = Field(
        None,
        description="Callbacks: successUri is sent the job's results when it is done, failedUri its "
        "status when it failed (posted, signed and retried as webhooks are; public http(s) URLs). "
        "inProgressUri is refused: follow /jobs/{id} for progress.",
    )


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _self_links(href: str, title: str = "This list") -> list[dict[str, str]]:
    """``self``, and the same as an HTML page."""
    return [
        {"href": href, "rel": "self", "type": "application/json", "title": title},
        {"href": f"{href}?f=html", "rel": "alternate", "type": HTML, "title": f"{title} as HTML"},
    ]


#: ``responses=`` of the documents that are pages too (``f=html`` or ``Accept: text/html``).
JSON_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON, or HTML for a browser", **HTML_RESPONSE}
}


@router.get(
    "/processes", summary="The processes offered", response_model=dict[str, Any],
    responses={**JSON_OR_HTML, **problems(400)},
)  # fmt: skip
async def process_list(
    request: Request,
    fmt: OgcFormat,
    limit: Annotated[int, Query(ge=1, le=10000, description="Most processes listed.")] = 10,
) -> dict[str, Any] | HTMLResponse:
    """One process, ``coverage``: a coverage report computed as a job."""
    base = base_url(request)
    doc = {"processes": [ogc.process_summary(base)][:limit], "links": _self_links(f"{base}/processes")}
    return Pages(request, base).processes(doc) if fmt == "html" else doc


@router.get(
    "/processes/{process_id}", summary="A process description", response_model=dict[str, Any],
    responses={**JSON_OR_HTML, **problems(400, NO_SUCH_PROCESS)},
)  # fmt: skip
async def process_description(
    request: Request, process_id: str, fmt: OgcFormat
) -> dict[str, Any] | HTMLResponse:
    """Its inputs (the JSON Schema of the coverage request, field by field) and outputs (the report's)."""
    ogc.get_process(process_id)
    base = base_url(request)
    doc = ogc.process_description(base)
    here = f"{base}/processes/{process_id}"
    doc["links"] = [
        *doc["links"],
        {"href": f"{here}?f=html", "rel": "alternate", "type": HTML, "title": "As HTML"},
    ]
    return Pages(request, base).process(doc) if fmt == "html" else doc


@router.post(
    "/processes/{process_id}/execution",
    status_code=201,
    summary="Execute a process: a job (asynchronous)",
    response_model=dict[str, Any],
    dependencies=[Depends(RequireRoles(*ROLES))],
    responses=problems(
        (400, "An input or a subscriber URL cannot be used: `errors` say where (inputs.<id>…, subscriber.<uri>)."),
        401, 403, NO_SUCH_PROCESS, (409, "ready_now was asked of a database without wayleaves."), 413, 422, 429,
    ),
)  # fmt: skip
async def execute(
    request: Request,
    process_id: str,
    body: ExecuteRequest,
    conn: Conn,
    caller: Caller,
    prefer: Annotated[str | None, Header(description=PREFER_HELP)] = None,
) -> JSONResponse:
    """Creates a coverage report in the background (the same job as ``POST /coverage/reports``).

    Answers 201, ``Location: /jobs/{id}`` and the job's status; poll it for progress.
    """
    ogc.get_process(process_id)
    settings = get_coverage_settings(request)
    model = ogc.read_inputs(body.inputs)
    callbacks = {}
    if body.subscriber is not None:
        caller.require_key()
        allow_private = request.app.state.settings.webhook.allow_private
        callbacks = webhooks.check_subscriber(body.subscriber, allow_private=allow_private)
    try:
        parsed = coverage.build_request(model, settings)
    except InvalidCoverageRequest as exc:
        raise ogc.invalid_input(exc) from None
    url = request.app.state.database_url
    jobs = request.app.state.jobs
    ticket = jobs.admit(caller.key_id)
    try:
        report_id = await asyncio.to_thread(coverage.open_report, url, parsed, caller)
        if callbacks:  # before the job starts: its end cannot come first
            await webhooks.create_job_callbacks(conn, caller, report_id, base_url(request), callbacks)
    except BaseException:
        ticket.release()
        raise
    jobs.start(
        ticket, "coverage_reports", report_id, url, coverage.run_report, url, report_id, parsed,
        spacing=settings.spacing_m,
    )  # fmt: skip
    row = await ogc.read_job(conn, report_id, caller)
    headers = {"Location": f"/jobs/{report_id}"}
    if prefer and "respond-async" in prefer.lower():
        headers["Preference-Applied"] = "respond-async"
    return _json(ogc.status_info(row, base_url(request)), 201, headers)


@router.get(
    "/jobs", summary="Jobs (coverage reports) of this key", response_model=dict[str, Any],
    responses={**JSON_OR_HTML, **problems(400, 401, 403)},
)  # fmt: skip
async def job_list(
    request: Request,
    conn: Conn,
    caller: Caller,
    fmt: OgcFormat,
    limit: Annotated[int, Query(ge=1, le=10000, description="Most jobs listed, newest first.")] = 10,
    status: Annotated[
        str | None, Query(description="accepted, running, successful, failed, dismissed; comma-separated.")
    ] = None,
    process_id: Annotated[
        str | None, Query(alias="processID", description="Process ids, comma-separated.")
    ] = None,
    type_: Annotated[str | None, Query(alias="type", description="process (the only type).")] = None,
    datetime: Annotated[
        str | None, Query(description="Created at or within (RFC 3339 instant or interval).")
    ] = None,
    min_duration: Annotated[
        float | None, Query(alias="minDuration", ge=0, description="Seconds, at least.")
    ] = None,
    max_duration: Annotated[
        float | None, Query(alias="maxDuration", ge=0, description="Seconds, at most.")
    ] = None,
) -> dict[str, Any] | HTMLResponse:
    """Every job for admins, a key's own jobs for other keys (the same as ``/coverage/reports``)."""
    base = base_url(request)
    try:
        rows = await ogc.list_jobs(
            conn, caller, limit=limit, statuses=_listed(status), process_ids=_listed(process_id),
            types=_listed(type_), created=parse_datetime(datetime), min_duration=min_duration,
            max_duration=max_duration,
        )  # fmt: skip
    except AuthenticationFailed:
        if fmt != "html":
            raise
        return Pages(request, base).jobs(None, caller)  # a 401 page saying a key is needed
    doc = {"jobs": [ogc.status_info(r, base) for r in rows], "links": _self_links(f"{base}/jobs")}
    return Pages(request, base).jobs(doc, caller) if fmt == "html" else doc


def _listed(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


JobId = Annotated[str, Path(description="The job's id (a coverage report's id).")]


@router.get(
    "/jobs/{job_id}", summary="A job's status", response_model=dict[str, Any],
    responses={**JSON_OR_HTML, **problems(400, 401, 403, NO_SUCH_JOB)},
)  # fmt: skip
async def job_status(
    request: Request, job_id: JobId, conn: Conn, caller: Caller, fmt: OgcFormat
) -> dict[str, Any] | HTMLResponse:
    """Status (accepted, running, successful, failed, dismissed), progress 0-100, times, links."""
    base = base_url(request)
    try:
        row = await ogc.read_job(conn, ogc.job_id(job_id), caller)
    except AuthenticationFailed:
        if fmt != "html":
            raise
        return Pages(request, base).job(None, caller)  # a 401 page saying a key is needed
    doc = ogc.status_info(row, base)
    return Pages(request, base).job(doc, caller) if fmt == "html" else doc


@router.get(
    "/jobs/{job_id}/results",
    summary="A job's results",
    responses=problems(
        400, 401, 403,
        (404, "No such job (…/no-such-job), or it is not done yet (…/result-not-ready)."),
        (409, "The job failed or was dismissed: it has no results (`detail` says why)."),
    ),
)  # fmt: skip
async def job_results(
    request: Request,
    job_id: JobId,
    conn: Conn,
    caller: Caller,
    outputs: Annotated[str | None, Query(description="Only these outputs, comma-separated.")] = None,
) -> dict[str, Any]:
    """The summary by value, the downloads (gaps, cells, demand, priorities, report) by reference."""
    row = await ogc.read_job(conn, ogc.job_id(job_id), caller)
    return ogc.results_document(row, base_url(request), _listed(outputs))


@router.get(
    "/jobs/{job_id}/results/{output_id}",
    summary="One output of a job",
    response_model=dict[str, Any],
    responses={
        303: {"description": "A download: its URL under /coverage/reports/{id}/ (Location)."},
        **problems(
            (400, "No such output (`detail` lists them)."), 401, 403,
            (404, "No such job (…/no-such-job), or it is not done yet (…/result-not-ready)."),
            (409, "The job failed or was dismissed: it has no results (`detail` says why)."),
        ),
    },
)  # fmt: skip
async def job_result(
    request: Request,
    job_id: JobId,
    output_id: Annotated[str, Path(description="An output id of the process (summary, gaps, cells…).")],
    conn: Conn,
    caller: Caller,
) -> JSONResponse | RedirectResponse:
    """The summary as JSON; a download (GeoJSON, CSV, the page) by a 303 to the report's own URL."""
    row = await ogc.read_job(conn, ogc.job_id(job_id), caller)
    (value,) = ogc.results_document(row, "", [output_id]).values()
    if "href" in value:
        return RedirectResponse(base_url(request) + value["href"], status_code=303)
    return _json(value["value"])


@router.delete(
    "/jobs/{job_id}",
    summary="Dismiss a job",
    dependencies=[Depends(RequireRoles(*ROLES))],
    responses=problems(400, 401, 403, NO_SUCH_JOB),
)
async def dismiss_job(request: Request, job_id: JobId, conn: Conn, caller: Caller) -> dict[str, Any]:
    """Stops an accepted or running job (it ends dismissed); deletes a finished one with its results."""
    row = await ogc.read_job(conn, ogc.job_id(job_id), caller)
    ended = await ogc.dismiss(conn, row, caller)
    info = ogc.status_info(ended, base_url(request))
    info["links"] = [link for link in info["links"] if link["rel"] == "up"]
    return info
