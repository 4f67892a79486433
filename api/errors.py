"""One table from domain errors to HTTP statuses, answered as ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.access import AuthenticationFailed, PermissionDenied
from geo.assets import AssetNotFound, InvalidAssetChange, VersionConflict
from geo.boroughs import UnknownBorough
from geo.collections import UnknownCollection
from geo.features import FeatureNotFound, InvalidParameter
from geo.tiles import InvalidTile

PROBLEM = "application/problem+json"

#: Domain exception -> HTTP status. Subclasses map through their nearest listed base.
STATUS_CODES: dict[type[Exception], int] = {
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    AssetNotFound: 404,
    UnknownBorough: 422,
    InvalidAssetChange: 422,
    VersionConflict: 409,
    UnknownCollection: 404,
    FeatureNotFound: 404,
    InvalidTile: 404,
    InvalidParameter: 400,
}

TITLES = {
    400: "Bad request",
    401: "Unauthorised",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal error",
    503: "Unavailable",
}


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem document."""
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_for(exc: Exception, table: dict[type[Exception], int]) -> int | None:
    """The status of a domain exception, by its class or nearest mapped base class."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


def install(app: FastAPI, extra: dict[type[Exception], int] | None = None) -> None:
    """Install the error handlers on ``app``: :data:`STATUS_CODES` plus the ``extra`` mappings."""
    table = {**STATUS_CODES, **(extra or {})}

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_for(exc, table)
        if status is None:  # not ours: a real bug, logged by the server
            raise exc
        extra = getattr(exc, "problem_extra", None) or {}
        return problem(status, str(exc), **extra)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
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
        return problem(status, detail, errors=errors)

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    for cls in table:
        app.add_exception_handler(cls, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]


def _short(value: Any) -> Any:
    text = value if isinstance(value, str | int | float | bool) or value is None else repr(value)
    return text[:200] if isinstance(text, str) else text
