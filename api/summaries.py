"""Keeping the low-zoom tile summaries current after single edits through the API.

Bulk writers (demo load, uploads) rebuild summaries in their own transaction. An edit of one
asset schedules a rebuild after the response; edits arriving while one runs are coalesced
into one more rebuild, so a burst of edits costs at most two.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from geo import tiles
from geo.collections import COLLECTIONS


class SummaryRefresher:
    """One rebuild at a time per asset kind, with pending requests coalesced."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.locks: dict[str, asyncio.Lock] = {}
        self.pending: set[str] = set()

    async def refresh(self, kind: str) -> None:
        """Rebuild the summaries of ``kind`` unless a rebuild that will see this edit is already queued."""
        if kind in self.pending:
            return
        self.pending.add(kind)
        lock = self.locks.setdefault(kind, asyncio.Lock())
        async with lock:
            self.pending.discard(kind)
            layers = [c for c in COLLECTIONS.values() if c.kind == kind]
            async with self.app.state.pool.connection() as conn:
                await tiles.refresh_summaries_async(conn, layers, self.app.state.settings.tiles.raw_min_zoom)
