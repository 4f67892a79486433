"""Typed dependencies shared by the routes: a pooled connection and the caller."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from geo.access import ANONYMOUS, AuthenticationFailed, Principal, authenticate
from geo.settings import Settings


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection from the app's pool, returned when the request ends."""
    async with request.app.state.pool.connection() as conn:
        yield conn


class LazyConn:
    """A pooled connection taken only when a request first needs one (a cached tile never does)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._taken = contextlib.AsyncExitStack()
        self._conn: AsyncConnection[Any] | None = None

    async def get(self) -> AsyncConnection[Any]:
        """The request's connection, taken from the pool on first use."""
        if self._conn is None:
            self._conn = conn = await self._taken.enter_async_context(self._pool.connection())
            return conn
        return self._conn

    async def release(self) -> None:
        """Give the connection back, if one was taken."""
        self._conn = None
        await self._taken.aclose()


async def get_lazy_conn(request: Request) -> AsyncIterator[LazyConn]:
    """A :class:`LazyConn` on the app's pool, released when the request ends."""
    lazy = LazyConn(request.app.state.pool)
    try:
        yield lazy
    finally:
        await lazy.release()


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings  # type: ignore[no-any-return]


def bearer_key(request: Request) -> str | None:
    """The key of ``Authorization: Bearer <key>``; None without the header."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("the Authorization header must be 'Bearer <key>'")
    return key.strip()


async def get_principal(
    request: Request, conn: Annotated[AsyncConnection[Any], Depends(get_conn)]
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; anonymous without one."""
    key = bearer_key(request)
    return ANONYMOUS if key is None else await authenticate(conn, key)


def _allowed_to_read(principal: Principal, settings: Settings) -> Principal:
    if principal.role is None and not settings.api.anonymous_read:
        principal.require_key()
    return principal


async def get_reader(
    principal: Annotated[Principal, Depends(get_principal)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Principal:
    """A caller allowed to read public layers (anyone, unless anonymous reading is switched off)."""
    return _allowed_to_read(principal, settings)


async def get_lazy_reader(
    request: Request,
    lazy: Annotated[LazyConn, Depends(get_lazy_conn)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Principal:
    """:func:`get_reader` for routes on a :class:`LazyConn`: an anonymous caller takes no connection."""
    key = bearer_key(request)
    principal = ANONYMOUS if key is None else await authenticate(await lazy.get(), key)
    return _allowed_to_read(principal, settings)


Conn = Annotated[AsyncConnection[Any], Depends(get_conn)]
Caller = Annotated[Principal, Depends(get_principal)]
Reader = Annotated[Principal, Depends(get_reader)]
Lazy = Annotated[LazyConn, Depends(get_lazy_conn)]
LazyReader = Annotated[Principal, Depends(get_lazy_reader)]
AppSettings = Annotated[Settings, Depends(get_settings)]
