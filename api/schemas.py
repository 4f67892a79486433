"""Pydantic models the routes share: the problem document every error answers with, and its ``responses=``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema


class ProblemError(BaseModel):
    """One invalid part of a request."""

    where: str = Field(
        description="Where it is: body.height_m, query.limit, path.asset_id, header.if-match..."
    )
    message: str = Field(description="What is wrong with it.")
    value: Any = Field(default=None, description="The value sent (cut to 200 characters); null if none.")


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``), the answer of every error.

    Some errors add members of their own: a refused wayleave detail names its ``field`` and
    ``value``, a refused status change its ``current_status`` and the ``allowed`` ones.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        default="about:blank",
        description="about:blank (the status says what kind of error), or an OGC exception type URI "
        "(OGC API Processes: …/no-such-process, …/no-such-job, …/result-not-ready).",
    )
    title: str = Field(
        description="The status in words (Not found, Invalid input...).", examples=["Not found"]
    )
    status: int = Field(description="The HTTP status.", examples=[404])
    detail: str = Field(description="What was wrong, and where.", examples=["no asset has id 987654321"])
    errors: list[ProblemError] | None = Field(
        default=None, description="Only for a request that fails validation: each invalid part."
    )


#: What each error status means on this API, for ``responses=``.
PROBLEMS = {
    400: "A query or path parameter, or a header, is invalid; `detail` says which.",
    401: "No API key where one is needed, or the key is unknown, expired or revoked.",
    403: "This key may not do this (its role, or another borough's data).",
    404: "Nothing has that id, or this key may not see it.",
    409: "The object changed since it was read, or its state does not allow this.",
    410: "It is gone (expired or deleted).",
    413: "The body, or a file in it, is too large.",
    422: "The body is invalid: `detail` and `errors` say which field and value.",
    428: "The write needs an If-Match header with the version you read.",
    429: "Too many requests or jobs for this key at the moment; see Retry-After.",
    503: "The database is not reachable at the moment; see Retry-After.",
}


#: Every other error is a problem document too (500, 503 while the database is away...). The
#: ``default`` entry also keeps FastAPI from listing its own 422 body (``HTTPValidationError``),
#: which this API never answers.
OTHER_ERRORS = "Any other error (500; 503 while the database is away, with Retry-After): a problem document."


def problems(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for error statuses, each a :class:`Problem`: ``404`` (described by
    :data:`PROBLEMS`) or ``(404, "No asset has that id.")``, and ``default`` for any other."""
    pairs = [(s, PROBLEMS[s]) if isinstance(s, int) else s for s in statuses]
    described: dict[int | str, dict[str, Any]] = {
        status: {"model": Problem, "description": text} for status, text in pairs
    }
    return {**described, "default": {"model": Problem, "description": OTHER_ERRORS}}


PROBLEM_MEDIA_TYPE = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
#: FastAPI's own 422 body, which this API never answers (its handler answers a problem document).
_FASTAPI_422 = {"$ref": "#/components/schemas/HTTPValidationError"}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (an OpenAPI document) with every error answer as ``application/problem+json``.

    FastAPI lists a ``responses=`` model under ``application/json``; the API answers errors as
    problem documents (:mod:`api.errors`), so they are listed under that media type (a route's
    own JSON error body, such as a bulk report's row errors, stays beside it), and an operation
    without ``responses=`` gets the ``default`` problem answer every route can give.
    Changes ``spec`` in place (it is the app's cached document) and returns it.
    """
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            answers.setdefault("default", {"description": OTHER_ERRORS})
            for status, answer in answers.items():
                if status == "default" or status.startswith(("4", "5")):
                    content = answer.setdefault("content", {})
                    schema = content.get("application/json", {"schema": _PROBLEM_REF}).get("schema")
                    if schema in (_PROBLEM_REF, _FASTAPI_422):
                        content.pop("application/json", None)
                    # else the route's own JSON (a bulk report's row errors), or a problem document
                    content[PROBLEM_MEDIA_TYPE] = {"schema": _PROBLEM_REF}
    schemas = spec.get("components", {}).get("schemas", {})
    if _FASTAPI_422["$ref"] not in json.dumps(spec["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return spec


#: A time written as ``datetime.isoformat`` writes it (``+00:00``, not ``Z``), as the audit
#: trail and the personal-data export always have.
IsoDatetime = Annotated[
    dt.datetime,
    PlainSerializer(dt.datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
