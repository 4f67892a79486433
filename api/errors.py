"""One table from domain errors to HTTP statuses, answered as ``application/problem+json``.

Every error is a problem document, an unexpected one too (500, its details only in the
server's log; :class:`api.middleware.Guard` answers it), and none carries a server path. A database that cannot be reached (stopped,
restarting, every pooled connection broken) is a 503 with ``Retry-After``, never a 500; a
statement over ``statement_timeout`` a 503 too; a value the database refuses (a NUL byte in a
text, a number out of range) a 400.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.core import errors as domain
from geo.core.row_errors import scrub_roots
from geo.core.settings import PROJECT_ROOT

PROBLEM = "application/problem+json"
#: Directories of the server no answer names (the checkout, temporary files, the venv's Python).
SERVER_ROOTS = (str(PROJECT_ROOT), tempfile.gettempdir(), sys.prefix, os.path.expanduser("~"))
log = logging.getLogger("connectivity.api")


class BodyTooLarge(domain.TooLarge):
    """A request body, or a file in it, is over its limit (413)."""


#: Domain error class -> HTTP status: the one table. Every domain error derives from one of
#: these (``geo.core.errors``) and maps through its nearest listed base.
STATUS_CODES: dict[type[Exception], int] = {
    domain.InvalidParameter: 400,
    domain.Unauthenticated: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Gone: 410,
    domain.TooLarge: 413,
    domain.InvalidInput: 422,
    domain.PreconditionRequired: 428,
    domain.TooManyRequests: 429,
    domain.Unavailable: 503,
}

TITLES = {
    400: "Bad request",
    401: "Unauthorised",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}
#: Seconds a client should wait before retrying while the database is away.
RETRY_AFTER = "1"
DATABASE_AWAY = "the database is not reachable at the moment; try again shortly"


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document as a dictionary, without server paths."""
    return {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": scrub_roots(detail, SERVER_ROOTS),
        **extra,
    }


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem document."""
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(
        problem_body(status, detail, **extra), status_code=status, media_type=PROBLEM, headers=headers or None
    )


def status_for(exc: Exception, table: dict[type[Exception], int]) -> int | None:
    """The status of a domain exception, by its class or nearest mapped base class."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


def install(app: FastAPI, page: Callable[[Request, dict[str, Any]], Response | None] | None = None) -> None:
    """Install the error handlers on ``app``: :data:`STATUS_CODES`, validation, HTTP and database errors.

    ``page(request, problem)``, when given, may answer a problem as an HTML page instead (the OGC
    API's pages for a browser), with the same status and headers.
    """
    table = STATUS_CODES

    def respond(
        request: Request, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> Response:
        answer = problem(status, detail, headers, **extra)
        shown = page(request, problem_body(status, detail, **extra)) if page else None
        if shown is None:
            return answer
        # The problem's own headers (Retry-After, WWW-Authenticate…), not its body's.
        for name, value in (headers or {}).items():
            shown.headers[name] = value
        if "www-authenticate" in answer.headers:
            shown.headers["WWW-Authenticate"] = answer.headers["www-authenticate"]
        return shown

    async def domain_error(request: Request, exc: Exception) -> Response:
        status = status_for(exc, table) or 500  # every domain error derives from a class of the table
        extra = getattr(exc, "problem_extra", None) or {}
        return respond(request, status, str(exc), getattr(exc, "problem_headers", None), **extra)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # A bad query or path parameter is a 400 (as OGC API asks); a bad body a 422.
        status = 422 if any(e.get("loc", ("",))[0] == "body" for e in exc.errors()) else 400
        errors = [
            {
                "where": ".".join(str(p) for p in e.get("loc", ())),
                "message": e.get("msg", ""),
                "value": _short(e.get("input")),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors)
        return respond(request, status, detail, errors=errors)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return respond(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def database_away(request: Request, exc: Exception) -> Response:
        request.app.state.database_health.failed()
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
        return respond(request, 503, DATABASE_AWAY, {"Retry-After": RETRY_AFTER})

    async def too_slow(request: Request, exc: Exception) -> Response:
        return respond(
            request, 503, "the request took longer than the service allows (statement timeout); narrow it down",
            {"Retry-After": "5"},
        )  # fmt: skip

    async def refused_value(request: Request, exc: Exception) -> Response:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return respond(request, 400, f"a value of the request cannot be stored or compared: {first}")

    app.add_exception_handler(domain.DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.errors.QueryCanceled, too_slow)
    app.add_exception_handler(psycopg.OperationalError, database_away)
    app.add_exception_handler(PoolTimeout, database_away)
    app.add_exception_handler(psycopg.DataError, refused_value)


def _short(value: Any) -> Any:
    text = value if isinstance(value, str | int | float | bool) or value is None else repr(value)
    return text[:200] if isinstance(text, str) else text
