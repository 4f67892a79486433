"""``create_app(settings)``: the FastAPI application, its pool and its routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.jobs import Jobs
from api.routes import (
    assets,
    boroughs,
    coverage,
    features,
    health,
    me,
    pipeline,
    tiles,
    uploads,
    wayleaves,
    web_map,
)
from api.summaries import SummaryRefresher
from geo.database import database_url
from geo.settings import Settings
from geo.tiles import TileCache
from geo.versions import KnownVersions

DESCRIPTION = """
Candidate full-fibre assets of London's 33 authorities, their wayleaves, map layers and
coverage analysis. Send `Authorization: Bearer <key>` (keys come from `connectivity keys create`).
Errors are `application/problem+json`.
"""


async def _configure(conn: Any) -> None:
    # Short request queries gain nothing from parallel workers, which cost 20-30 ms to start.
    await conn.execute("SET max_parallel_workers_per_gather = 0")


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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the connection pool opens and closes with its lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url(settings.db, start=False)
        pool = AsyncConnectionPool(
            url,
            min_size=settings.db.pool_min_size,
            max_size=settings.db.pool_max_size,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        app.state.pool = pool
        app.state.database_url = url
        startup = app.state.summaries_startup = asyncio.create_task(app.state.summaries.rebuild_stale())
        listener = asyncio.create_task(app.state.versions.listen(url))
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
            with contextlib.suppress(Exception, asyncio.CancelledError):  # logged where it failed
                await startup
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await app.state.jobs.drain()
            await pool.close()

    app = FastAPI(title="connectivity", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.extent_cache = {}
    app.state.tile_cache = TileCache(settings.tiles.cache_mb * 2**20)
    app.state.versions = KnownVersions()
    app.add_middleware(ForgetVersionsAfterWrites, versions=app.state.versions)
    app.state.summaries = SummaryRefresher(app)
    app.state.jobs = Jobs()
    modules = (features, health, me, boroughs, assets, tiles, uploads, wayleaves, web_map, coverage, pipeline)
    # Each routes module may declare the statuses of its own domain errors in ERRORS.
    errors.install(app, {exc: status for m in modules for exc, status in getattr(m, "ERRORS", {}).items()})
    for module in modules:
        app.include_router(module.router)
    web_map.mount_static(app)
    return app
