"""``create_app(settings)``: the FastAPI application, its pool and its routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette._utils import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.deps import DatabaseHealth
from api.jobs import Jobs
from api.middleware import AccessLog, Guard, SecurityHeaders, route_roles
from api.params import reject_unknown_query
from api.routes import (
    assets,
    audit,
    boroughs,
    coverage,
    docs,
    exports,
    features,
    gdpr,
    health,
    me,
    ogc_html,
    ogc_tiles,
    pages,
    pipeline,
    processes,
    tiles,
    uploads,
    wayleaves,
    web_map,
    webhooks,
)
from api.schemas import document_problems
from api.summaries import SummaryRefresher
from geo.core.jobs import Heartbeat, reap
from geo.core.settings import Settings
from geo.coverage import processes as processes_ogc
from geo.db.database import connect, database_url, with_statement_timeout
from geo.db.versions import KnownVersions
from geo.layers.tiles import TileCache
from geo.webhooks import Sender

log = logging.getLogger("connectivity.api")

DESCRIPTION = """
Candidate full-fibre assets of London's 33 authorities, their wayleaves, map layers and
coverage analysis. Send `Authorization: Bearer <key>` (keys come from `connectivity keys create`).
Errors are `application/problem+json`.
"""


def _configure(statement_timeout_ms: int) -> Any:
    async def configure(conn: Any) -> None:
        # Short request queries gain nothing from parallel workers, which cost 20-30 ms to start.
        await conn.execute("SET max_parallel_workers_per_gather = 0")
        # No request may hold the database longer than this (jobs have their own timeout).
        await conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(statement_timeout_ms)))
        await conn.execute("SET idle_in_transaction_session_timeout = '60s'")

    return configure


# Which requests may carry how large a body: (method, path) -> the setting that says.
def _body_limit(settings: Settings) -> Any:
    upload = settings.upload.max_bytes + 2 * 2**20  # the file, its mapping and the form fields
    limits = {
        ("POST", "/uploads"): upload,
        ("POST", "/pipeline/imports"): settings.pipeline.max_bytes + 2**20,
        ("POST", "/wayleaves/bulk"): settings.wayleave.bulk_max_bytes + 2**20,
        ("POST", "/coverage/reports"): settings.coverage.max_body_bytes,
        ("POST", "/processes/coverage/execution"): settings.coverage.max_body_bytes,
    }

    def limit(scope: Scope) -> int:
        # The path within the app: behind a proxy's prefix (root_path) the routes are the same.
        return limits.get((scope["method"], get_route_path(scope).rstrip("/")), settings.api.max_body_bytes)

    return limit


class ForgetVersionsAfterWrites:
    """Read-your-writes for the known data versions: after a request that may have written
    (its background tasks included), this worker reads them again rather than wait for the
    database's notice."""

    def __init__(self, app: ASGIApp, versions: KnownVersions) -> None:
        self.app = app
        self.versions = versions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; forget the versions after anything but a read."""
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                self.versions.forget()


def _reap_once(url: str, stale_s: float) -> dict[str, list[int]]:
    with connect(url, autocommit=True, connect_timeout=5) as conn:
        return reap(conn, stale_s)


async def _reap(url: str, settings: Settings) -> None:
    """Mark jobs whose owner is gone interrupted, once; a database that is away is tried next round."""
    try:
        marked = await asyncio.to_thread(_reap_once, url, settings.jobs.stale_s)
        for table, ids in marked.items():
            log.warning("%s %s: interrupted (their process stopped)", table, ", ".join(map(str, ids)))
    except Exception as exc:
        log.warning("checking for interrupted jobs failed: %s", exc)


async def _reap_periodically(url: str, settings: Settings) -> None:
    """:func:`_reap` every ``reap_every_s`` seconds (the first round runs before the app serves)."""
    while True:
        await asyncio.sleep(settings.jobs.reap_every_s)
        await _reap(url, settings)


def _image_sources(settings: Settings) -> tuple[str, ...]:
    """Where the map's background tiles come from, when a tile server is configured."""
    if not settings.map.tile_url:
        return ()
    parts = urlsplit(settings.map.tile_url)
    host = parts.netloc
    if "{s}" in host:  # subdomains a, b, c: a CSP wildcard stands only for the leftmost labels
        host = "*" + host.split("{s}", 1)[1]
    return (f"{parts.scheme}://{host}",) if parts.scheme in ("http", "https") else ()


def _purge_once(url: str, settings: Settings) -> dict[str, int] | None:
    from geo.access.personal_data import Retention, purge

    with connect(url, connect_timeout=5) as conn:
        return purge(conn, Retention.from_settings(settings.retention))


async def _purge_periodically(url: str, settings: Settings) -> None:
    """Delete what is past its retention period: shortly after the start, then every few hours."""
    await asyncio.sleep(5)
    while True:
        try:
            counts = await asyncio.to_thread(_purge_once, url, settings)
            if counts and any(counts.values()):
                log.info("retention purge: %s", counts)
        except Exception as exc:  # the database is away: the next round tries again
            log.warning("retention purge failed: %s", exc)
        await asyncio.sleep(settings.retention.purge_every_hours * 3600)


def _pool(url: str, settings: Settings) -> AsyncConnectionPool:
    """The request pool, not opened yet: autocommit connections, configured for short queries."""
    return AsyncConnectionPool(
        url,
        min_size=settings.db.pool_min_size,
        max_size=settings.db.pool_max_size,
        kwargs={"autocommit": True},
        configure=_configure(settings.db.statement_timeout_ms),
        # A connection is checked when it is handed out: one broken by a database restart
        # is replaced, never given to a request.
        check=AsyncConnectionPool.check_connection,
        # Reconnection gives up after a few seconds; DatabaseHealth brings a fresh pool.
        reconnect_timeout=5,
        open=False,
    )


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the pool, the job heartbeat, the reaper, the purger, the listeners and the webhook sender."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url(settings.db, start=False)
        pool = _pool(url, settings)
        await pool.open(wait=True, timeout=30)
        app.state.pool = pool
        # Jobs (uploads, reports, Pipeline imports) connect with their own, longer statement timeout.
        app.state.database_url = with_statement_timeout(url, settings.jobs.statement_timeout_s * 1000)
        app.state.database_health = DatabaseHealth(app, url)

        async def replace_pool() -> None:
            old, new = app.state.pool, _pool(url, settings)
            await new.open(wait=False)
            app.state.pool = new
            asyncio.get_running_loop().create_task(old.close(timeout=5))

        app.state.replace_pool = replace_pool
        heartbeat = Heartbeat(url, settings.jobs.heartbeat_s).start()
        # Before the first request, so no one reads a dead process's job as still running.
        await _reap(url, settings)
        reaper = asyncio.create_task(_reap_periodically(url, settings))
        purger = asyncio.create_task(_purge_periodically(url, settings))
        startup = app.state.summaries_startup = asyncio.create_task(app.state.summaries.rebuild_stale())
        listener = asyncio.create_task(app.state.versions.listen(url))
        # Webhook deliveries: a sender per process (they share the queue with SKIP LOCKED).
        sender = (
            asyncio.create_task(Sender(url, settings.webhook, processes_ogc.callback_documents()).run())
            if settings.webhook.sender
            else None
        )
        # Everything loaded so far (modules, settings, the app) lives as long as the process:
        # kept out of the garbage collector's full passes, each of which otherwise stalled a
        # busy worker for about 0.1 s (the tile p99). Garbage is collected first, not frozen.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if not startup.done():
                startup.cancel()
            listener.cancel()
            reaper.cancel()
            purger.cancel()
            if sender is not None:
                sender.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):  # logged where it failed
                await startup
            for task in (listener, reaper, purger, *([sender] if sender is not None else [])):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.database_health.stop()
            await app.state.jobs.drain()
            heartbeat.stop()
            await app.state.pool.close()

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middlewares, innermost first."""
    app.add_middleware(ForgetVersionsAfterWrites, versions=app.state.versions)
    # Outermost last: the access log sees every answer, the guard runs before any route.
    app.add_middleware(Guard, body_limit=_body_limit(settings))
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-Id"],
        )
    app.add_middleware(SecurityHeaders, image_sources=_image_sources(settings))
    app.add_middleware(AccessLog)


ROUTE_MODULES = (
    features, health, me, boroughs, assets, tiles, uploads, wayleaves, web_map, coverage, pipeline, docs, audit,
    gdpr, pages, ogc_tiles, processes, exports, webhooks,
)  # fmt: skip


def _include_routers(app: FastAPI) -> None:
    """Every route module's router, and the roles and list of the routes they serve."""
    for module in ROUTE_MODULES:
        app.include_router(module.router)
    app.state.route_roles = route_roles(r for m in ROUTE_MODULES for r in m.router.routes)
    # What the app serves (the access-matrix test walks it): name, methods, path of each route.
    app.state.api_routes = [
        (r.name, frozenset(r.methods), r.path)
        for m in ROUTE_MODULES
        for r in m.router.routes
        if getattr(r, "methods", None)
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the connection pool opens and closes with its lifespan."""
    settings = settings or Settings()
    app = FastAPI(
        title="connectivity", version="0.1.0", description=DESCRIPTION, lifespan=_lifespan(settings),
        docs_url=None, redoc_url=None,  # /docs is served with the app's own Swagger UI files (api.routes.docs)
        dependencies=[Depends(reject_unknown_query)],
    )  # fmt: skip
    app.state.settings = settings
    app.state.extent_cache = {}
    app.state.tile_cache = TileCache(settings.tiles.cache_mb * 2**20)
    app.state.versions = KnownVersions()
    _add_middleware(app, settings)
    app.state.summaries = SummaryRefresher(app)
    app.state.jobs = Jobs(settings.jobs)
    errors.install(app, ogc_html.error_page)
    _include_routers(app)
    web_map.mount_static(app)
    plain_openapi = app.openapi
    app.openapi = lambda: document_problems(plain_openapi())  # type: ignore[method-assign]
    return app
