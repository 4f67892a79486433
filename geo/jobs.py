"""The state and progress of a long job (an upload, a coverage report), written as it goes.

They are written on a connection of their own in autocommit mode, so anyone reading the job's
row sees them at once, while the job's own work stays in its transaction.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb


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
        self.owned = conn is None
        self.conn = psycopg.connect(url, autocommit=True) if conn is None else conn
        self.table = sql.Identifier(table)
        self.job_id = job_id
        self.every = every
        self.last = 0.0

    def set(self, **values: Any) -> None:
        """Set columns of the job's row (dicts and lists are stored as JSON)."""
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
        )
        params = {k: Jsonb(v) if isinstance(v, dict | list) else v for k, v in values.items()}
        self.conn.execute(
            sql.SQL("UPDATE {} SET {} WHERE id = %(job_id)s").format(self.table, assignments),
            {**params, "job_id": self.job_id},
        )

    def progress(self, step: str, done: int, total: int) -> None:
        """Record ``done`` of ``total`` (a :data:`geo.progress.Progress` callback)."""
        now = time.monotonic()
        if now - self.last >= self.every or done >= total:
            self.last = now
            self.set(progress_done=done, progress_total=total)

    def close(self) -> None:
        """Close the job's status connection (unless it was the caller's)."""
        if self.owned:
            self.conn.close()


def with_progress(record: dict[str, Any]) -> dict[str, Any]:
    """Add ``progress`` (done, total, fraction) to a job's record read from its table."""
    done, total = record["progress_done"], record["progress_total"]
    record["progress"] = {"done": done, "total": total, "fraction": round(done / total, 4) if total else None}
    return record
