"""Typed dependencies shared by the routes: a pooled connection and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection

from geo.access import ANONYMOUS, AuthenticationFailed, Principal, authenticate
from geo.settings import Settings


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection from the app's pool, returned when the request ends."""
    async with request.app.state.pool.connection() as conn:
        yield conn


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_principal(
    request: Request, conn: Annotated[AsyncConnection[Any], Depends(get_conn)]
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; anonymous without one."""
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("the Authorization header must be 'Bearer <key>'")
    return await authenticate(conn, key.strip())


async def get_reader(
    principal: Annotated[Principal, Depends(get_principal)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Principal:
    """A caller allowed to read public layers (anyone, unless anonymous reading is switched off)."""
    if principal.role is None and not settings.api.anonymous_read:
        principal.require_key()
    return principal


Conn = Annotated[AsyncConnection[Any], Depends(get_conn)]
Caller = Annotated[Principal, Depends(get_principal)]
Reader = Annotated[Principal, Depends(get_reader)]
AppSettings = Annotated[Settings, Depends(get_settings)]
