"""Long jobs (uploads and their apply, coverage reports, Pipeline imports): state, progress, owner, heartbeat.

A job's row in its table says how far it got, so any process can show it. What makes the
state trustworthy after faults:

- **an owner and a heartbeat**: a job is created with ``owner`` = this process
  (:data:`OWNER`: host, pid and the pid's start time, so a reused pid is told apart) and
  ``heartbeat_at``; while it is queued or running, a :class:`Heartbeat` thread of the owning
  process keeps ``heartbeat_at`` fresh for the jobs it tracks (:data:`ACTIVE`);
- **a reaper**: :func:`reap` marks ``interrupted``, with a message, every unfinished job whose
  owner is gone: at once when the owner was a process of this host that no longer runs, else
  when its heartbeat is older than ``stale_s``. Each process runs it when it starts and then
  periodically; a live service's jobs are never touched by another process (the CLI, say);
- **a final state on a fresh connection**: :meth:`JobStatus.finish` opens a new connection,
  retrying while the database is away, so a job whose connection broke still says how it ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

log = logging.getLogger("connectivity.jobs")

#: Job tables and the states in which a job is unfinished.
UNFINISHED: dict[str, tuple[str, ...]] = {
    "uploads": ("queued", "running"),
    "coverage_reports": ("queued", "running"),
    "pipeline_imports": ("running",),
}


def _start_time(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), or None when it does not run."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_of_this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or '0'}"


#: This process, as job rows name their owner. A forked child names its own.
OWNER = _owner_of_this_process()


def owner() -> str:
    """This process's owner name (taken again after a fork)."""
    global OWNER
    if OWNER.split(":")[1] != str(os.getpid()):
        OWNER = _owner_of_this_process()
    return OWNER


def owner_alive(name: str | None) -> bool | None:
    """Whether the process ``name`` still runs: True or False for this host's processes, None elsewhere."""
    if not name:
        return False
    host, _, rest = name.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return None
    return pid.isascii() and pid.isdigit() and _start_time(int(pid)) == started


class ActiveJobs:
    """The jobs this process works on, by table: the ones its heartbeat keeps alive.

    Counted: the job queue and the job's own function both track a job, and it stays alive
    until both are done with it (the queue still records a failure after the function ends).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, Counter[int]] = {table: Counter() for table in UNFINISHED}

    def add(self, table: str, job_id: int) -> None:
        """Start keeping a job alive."""
        with self._lock:
            self._ids[table][job_id] += 1

    def discard(self, table: str, job_id: int) -> None:
        """Stop keeping a job alive, once every :meth:`add` of it is matched."""
        with self._lock:
            ids = self._ids[table]
            ids[job_id] -= 1
            if ids[job_id] <= 0:
                del ids[job_id]

    def ids(self, table: str) -> list[int]:
        """The jobs of ``table`` this process works on."""
        with self._lock:
            return sorted(self._ids[table])

    @contextlib.contextmanager
    def tracking(self, table: str, job_id: int) -> Iterator[None]:
        """Keep a job alive while the block runs."""
        self.add(table, job_id)
        try:
            yield
        finally:
            self.discard(table, job_id)


#: This process's jobs.
ACTIVE = ActiveJobs()


class Heartbeat:
    """A thread that refreshes ``heartbeat_at`` of this process's :data:`ACTIVE` jobs every ``every`` s.

    It survives database outages: a failed beat is logged and the next one reconnects.
    """

    def __init__(self, url: str, every: float = 5.0) -> None:
        self.url = url
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)
        self._conn: psycopg.Connection[Any] | None = None

    def start(self) -> Heartbeat:
        """Start beating."""
        self._thread.start()
        return self

    def beat(self) -> None:
        """Refresh the heartbeats once."""
        pending = {table: ACTIVE.ids(table) for table in UNFINISHED}
        if not any(pending.values()):
            return
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        for table, ids in pending.items():
            if ids:
                self._conn.execute(
                    sql.SQL("UPDATE {} SET heartbeat_at = now() WHERE id = ANY(%s) AND owner = %s").format(
                        sql.Identifier(table)
                    ),
                    [ids, owner()],
                )

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception as exc:  # the database is away: the next beat reconnects
                log.warning("job heartbeat: %s", exc)
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                self._conn = None

    def stop(self) -> None:
        """Stop beating and close the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.every + 5)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()


@contextlib.contextmanager
def beating(url: str, every: float = 5.0) -> Iterator[Heartbeat]:
    """A :class:`Heartbeat` while the block runs: a job the command line runs stays alive in the
    eyes of services on other hosts that share the database (their reapers go by heartbeats)."""
    heart = Heartbeat(url, every).start()
    try:
        yield heart
    finally:
        heart.stop()


#: Seconds after its row is written in which a job of this process may not be tracked yet.
STARTING_S = 15.0

INTERRUPTED = {
    "uploads": "interrupted: the process handling the upload stopped before it finished; nothing was "
    "applied by it: upload the file again",
    "coverage_reports": "interrupted: the process computing the report stopped before it finished; "
    "request the report again",
    "pipeline_imports": "interrupted: the process importing the file stopped before it finished; nothing "
    "was imported by it: import the file again",
}


def reap(conn: psycopg.Connection[Any], stale_s: float = 60.0) -> dict[str, list[int]]:
    """Mark ``interrupted`` the unfinished jobs whose owner is gone; the ids marked, by table.

    An owner on this host is gone when its process no longer runs (or is this process and no
    longer tracks the job); an owner elsewhere when its heartbeat is older than ``stale_s``.
    Commits when ``conn`` is not in autocommit mode.
    """
    marked: dict[str, list[int]] = {}
    me = owner()
    for table, states in UNFINISHED.items():
        rows = conn.execute(
            sql.SQL(
                """SELECT id, owner, heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => %s),
                          heartbeat_at > now() - make_interval(secs => %s)
                   FROM {} WHERE state = ANY(%s)"""
            ).format(sql.Identifier(table)),
            [stale_s, STARTING_S, list(states)],
        ).fetchall()
        active = set(ACTIVE.ids(table))
        gone = []
        for job_id, job_owner, stale, starting in rows:
            if job_owner == me:
                # A job this process has just recorded is tracked a moment later: not lost yet.
                lost = job_id not in active and not starting
            else:
                alive = owner_alive(job_owner)
                lost = (not alive) if alive is not None else bool(stale)
            if lost:
                gone.append(job_id)
        if gone:
            done = conn.execute(
                sql.SQL(
                    """UPDATE {} SET state = 'interrupted', message = %s, finished_at = now()
                       WHERE id = ANY(%s) AND state = ANY(%s) RETURNING id"""
                ).format(sql.Identifier(table)),
                [INTERRUPTED[table], gone, list(states)],
            ).fetchall()
            marked[table] = sorted(r[0] for r in done)
    if not conn.autocommit:
        conn.commit()
    return marked


def _update(
    conn: psycopg.Connection[Any],
    table: str,
    job_id: int,
    values: dict[str, Any],
    only_in: tuple[str, ...] | None = None,
) -> None:
    """Set columns of one job's row (dicts and lists as JSON); with ``only_in``, only in those states."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
    )
    params = {k: Jsonb(v) if isinstance(v, dict | list) else v for k, v in values.items()}
    condition = sql.SQL("")
    if only_in is not None:
        condition, params["only_in"] = sql.SQL(" AND state = ANY(%(only_in)s)"), list(only_in)
    conn.execute(
        sql.SQL("UPDATE {} SET {} WHERE id = %(job_id)s{}").format(
            sql.Identifier(table), assignments, condition
        ),
        {**params, "job_id": job_id},
    )


class JobStatus:
    """Updates one row of ``table`` (an ``id`` keyed job table); progress at most every ``every`` s."""

    def __init__(
        self,
        url: str,
        table: str,
        job_id: int,
        every: float = 0.5,
        conn: psycopg.Connection[Any] | None = None,
    ) -> None:
        # An autocommit connection of the caller's (kept open by it) or one of its own.
        self.url = url
        self.owned = conn is None
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10) if conn is None else conn
        self.table = table
        self.job_id = job_id
        self.every = every
        self.last = 0.0

    def set(self, **values: Any) -> None:
        """Set columns of the job's row (dicts and lists are stored as JSON)."""
        _update(self.conn, self.table, self.job_id, values)

    def progress(self, step: str, done: int, total: int) -> None:
        """Record ``done`` of ``total`` (a :data:`geo.core.progress.Progress` callback)."""
        now = time.monotonic()
        if now - self.last >= self.every or done >= total:
            self.last = now
            self.set(progress_done=done, progress_total=total)

    def finish(self, retry_s: float = 30.0, **values: Any) -> bool:
        """Write the final state on a fresh connection, retrying for ``retry_s`` while the database is away.

        False when it could not be written: the reaper marks the job interrupted later.
        """
        return finish(self.url, self.table, self.job_id, values, retry_s)

    def close(self) -> None:
        """Close the job's status connection (unless it was the caller's)."""
        if self.owned:
            with contextlib.suppress(Exception):
                self.conn.close()


def finish(
    url: str,
    table: str,
    job_id: int,
    values: dict[str, Any],
    retry_s: float = 30.0,
    *,
    unless_finished: bool = False,
) -> bool:
    """Set a job's final columns on a new connection, retrying while the database cannot be reached.

    ``unless_finished``: only if the job has not recorded an end of its own.
    """
    unfinished = UNFINISHED.get(table, ("queued", "running")) if unless_finished else None
    deadline = time.monotonic() + retry_s
    while True:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                _update(conn, table, job_id, values, unfinished)
            return True
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                log.error("job %s %s: its final state could not be written: %s", table, job_id, exc)
                return False
            time.sleep(1.0)


def with_progress(record: dict[str, Any]) -> dict[str, Any]:
    """Add ``progress`` (done, total, fraction) to a job's record read from its table."""
    done, total = record["progress_done"], record["progress_total"]
    record["progress"] = {"done": done, "total": total, "fraction": round(done / total, 4) if total else None}
    return record
