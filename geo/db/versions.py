"""Data versions a worker has read, kept until the database says one changed.

A tile's ETag and cache key follow its layer's data version (``data_versions``, or the build
of the low-zoom summaries). Reading it costs a pooled connection and a round trip per tile,
which is most of the work of serving a cached tile. Migration 0010 makes every change of
``data_versions`` and ``tile_summary_builds`` send ``NOTIFY data_versions`` at commit; a
worker that LISTENs keeps the versions it read and drops them all on each notice.

Consistency: a write through this worker is seen by its next request (the app forgets the
versions after every write request, see ``api.app``); a write elsewhere (another worker, the
CLI, a background import) is seen as soon as its notice arrives, a few milliseconds after its
commit. While the listener is not connected (starting, or reconnecting after an error) nothing
is kept and every lookup reads the database; nothing is kept longer than ``max_age`` either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "data_versions"


class KnownVersions:
    """Versions by key, valid while the listener runs (one per worker, used from its event loop)."""

    def __init__(self, max_age: float = 30.0) -> None:
        # A safety net, not the mechanism: a notice that never comes (a pooler that drops
        # LISTEN, say) leaves a version stale for at most max_age seconds.
        self.max_age = max_age
        self._known: dict[Hashable, tuple[str, float]] = {}
        # Bumped by every notice: a read that started before a notice must not be kept after it.
        self._generation = 0
        self.listening = False

    async def get(self, key: Hashable, read: Callable[[], Awaitable[str]]) -> str:
        """The version under ``key``, read with ``read()`` unless known."""
        known = self._known.get(key)
        if known is not None and time.monotonic() - known[1] < self.max_age:
            return known[0]
        generation, started = self._generation, time.monotonic()
        value = await read()
        if self.listening and generation == self._generation:
            self._known[key] = (value, started)
        return value

    def forget(self) -> None:
        """Drop every known version (a write happened)."""
        self._generation += 1
        self._known.clear()

    async def listen(self, url: str, retry_seconds: float = 1.0) -> None:
        """LISTEN for changes until cancelled, reconnecting after errors."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Whatever was read before LISTEN may have missed a notice.
                    self.forget()
                    self.listening = True
                    async for _ in conn.notifies():
                        self.forget()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarted or the connection dropped
                log.warning("data version listener: %s; reconnecting in %.0f s", exc, retry_seconds)
            finally:
                self.listening = False
                self.forget()
            await asyncio.sleep(retry_seconds)
