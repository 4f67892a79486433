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

DESCRIPTION = """
Candidate full-fibre assets of London's 33 authorities, their wayleaves, map layers and
coverage analysis. Send `Authorization: Bearer <key>` (keys come from `connectivity keys create`).
Errors are `application/problem+json`.
"""


async def _configure(conn: Any) -> None:
    # Short request queries gain nothing from parallel workers, which cost 20-30 ms to start.
    await conn.execute("SET max_parallel_workers_per_gather = 0")


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
            with contextlib.suppress(Exception, asyncio.CancelledError):  # logged where it failed
                await startup
            await app.state.jobs.drain()
            await pool.close()

    app = FastAPI(title="connectivity", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.extent_cache = {}
    app.state.tile_cache = TileCache(settings.tiles.cache_mb * 2**20)
    app.state.summaries = SummaryRefresher(app)
    app.state.jobs = Jobs()
    modules = (features, health, me, boroughs, assets, tiles, uploads, wayleaves, web_map, coverage, pipeline)
    # Each routes module may declare the statuses of its own domain errors in ERRORS.
    errors.install(app, {exc: status for m in modules for exc, status in getattr(m, "ERRORS", {}).items()})
    for module in modules:
        app.include_router(module.router)
    web_map.mount_static(app)
    return app
