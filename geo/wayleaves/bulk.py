"""Bulk status updates from a CSV: every row checked first, then all applied or none.

Row errors are :class:`~geo.core.row_errors.RowError` records, written as CSV by
:func:`geo.core.row_errors.errors_csv` like those of asset uploads.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from geo.access.principals import PermissionDenied, Principal
from geo.core.errors import InvalidInput
from geo.core.query import whole_number
from geo.core.row_errors import RowError
from geo.wayleaves.errors import InvalidTransition, InvalidWayleave
from geo.wayleaves.queries import fetch_wayleave
from geo.wayleaves.statuses import STATUSES, allowed_next
from geo.wayleaves.store import append_event, check_at

BULK_COLUMNS = ("wayleave_id", "reference", "to", "version", "note", "at")
MAX_BULK_ROWS = 10_000


class InvalidBulkFile(InvalidInput):
    """The whole CSV cannot be used (no header, unknown or missing columns, too many rows) (422)."""


@dataclass
class BulkReport:
    """What a bulk update did or would do: rows read, transitions applied, and every row error."""

    rows: int
    applied: int = 0
    dry_run: bool = False
    errors: list[RowError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a JSON answer."""
        return {
            "rows": self.rows,
            "applied": self.applied,
            "dry_run": self.dry_run,
            "errors": [e.to_dict() for e in self.errors],
        }


def read_bulk_csv(data: bytes | str) -> list[dict[str, str]]:
    """The rows of a bulk status CSV: ``wayleave_id`` or ``reference``, ``to``; optional ``version``, ``note``, ``at``."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidBulkFile(
            f"the CSV is not valid UTF-8 (byte {exc.start + 1:,}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InvalidBulkFile("the CSV holds NUL bytes: it is not a text file")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise InvalidBulkFile("the CSV has no header row")
    header = [(h or "").strip().lower() for h in reader.fieldnames]
    unknown = [h for h in header if h not in BULK_COLUMNS]
    if unknown:
        raise InvalidBulkFile(f"unknown columns {', '.join(unknown)}; columns: {', '.join(BULK_COLUMNS)}")
    if "to" not in header or not ({"wayleave_id", "reference"} & set(header)):
        raise InvalidBulkFile("the CSV needs a 'to' column and a 'wayleave_id' or 'reference' column")
    rows = [
        {h: (v or "").strip() for h, v in zip(header, raw, strict=False)}
        for raw in csv.reader(io.StringIO(text.lstrip("\ufeff")))
    ][1:]
    rows = [r for r in rows if any(r.values())]
    if len(rows) > MAX_BULK_ROWS:
        raise InvalidBulkFile(f"{len(rows)} rows: at most {MAX_BULK_ROWS} in one file")
    return rows


async def bulk_transition(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    rows: Sequence[dict[str, str]],
    *,
    dry_run: bool = False,
) -> BulkReport:
    """Check every row, then apply all of them or none.

    Rows apply in file order, so one file may move a wayleave several steps. A ``version``, when
    given, must be the wayleave's version before the file. Any row error (unknown wayleave,
    another borough's, unknown status, a transition the rules refuse, stale version, bad ``at``)
    means nothing is written; the report lists every error.
    """
    principal.require_role("admin", "borough")
    report = BulkReport(rows=len(rows), dry_run=dry_run)
    async with conn.transaction():
        by_id, by_ref = await _lock_wayleaves(conn, rows)
        state = {i: dict(r) for i, r in by_id.items()}
        plan: list[tuple[int, str, str | None, dt.datetime | None]] = []
        for n, r in enumerate(rows, start=1):
            source = r.get("wayleave_id") or r.get("reference") or None

            def error(column: str, value: Any, message: str, n: int = n, source: str | None = source) -> None:
                report.errors.append(
                    RowError(n, source, column, None if value is None else str(value), message)
                )

            target = _bulk_target(r, by_id, by_ref, principal, error)
            if target is None:
                continue
            step = _bulk_step(r, target, state[target["id"]], principal, error)
            if step is not None:
                plan.append(step)
        if report.errors or dry_run:
            return report
        for wayleave_id, to, note, at in plan:
            row = await fetch_wayleave(conn, wayleave_id, lock=True)
            await append_event(conn, row, to, principal, note, at)
            report.applied += 1
    return report


async def _lock_wayleaves(
    conn: psycopg.AsyncConnection[Any], rows: Sequence[dict[str, str]]
) -> tuple[dict[int, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The wayleaves the rows name, by id and by reference, locked until the end of the transaction."""
    numbers = (whole_number(r.get("wayleave_id", "")) for r in rows)
    ids = [n for n in numbers if n is not None]
    refs = [r["reference"] for r in rows if r.get("reference") and not r.get("wayleave_id")]
    async with conn.cursor(row_factory=dict_row) as cur:
        # Locked in id order until the end, so the check and the writes see the same state.
        await cur.execute(
            """SELECT id, borough_code, status, resume_status, version, reference FROM wayleaves
               WHERE id = ANY(%s) OR reference = ANY(%s) ORDER BY id FOR UPDATE""",
            [ids, refs],
        )
        found = await cur.fetchall()
    by_id = {r["id"]: dict(r) for r in found}
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for r in found:
        if r["reference"]:
            by_ref.setdefault(r["reference"], []).append(by_id[r["id"]])
    return by_id, by_ref


def _bulk_step(
    r: dict[str, str],
    target: dict[str, Any],
    current: dict[str, Any],
    principal: Principal,
    error: Any,
) -> tuple[int, str, str | None, dt.datetime | None] | None:
    """The transition a row asks for, checked against ``current`` (the state after the rows
    before it, moved on when the row is valid); None after reporting the row's error."""
    to = r.get("to", "")
    at = None
    if r.get("at"):
        try:
            at = check_at(principal, dt.datetime.fromisoformat(r["at"]))
        except (InvalidWayleave, PermissionDenied) as exc:
            error("at", r["at"], str(exc))
            return None
        except ValueError:
            error("at", r["at"], "not an ISO 8601 date-time")
            return None
    version = r.get("version", "")
    if version and whole_number(version) != target["version"]:
        error("version", version, f"wayleave {target['id']} is at version {target['version']}; read it again")
        return None
    if to not in STATUSES:
        error("to", to, f"not one of {', '.join(STATUSES)}")
        return None
    allowed = allowed_next(current["status"], current["resume_status"])
    if to not in allowed:
        error("to", to, str(InvalidTransition(current["status"], to, allowed, target["id"])))
        return None
    current["resume_status"] = current["status"] if to == "on_hold" else None
    current["status"] = to
    return target["id"], to, r.get("note") or None, at


def _bulk_target(
    r: dict[str, str],
    by_id: dict[int, dict[str, Any]],
    by_ref: dict[str, list[dict[str, Any]]],
    principal: Principal,
    error: Any,
) -> dict[str, Any] | None:
    """The wayleave a row names (by id, else by reference) if the caller may move it; None after reporting why not."""
    if r.get("wayleave_id"):
        raw = r["wayleave_id"]
        number = whole_number(raw)
        target = None if number is None else by_id.get(number)
        if target is None:
            error("wayleave_id", raw, "no wayleave has this id")
            return None
    elif r.get("reference"):
        matches = by_ref.get(r["reference"], [])
        if principal.role == "borough":
            matches = [m for m in matches if m["borough_code"] == principal.borough_code]
        if len(matches) != 1:
            error(
                "reference",
                r["reference"],
                "no wayleave has this reference"
                if not matches
                else "reference is ambiguous: give wayleave_id",
            )
            return None
        target = matches[0]
    else:
        error("wayleave_id", None, "give the wayleave_id or the reference")
        return None
    if principal.role == "borough" and target["borough_code"] != principal.borough_code:
        column = "wayleave_id" if r.get("wayleave_id") else "reference"
        error(
            column,
            r.get(column),
            f"belongs to borough {target['borough_code']}, not {principal.borough_code}",
        )
        return None
    return target
