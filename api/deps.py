"""Typed dependencies shared by the routes: a pooled connection and the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geo.access.keys import authenticate
from geo.access.principals import ANONYMOUS, AuthenticationFailed, Principal, Role
from geo.core.settings import Settings

log = logging.getLogger("connectivity.api")


class DatabaseAway(psycopg.OperationalError):
    """The database is known to be unreachable at the moment (503, at once)."""


class DatabaseHealth:
    """Whether the database can be reached, so that requests fail at once (503) while it cannot.

    A request that meets a broken connection or a pool timeout calls :meth:`failed`: a new
    connection is tried at once. If it fails the database is *down*: requests answer 503 without
    waiting, and a watchdog tries every ``probe_every`` seconds; when it succeeds, the pool is
    replaced by a fresh one (the old one's reconnection backoff grows to tens of seconds) and
    requests are served again. If it succeeds the first time, only the broken connections go.
    """

    def __init__(self, app: Any, url: str, probe_every: float = 0.25, fast: float = 1.0) -> None:
        self.app = app
        self.url = url
        self.probe_every = probe_every
        #: Seconds a request waits for a pooled connection before the database is checked.
        self.fast = fast
        self.down_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[bool] | None = None
        self._probed_at = 0.0

    @property
    def down(self) -> bool:
        """Whether the database is known to be unreachable."""
        return self.down_since is not None

    def failed(self) -> None:
        """A request could not use the database: find out whether it is away."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._investigate())

    async def reachable(self) -> bool:
        """Whether a new connection can be made within a second.

        One try at a time: requests that ask meanwhile, or within ``probe_every`` of its start,
        share its answer, so a busy pool never brings a burst of new connections.
        """
        probe = self._probe
        if probe is None or (probe.done() and time.monotonic() - self._probed_at > self.probe_every):
            self._probed_at = time.monotonic()
            probe = self._probe = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(probe)

    async def _connect(self) -> bool:
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=1)
        except psycopg.OperationalError:
            return False
        await conn.close()
        return True

    async def _investigate(self) -> None:
        if await self.reachable():
            await self.app.state.pool.check()  # drops the broken connections, makes new ones
            return
        self.down_since = self.down_since or time.monotonic()
        log.warning("the database is not reachable; answering 503 until it is")
        while not await self.reachable():
            await asyncio.sleep(self.probe_every)
        await self.app.state.replace_pool()
        log.warning("the database is reachable again after %.1f s", time.monotonic() - self.down_since)
        self.down_since = None

    async def stop(self) -> None:
        """Stop watching (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


@contextlib.asynccontextmanager
async def pooled(app: Any) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection from the app's pool, or :class:`DatabaseAway` within about a second when the database is away.

    A request waits a second for a connection; if none comes, a new connection is tried at
    once: refused, the database is down (503, and every request after it answers 503 at once
    until the watchdog sees it back); accepted, the pool is only busy and the request waits
    out the rest of ``CONNECTIVITY_DB_POOL_TIMEOUT_S``.
    """
    health: DatabaseHealth = app.state.database_health
    if health.down:
        raise DatabaseAway("the database is not reachable at the moment")
    pool: AsyncConnectionPool = app.state.pool
    timeout = app.state.settings.db.pool_timeout_s
    try:
        conn = await pool.getconn(timeout=min(timeout, health.fast))
    except PoolTimeout:
        if not await health.reachable():
            health.failed()
            raise DatabaseAway("the database is not reachable at the moment") from None
        conn = await pool.getconn(timeout=max(timeout - health.fast, 0.1))
    try:
        yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        if not isinstance(exc, psycopg.errors.QueryCanceled):
            health.failed()
        raise
    finally:
        await pool.putconn(conn)


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection from the app's pool, returned when the request ends."""
    async with pooled(request.app) as conn:
        yield conn


class LazyConn:
    """A pooled connection taken only when a request first needs one (a cached tile never does)."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._taken = contextlib.AsyncExitStack()
        self._conn: AsyncConnection[Any] | None = None

    async def get(self) -> AsyncConnection[Any]:
        """The request's connection, taken from the pool on first use."""
        if self._conn is None:
            self._conn = conn = await self._taken.enter_async_context(pooled(self._request.app))
            return conn
        return self._conn

    async def release(self) -> None:
        """Give the connection back, if one was taken."""
        self._conn = None
        await self._taken.aclose()


async def get_lazy_conn(request: Request) -> AsyncIterator[LazyConn]:
    """A :class:`LazyConn` on the app's pool, released when the request ends."""
    lazy = LazyConn(request)
    try:
        yield lazy
    finally:
        await lazy.release()


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings  # type: ignore[no-any-return]


def bearer_key(request: Request) -> str | None:
    """The key of ``Authorization: Bearer <key>``; None without the header."""
    return parse_bearer(request.headers.get("authorization"))


def parse_bearer(header: str | None) -> str | None:
    """The key of an ``Authorization`` header's value; None for none, 401 unless ``Bearer <key>``."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("the Authorization header must be 'Bearer <key>'")
    return key.strip()


async def get_principal(
    request: Request, conn: Annotated[AsyncConnection[Any], Depends(get_conn)]
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``; anonymous without one.

    A write was authenticated before its body was read (:class:`api.middleware.Guard`): that
    principal is reused.
    """
    known = getattr(request.state, "principal", None)
    if known is not None:
        return known  # type: ignore[no-any-return]
    key = bearer_key(request)
    request.state.principal = (
        ANONYMOUS if key is None else await authenticate(conn, key)
    )  # for the access log
    return request.state.principal  # type: ignore[no-any-return]


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
    request.state.principal = principal  # for the access log
    return _allowed_to_read(principal, settings)


class RequireRoles:
    """A dependency admitting only keys of some roles (checked before the body too, by the Guard middleware)."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, caller: Annotated[Principal, Depends(get_principal)]) -> Principal:
        """The caller, if its role is one of :attr:`roles`."""
        caller.require_role(*self.roles)
        return caller


Conn = Annotated[AsyncConnection[Any], Depends(get_conn)]
Caller = Annotated[Principal, Depends(get_principal)]
Reader = Annotated[Principal, Depends(get_reader)]
Lazy = Annotated[LazyConn, Depends(get_lazy_conn)]
LazyReader = Annotated[Principal, Depends(get_lazy_reader)]
AppSettings = Annotated[Settings, Depends(get_settings)]


#: The writes only admins and borough keys make (uploads, wayleaves).
BOROUGH_WRITE = Depends(RequireRoles("admin", "borough"))
