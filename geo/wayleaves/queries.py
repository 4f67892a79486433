"""Reading wayleaves: one by id, lists by borough, operator, status, clock and bbox, and their CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from geo.access.principals import Principal
from geo.core.csv_out import write_records
from geo.core.errors import InvalidParameter
from geo.core.query import ENVELOPE_SQL, Bbox
from geo.core.settings import WayleaveSettings
from geo.reference.boroughs import UnknownBorough, check_code
from geo.wayleaves.calendar import clock, with_clock
from geo.wayleaves.errors import WayleaveNotFound
from geo.wayleaves.statuses import STATUSES
from geo.wayleaves.visibility import RESTRICTED, Viewer, record_personal_reads, redact, viewer_for

SELECT = """
SELECT w.id, w.site_id, s.name AS site_name, w.borough_code, w.operator, w.template, w.template_version,
       w.status, w.status_since, w.resume_status, w.requested_on, w.surveyed_on, w.terms_issued_on,
       w.signed_on, w.live_on, w.expires_on, w.reference, w.operator_reference, w.notes,
       w.contact_name, w.contact_email, w.contact_phone, w.version, w.created_at, w.created_by,
       (SELECT array_agg(sa.asset_id ORDER BY sa.asset_id) FROM wayleave_site_assets sa
        WHERE sa.site_id = w.site_id) AS asset_ids
FROM wayleaves w JOIN wayleave_sites s ON s.id = w.site_id
"""
#: Rows read at a time where each row's clock decides (overdue filters, counts).
_BATCH = 2000
EXPORT_COLUMNS = (
    "id", "site_id", "site_name", "borough_code", "operator", "template", "template_version", "status",
    "status_since", "days_in_status", "due_on", "overdue", "requested_on", "surveyed_on", "terms_issued_on",
    "signed_on", "live_on", "expires_on", "reference", "operator_reference", "version",
    "notes", "contact_name", "contact_email", "contact_phone",
)  # fmt: skip


async def fetch_wayleave(
    conn: psycopg.AsyncConnection[Any], wayleave_id: int, lock: bool = False
) -> dict[str, Any]:
    """One wayleave as stored, unredacted (``lock``: FOR UPDATE); :class:`WayleaveNotFound` if none."""
    query = SELECT + " WHERE w.id = %s" + (" FOR UPDATE OF w" if lock else "")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), [wayleave_id])
        row = await cur.fetchone()
    if row is None:
        raise WayleaveNotFound(f"no wayleave has id {wayleave_id}")
    return row


@dataclass(frozen=True)
class WayleaveQuery:
    """Filters of a wayleave list."""

    boroughs: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    overdue: bool | None = None
    bbox: Bbox | None = None
    after: int | None = None
    limit: int = 1000


def parse_query(
    borough: str | None = None,
    operator: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    bbox: Bbox | None = None,
    after: int | None = None,
    limit: int = 1000,
) -> WayleaveQuery:
    """Comma-separated filters checked: GSS codes and statuses; a bad one is a 400 (:class:`InvalidParameter`).

    ``bbox`` comes parsed (:func:`geo.core.query.read_bbox`, as every endpoint parses one).
    """

    def split(value: str | None) -> tuple[str, ...]:
        return tuple(v.strip() for v in (value or "").split(",") if v.strip())

    statuses = split(status)
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise InvalidParameter(f"status: {', '.join(unknown)} not one of {', '.join(STATUSES)}")
    try:
        boroughs = tuple(check_code(b) for b in split(borough))
    except UnknownBorough as exc:
        raise InvalidParameter(f"borough: {exc}") from None
    return WayleaveQuery(
        boroughs=boroughs,
        operators=split(operator),
        statuses=statuses,
        overdue=overdue,
        bbox=bbox,
        after=after,
        limit=max(1, min(limit, 10_000)),
    )


def _where(viewer: Viewer, query: WayleaveQuery) -> tuple[sql.Composable, dict[str, Any]]:
    """The SQL condition (and its parameters) of a query's filters for ``viewer`` (``overdue`` aside)."""
    conds: list[sql.Composable] = [sql.SQL("true")]
    params: dict[str, Any] = {}
    if viewer.principal.role == "operator":
        conds.append(sql.SQL("w.operator = %(own)s"))
        params["own"] = viewer.operator  # an unbound operator key (NULL) matches nothing
    for column, values in (
        ("borough_code", query.boroughs),
        ("operator", query.operators),
        ("status", query.statuses),
    ):
        if values:
            conds.append(sql.SQL("w.{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(column)))
            params[column] = list(values)
    if query.bbox is not None:
        conds.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM wayleave_site_assets sa JOIN assets a ON a.id = sa.asset_id"  # type: ignore[arg-type]
                f" WHERE sa.site_id = w.site_id AND ST_Intersects(a.geom, {ENVELOPE_SQL}))"
            )
        )
        params.update(query.bbox.params())
    return sql.SQL(" AND ").join(conds), params


async def select_rows(
    conn: psycopg.AsyncConnection[Any],
    viewer: Viewer,
    query: WayleaveQuery,
    after: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The stored rows a query selects that ``viewer`` may see, in id order (``overdue`` not applied).

    ``after`` (default: the query's) and ``limit`` (default: none) page by id, keyset style.
    """
    where, params = _where(viewer, query)
    after = query.after if after is None else after
    if after is not None:
        where = sql.SQL("{} AND w.id > %(after)s").format(where)
        params["after"] = after
    statement = sql.SQL(SELECT + " WHERE {} ORDER BY w.id").format(where)  # type: ignore[arg-type]
    if limit is not None:
        statement = sql.SQL("{} LIMIT %(limit)s").format(statement)
        params["limit"] = limit
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        return await cur.fetchall()


@dataclass(frozen=True)
class WayleavePage:
    """One page of a wayleave list: its rows (redacted) and the id to page on from (None on the last page)."""

    rows: list[dict[str, Any]]
    next_after: int | None


async def wayleave_page(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    query: WayleaveQuery,
    settings: WayleaveSettings,
    now: dt.datetime | None = None,
) -> WayleavePage:
    """Up to ``query.limit`` wayleaves after ``query.after``, in id order, as the caller may see them.

    The database pages by id (one row more than the limit says whether there is a next page).
    ``overdue`` depends on each row's clock, computed here: the rows are then read in batches until
    the page is full, so memory stays bounded by the batch whatever the table holds.
    """
    viewer = await viewer_for(conn, principal)
    want = query.limit + 1
    batch = want if query.overdue is None else max(want, _BATCH)
    found: list[dict[str, Any]] = []
    after = query.after
    while len(found) < want:
        stored = await select_rows(conn, viewer, query, after=after, limit=batch)
        for row in stored:
            with_clock(row, settings, now)
            if query.overdue is None or row["overdue"] == query.overdue:
                found.append(row)
        if len(stored) < batch:
            break
        after = stored[-1]["id"]
    more = len(found) > query.limit
    shown = [redact(r, viewer) for r in found[: query.limit]]
    await record_personal_reads(conn, viewer, shown, "wayleave list")
    return WayleavePage(shown, shown[-1]["id"] if more and shown else None)


async def list_wayleaves(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    query: WayleaveQuery,
    settings: WayleaveSettings,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The first page of wayleaves matching the filters (:func:`wayleave_page`), in id order."""
    return (await wayleave_page(conn, principal, query, settings, now)).rows


async def count_wayleaves(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    query: WayleaveQuery,
    settings: WayleaveSettings,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """How many wayleaves match the filters (``after`` and ``limit`` aside), overall and per status, with how many are overdue.

    Every status is listed (0 when none). Overdue depends on each wayleave's clock, so the status and
    the time it entered it are read in id batches of :data:`_BATCH` (memory bounded by the batch).
    """
    viewer = await viewer_for(conn, principal)
    where, params = _where(viewer, query)
    by_status = {s: {"total": 0, "overdue": 0} for s in STATUSES}
    statement = sql.SQL(
        "SELECT w.id, w.status, w.status_since FROM wayleaves w WHERE {} AND w.id > %(after)s"
        " ORDER BY w.id LIMIT %(limit)s"
    ).format(where)
    after = 0
    while True:
        cur = await conn.execute(statement, {**params, "after": after, "limit": _BATCH})
        batch = await cur.fetchall()
        for _, status, since in batch:
            late = bool(clock(status, since, settings, now)["overdue"])
            if query.overdue is None or late == query.overdue:
                by_status[status]["total"] += 1
                by_status[status]["overdue"] += late
        if len(batch) < _BATCH:
            break
        after = batch[-1][0]
    return {
        "total": sum(c["total"] for c in by_status.values()),
        "overdue": sum(c["overdue"] for c in by_status.values()),
        "by_status": by_status,
    }


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Wayleaves (already redacted) as CSV; columns a row lacks are absent from the header."""
    rows = list(rows)
    columns = [c for c in EXPORT_COLUMNS if not rows or any(c in r for r in rows)]
    if not rows:
        columns = [c for c in EXPORT_COLUMNS if c not in RESTRICTED]
    return write_records(columns, rows)
