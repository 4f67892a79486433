"""Background work of the API: blocking ``geo`` jobs run in worker threads, off the request.

A job records its own state and progress in the database (an upload's row, a report's row),
so any request, in any worker process, can read them while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("connectivity.jobs")


class Jobs:
    """The running background jobs of one app."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def start(self, name: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``work(*args, **kwargs)`` in a thread; failures are logged (the job records its own state)."""
        task = asyncio.create_task(asyncio.to_thread(work, *args, **kwargs), name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background job %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for every running job (at shutdown)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
