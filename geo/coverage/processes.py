"""Coverage reports as OGC API - Processes - Part 1: Core 1.0: the ``coverage`` process and its jobs.

A job is a coverage report: the same row of ``coverage_reports``, made by the same functions
(:func:`geo.coverage.store.open_report`, :func:`geo.coverage.store.run_report`), so
``/coverage/reports`` (the richer native view) and ``/jobs`` never disagree. This module holds
what the standard adds: the process description (its ``inputs`` generated from the JSON Schema of
:class:`geo.coverage.request.CoverageRequest`, its ``outputs`` the report's downloads), the execute
request's inputs read into that model, a report's record as a ``statusInfo``, the results
document, the job list with the standard's filters, and the dismissal.

States: queued -> ``accepted``, running -> ``running``, done -> ``successful``, failed and
interrupted -> ``failed``, dismissed -> ``dismissed``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ValidationError

from geo.access.audit import record_async
from geo.access.principals import Principal
from geo.core.errors import Conflict, InvalidParameter, NotFound
from geo.coverage.errors import InvalidCoverageRequest
from geo.coverage.request import CoverageRequest
from geo.coverage.results import REPORT_COLUMNS
from geo.coverage.schemas import ReportSummary

PROCESS_ID = "coverage"
VERSION = "1.0.0"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
#: The conformance classes of OGC API - Processes 1.0 implemented here (each exercised by the tests).
CONFORMANCE = [
    CONF + "core",
    CONF + "ogc-process-description",
    CONF + "json",
    CONF + "oas30",
    CONF + "job-list",
    CONF + "dismiss",
    CONF + "callback",
    CONF + "html",
]
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"

#: Report state -> the standard's status code.
STATUS = {
    "queued": "accepted",
    "running": "running",
    "done": "successful",
    "failed": "failed",
    "interrupted": "failed",
    "dismissed": "dismissed",
}
STATUS_CODES = ("accepted", "running", "successful", "failed", "dismissed")
UNFINISHED = ("queued", "running")

#: The outputs: id -> (the native download's name, media type, title, description).
FILE_OUTPUTS = {
    "gaps": ("gaps.geojson", "application/geo+json", "Gaps", "The gaps as polygons, largest first (WGS84)."),
    "cells": ("cells.geojson", "application/geo+json", "Grid cells", "The grid cells with their distances."),
    "demand": (
        "demand.csv",
        "text/csv",
        "Demand points",
        "Every demand point and its distance (EPSG:27700).",
    ),
    "priorities": ("priorities.csv", "text/csv", "Priorities", "The prioritised candidate assets, in order."),
    "report": ("report.html", "text/html", "Report", "The report as a page to read and print (A4)."),
}
OUTPUTS = ("summary", *FILE_OUTPUTS)


class NoSuchProcess(NotFound):
    """No process has that id (404, the standard's no-such-process)."""

    problem_extra = {"type": EXCEPTIONS + "no-such-process"}


class NoSuchJob(NotFound):
    """No job has that id, or the key may not see it (404, the standard's no-such-job)."""

    problem_extra = {"type": EXCEPTIONS + "no-such-job"}


class ResultNotReady(NotFound):
    """The job is accepted or running: its results do not exist yet (404, the standard's result-not-ready)."""

    problem_extra = {"type": EXCEPTIONS + "result-not-ready"}


class JobFailed(Conflict):
    """The job failed, was interrupted or dismissed: it has no results (409, with its message)."""


class InvalidProcessInput(InvalidParameter):
    """An input of an execute request cannot be used (400); ``errors`` say where (``inputs.<id>…``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['where']}: {e['message']}" for e in errors))
        self.problem_extra = {"errors": errors}


def get_process(process_id: str) -> str:
    """The process id if it is one of ours, else :class:`NoSuchProcess`."""
    if process_id != PROCESS_ID:
        raise NoSuchProcess(f"no process {process_id!r}; processes: {PROCESS_ID}")
    return process_id


# The description ----------------------------------------------------------------------------------------
def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON Schema with its ``$ref``s to ``#/$defs/…`` replaced by the definitions (none is recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(defs[ref.removeprefix("#/$defs/")], defs), **_inline(rest, defs)}
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return _inline(schema, schema.get("$defs", {}))  # type: ignore[no-any-return]


def process_inputs() -> dict[str, Any]:
    """The process's inputs, one per field of :class:`CoverageRequest`, from its JSON Schema."""
    schema = _schema_of(CoverageRequest)
    required = set(schema.get("required", ()))
    inputs = {}
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        title, description = prop.pop("title", name), prop.pop("description", "")
        inputs[name] = {
            "title": title,
            "description": description,
            "minOccurs": 1 if name in required else 0,
            "maxOccurs": 1,
            "schema": prop,
        }
    return inputs


def process_outputs() -> dict[str, Any]:
    """The process's outputs: the summary (JSON, in the results) and the report's downloads (links)."""
    summary = _schema_of(ReportSummary)
    outputs: dict[str, Any] = {
        "summary": {
            "title": "Summary",
            "description": "Coverage at each threshold, of the whole area and per borough; gaps; assets.",
            "schema": {**summary, "contentMediaType": "application/json"},
        }
    }
    for name, (_, media_type, title, description) in FILE_OUTPUTS.items():
        outputs[name] = {
            "title": title,
            "description": description + " In the results as a link to the download.",
            "schema": {"type": "string", "contentMediaType": media_type},
        }
    return outputs


def process_summary(base: str) -> dict[str, Any]:
    """The process in the process list."""
    return {
        "id": PROCESS_ID,
        "version": VERSION,
        "title": "Coverage report",
        "description": "How much of an area's premises or ground is within reach of usable assets, where the "
        "gaps are and which candidate sites to open up first: the same report as POST /coverage/reports.",
        "keywords": ["coverage", "full fibre", "5G", "London"],
        "jobControlOptions": ["async-execute", "dismiss"],
        "outputTransmission": ["value", "reference"],
        "links": [
            _link(f"{base}/processes/{PROCESS_ID}", "self", "application/json", "Process description"),
            _link(f"{base}/processes/{PROCESS_ID}/execution", REL + "execute", "application/json", "Execute"),
        ],
    }


def process_description(base: str) -> dict[str, Any]:
    """The process description (``/processes/coverage``)."""
    return {**process_summary(base), "inputs": process_inputs(), "outputs": process_outputs()}


def _link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": media_type}
    if title:
        out["title"] = title
    return out


# The execute request ----------------------------------------------------------------------------------
def read_inputs(inputs: dict[str, Any]) -> CoverageRequest:
    """An execute request's ``inputs`` as a validated :class:`CoverageRequest`, or :class:`InvalidProcessInput`.

    A value may be given plainly or qualified (``{"value": …, "mediaType": …}``); a value by
    reference (``{"href": …}``) is refused, as the server fetches no URL a caller names.
    """
    values: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, dict) and "href" in value and "value" not in value:
            raise InvalidProcessInput(
                [{"where": f"inputs.{name}", "message": "inputs by reference are not supported; give the value",
                  "value": str(value["href"])[:200]}]
            )  # fmt: skip
        values[name] = value["value"] if isinstance(value, dict) and "value" in value else value
    try:
        return CoverageRequest.model_validate(values)
    except ValidationError as exc:
        raise InvalidProcessInput([_where(e) for e in exc.errors(include_url=False)]) from None


def _where(error: Any) -> dict[str, Any]:
    where = ".".join(["inputs", *(str(p) for p in error["loc"])])
    value = error.get("input")
    if not isinstance(value, str | int | float | bool) and value is not None:
        value = repr(value)[:200]
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = f"not an input of the coverage process (it takes {', '.join(process_inputs())})"
    return {"where": where, "message": message, "value": value}


def invalid_input(exc: InvalidCoverageRequest) -> InvalidProcessInput:
    """A request refused by :func:`geo.coverage.request.build_request` (its message starts with the field)."""
    message = str(exc)
    field, _, rest = message.partition(":")
    where = f"inputs.{field}" if rest and field.isidentifier() else "inputs"
    return InvalidProcessInput([{"where": where, "message": rest.strip() or message, "value": None}])


# Jobs ---------------------------------------------------------------------------------------------------
def status_info(row: dict[str, Any], base: str) -> dict[str, Any]:
    """A report's record as the standard's ``statusInfo``."""
    job = f"{base}/jobs/{row['id']}"
    status = STATUS[row["state"]]
    done, total = row["progress_done"], row["progress_total"]
    progress = 100 if status == "successful" else int(100 * done / total) if total else 0
    times = [t for t in (row["created_at"], row["started_at"], row["finished_at"]) if t is not None]
    links = [
        _link(job, "self", "application/json", "This job's status"),
        _link(f"{base}/jobs", "up", "application/json", "The job list"),
        _link(
            f"{base}/coverage/reports/{row['id']}", "alternate", "application/json", "The report (native API)"
        ),
    ]
    if status == "successful":
        links.append(_link(f"{job}/results", REL + "results", "application/json", "The job's results"))
    elif status == "failed":
        links.append(_link(f"{job}/results", REL + "exceptions", "application/problem+json", "Why it failed"))
    out = {
        "processID": PROCESS_ID,
        "type": "process",
        "jobID": str(row["id"]),
        "status": status,
        "message": row["message"] or _MESSAGES[status],
        "created": _iso(row["created_at"]),
        "started": _iso(row["started_at"]),
        "finished": _iso(row["finished_at"]),
        "updated": _iso(max(times)) if times else None,
        "progress": progress,
        "links": links,
    }
    return {k: v for k, v in out.items() if v is not None}


_MESSAGES = {
    "accepted": "Queued",
    "running": "Running",
    "successful": "Done",
    "failed": "Failed",
    "dismissed": "Dismissed",
}


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_id(text: str) -> int:
    """A job id of the path as a report id; :class:`NoSuchJob` for anything else."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NoSuchJob(f"no job has id {text!r}")
    return int(text)


async def read_job(
    conn: psycopg.AsyncConnection[Any], report_id: int, principal: Principal
) -> dict[str, Any]:
    """A job's report record (with ``key_id``): admins see every job, other keys their own; else :class:`NoSuchJob`."""
    principal.require_role("admin", "borough", "operator")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {REPORT_COLUMNS}, key_id FROM coverage_reports WHERE id = %s", [report_id])
        row = await cur.fetchone()
    if row is None or (not principal.is_admin and row["key_id"] != principal.key_id):
        raise NoSuchJob(f"no job has id {report_id}")
    return row


JOBS_SQL = f"""SELECT {REPORT_COLUMNS} FROM coverage_reports
WHERE (%(admin)s OR key_id IS NOT DISTINCT FROM %(key)s)
  AND state = ANY(%(states)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at <= %(until)s)
  AND (%(min_s)s::float8 IS NULL OR (started_at IS NOT NULL
       AND extract(epoch FROM coalesce(finished_at, now()) - started_at) >= %(min_s)s))
  AND (%(max_s)s::float8 IS NULL OR (started_at IS NOT NULL
       AND extract(epoch FROM coalesce(finished_at, now()) - started_at) <= %(max_s)s))
ORDER BY id DESC LIMIT %(limit)s"""


async def list_jobs(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    *,
    limit: int = 10,
    statuses: list[str] | None = None,
    process_ids: list[str] | None = None,
    types: list[str] | None = None,
    created: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
    min_duration: float | None = None,
    max_duration: float | None = None,
) -> list[dict[str, Any]]:
    """The jobs a key may see, newest first, filtered as the standard's job list says.

    ``statuses`` (the standard's codes; unknown ones are a 400), ``process_ids`` and ``types``
    (only ``coverage`` and ``process`` match), ``created`` (an interval of the creation time),
    ``min_duration``/``max_duration`` in seconds (only jobs that started; running ones up to now).
    """
    principal.require_role("admin", "borough", "operator")
    bad = [s for s in statuses or () if s not in STATUS_CODES]
    if bad:
        raise InvalidParameter(f"status: {bad[0]!r} is not one of {', '.join(STATUS_CODES)}")
    wanted = set(statuses or STATUS_CODES)
    if (process_ids and PROCESS_ID not in process_ids) or (types and "process" not in types):
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            JOBS_SQL,
            {
                "admin": principal.is_admin, "key": principal.key_id, "limit": limit,
                "states": [state for state, code in STATUS.items() if code in wanted],
                "since": created[0], "until": created[1], "min_s": min_duration, "max_s": max_duration,
            },
        )  # fmt: skip
        return await cur.fetchall()


def results_document(row: dict[str, Any], base: str, outputs: list[str] | None) -> dict[str, Any]:
    """The results of a successful job: the summary by value, the downloads by reference.

    ``outputs``: only those (all when None); an unknown one is a 400.
    """
    if row["state"] in UNFINISHED:
        raise ResultNotReady(f"job {row['id']} is {STATUS[row['state']]}; its results are not ready")
    if row["state"] != "done":
        raise JobFailed(
            f"job {row['id']} is {STATUS[row['state']]}; it has no results"
            + (f" ({row['message']})" if row.get("message") else "")
        )
    unknown = [o for o in outputs or () if o not in OUTPUTS]
    if unknown:
        raise InvalidParameter(
            f"outputs: {unknown[0]!r} is not an output of the process ({', '.join(OUTPUTS)})"
        )
    chosen = outputs or list(OUTPUTS)
    doc: dict[str, Any] = {}
    for name in chosen:
        if name == "summary":
            doc[name] = {"value": row["summary"], "mediaType": "application/json"}
        else:
            file, media_type, title, _ = FILE_OUTPUTS[name]
            doc[name] = _link(f"{base}/coverage/reports/{row['id']}/{file}", "enclosure", media_type, title)
    return doc


async def dismiss(
    conn: psycopg.AsyncConnection[Any], row: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """Dismiss a job the key may see (:func:`read_job`): stop it if unfinished, delete it if finished.

    An accepted or running job ends ``dismissed`` (its computation stops at its next step and
    stores nothing; the native API shows it dismissed); a finished one is deleted with its
    results (both APIs answer 404 for it then). Returns the record as it ends, state dismissed.
    """
    report_id = row["id"]
    async with conn.transaction():
        cur = await conn.execute(
            """UPDATE coverage_reports SET state = 'dismissed', finished_at = now(), message = %s
               WHERE id = %s AND state = ANY(%s) RETURNING id""",
            ["dismissed (DELETE /jobs/{id}) before it finished", report_id, list(UNFINISHED)],
        )
        stopped = await cur.fetchone() is not None
        if not stopped:
            # No foreign key ties the points to their report (0008): they go here explicitly.
            await conn.execute("DELETE FROM coverage_report_points WHERE report_id = %s", [report_id])
            await conn.execute("DELETE FROM coverage_reports WHERE id = %s", [report_id])
        await record_async(
            conn, principal, "report.dismiss", "coverage_report", report_id,
            {"was": row["state"], "deleted": not stopped},
        )  # fmt: skip
    return {
        **row,
        "state": "dismissed",
        "message": "Dismissed",
        "finished_at": row["finished_at"] or dt.datetime.now(dt.UTC),
    }


def callback_documents() -> dict[str, Any]:
    """What a job's callbacks are sent when it ends (:data:`geo.webhooks.fanout.JobDocuments`).

    ``success`` (the subscriber's successUri): the job's results, as ``GET /jobs/{id}/results``
    answers them; ``failed`` (its failedUri): the job's status, failed with its message. Made from
    the report as the job's end event carries it (its id, state, summary and message).
    """

    def success(report: dict[str, Any], base: str) -> dict[str, Any]:
        return results_document(report, base, None)

    def failed(report: dict[str, Any], base: str) -> dict[str, Any]:
        job = f"{base}/jobs/{report['id']}"
        return {
            "processID": PROCESS_ID, "type": "process", "jobID": str(report["id"]),
            "status": STATUS[report["state"]], "message": report.get("message") or _MESSAGES["failed"],
            "created": report.get("created_at"), "finished": report.get("finished_at"),
            "links": [_link(job, "self", "application/json", "This job's status")],
        }  # fmt: skip

    return {"success": success, "failed": failed}
