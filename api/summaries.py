"""Keeping the low-zoom tile summaries current after single edits through the API.

Bulk writers (demo load, uploads) rebuild summaries in their own transaction. An edit of one
asset schedules a rebuild after the response; edits arriving while one runs are coalesced
into one more rebuild, so a burst of edits costs at most two.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from geo.layers import tiles
from geo.layers.collections import COLLECTIONS

log = logging.getLogger(__name__)


class SummaryRefresher:
    """One rebuild at a time per asset kind, with pending requests coalesced."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.locks: dict[str, asyncio.Lock] = {}
        self.pending: set[str] = set()

    async def refresh(self, kind: str, *, only_stale: bool = False) -> None:
        """Rebuild the summaries of ``kind`` unless a rebuild that will see this edit is already queued.

        ``only_stale``: unless they are current by the time the rebuild may start.
        """
        if kind in self.pending:
            return
        self.pending.add(kind)
        lock = self.locks.setdefault(kind, asyncio.Lock())
        async with lock:
            self.pending.discard(kind)
            layers = [c for c in COLLECTIONS.values() if c.kind == kind]
            async with self.app.state.pool.connection() as conn:
                await tiles.refresh_summaries_async(
                    conn, layers, self.app.state.settings.tiles.raw_min_zoom, only_stale=only_stale
                )

    async def rebuild_stale(self) -> list[str]:
        """Rebuild the summaries that are missing, behind the data or of another grid; the kinds found stale.

        Started with the service (in the background: tiles are served meanwhile), so that an
        upgrade that changed the grid, a crash between a write and its rebuild, or a new raw
        zoom setting never leaves low-zoom tiles wrong. Each worker process checks; a kind
        another worker rebuilt meanwhile is skipped.
        """
        try:
            async with self.app.state.pool.connection() as conn:
                kinds = await tiles.stale_summary_kinds(
                    conn, list(COLLECTIONS.values()), self.app.state.settings.tiles.raw_min_zoom
                )
            for kind in kinds:
                await self.refresh(kind, only_stale=True)
        except Exception:
            log.exception("rebuilding stale tile summaries failed; low-zoom tiles may be out of date")
            raise
        return kinds
