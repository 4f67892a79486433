"""Background work of the API: jobs on an executor of their own, a few per key, watched by a heartbeat.

A job records its own state and progress in the database (an upload's row, a report's row),
so any request, in any worker process, can read them while it runs. Jobs never run on the
thread pool that serves requests: :class:`Jobs` has its own, of ``CONNECTIVITY_JOBS_WORKERS``
threads, and admits at most ``CONNECTIVITY_JOBS_PER_KEY`` queued or running jobs per API key
and ``CONNECTIVITY_JOBS_QUEUE`` in all; beyond that a request is answered 429 with
``Retry-After`` (:class:`TooManyJobs`) before anything is recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from geo.core.errors import TooManyRequests
from geo.core.jobs import ACTIVE, finish
from geo.core.settings import JobSettings

log = logging.getLogger("connectivity.jobs")


class TooManyJobs(TooManyRequests):
    """The key (or the service) has as many jobs queued or running as it may (429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.problem_headers = {"Retry-After": str(retry_after)}


@dataclass
class Ticket:
    """A place in the queue, held from admission until the job ends (or its creation fails)."""

    jobs: Jobs
    key: int | None
    released: bool = field(default=False)

    def release(self) -> None:
        """Give the place back (once)."""
        if not self.released:
            self.released = True
            self.jobs._release(self.key)


class Jobs:
    """The jobs of one service process."""

    def __init__(self, settings: JobSettings) -> None:
        self.settings = settings
        self.executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._per_key: Counter[int | None] = Counter()
        self._total = 0

    def admit(self, key: int | None) -> Ticket:
        """A ticket for one more job of ``key``, or :class:`TooManyJobs`."""
        with self._lock:
            if self._per_key[key] >= self.settings.per_key:
                raise TooManyJobs(
                    f"this key has {self._per_key[key]} jobs queued or running, the most it may have; "
                    "wait for one to finish (GET its status) and try again",
                    retry_after=10,
                )
            if self._total >= self.settings.queue:
                raise TooManyJobs(
                    f"the service has {self._total} jobs queued or running, the most it takes; try again shortly",
                    retry_after=30,
                )
            self._per_key[key] += 1
            self._total += 1
        return Ticket(self, key)

    def _release(self, key: int | None) -> None:
        with self._lock:
            self._per_key[key] -= 1
            self._total -= 1
            if self._per_key[key] <= 0:
                del self._per_key[key]

    def start(
        self,
        ticket: Ticket,
        table: str,
        job_id: int,
        url: str,
        work: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Run ``work(*args, **kwargs)`` on the job executor; the heartbeat keeps the job alive meanwhile.

        Whatever ``work`` raises is logged, and the job is ended ``failed`` on a fresh connection
        unless it recorded its own end.
        """
        ACTIVE.add(table, job_id)

        def run() -> None:
            try:
                work(*args, **kwargs)
            except Exception as exc:
                log.error("background job %s %s failed", table, job_id, exc_info=exc)
                values = {
                    "state": "failed",
                    "message": f"{type(exc).__name__}: {exc}",
                    "finished_at": dt.datetime.now(dt.UTC),
                }
                finish(url, table, job_id, values, 30, unless_finished=True)
            finally:
                ACTIVE.discard(table, job_id)
                ticket.release()

        self.executor.submit(run)

    async def drain(self) -> None:
        """At shutdown: let running jobs finish; queued ones stay queued for the reaper to end."""
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
