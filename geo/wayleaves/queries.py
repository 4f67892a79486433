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
from geo.wayleaves.calendar import with_clock
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


async def select_rows(
    conn: psycopg.AsyncConnection[Any], viewer: Viewer, query: WayleaveQuery
) -> list[dict[str, Any]]:
    """The stored rows a query selects that ``viewer`` may see, in id order (``overdue`` and ``limit`` not applied)."""
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
    if query.after is not None:
        conds.append(sql.SQL("w.id > %(after)s"))
        params["after"] = query.after
    statement = sql.SQL(SELECT + " WHERE {} ORDER BY w.id").format(sql.SQL(" AND ").join(conds))  # type: ignore[arg-type]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        return await cur.fetchall()


async def list_wayleaves(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    query: WayleaveQuery,
    settings: WayleaveSettings,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Wayleaves matching the filters, in id order, as the caller may see them (operators: their own)."""
    viewer = await viewer_for(conn, principal)
    rows = [with_clock(r, settings, now) for r in await select_rows(conn, viewer, query)]
    if query.overdue is not None:
        rows = [r for r in rows if r["overdue"] == query.overdue]
    shown = [redact(r, viewer) for r in rows[: query.limit]]
    await record_personal_reads(conn, viewer, shown, "wayleave list")
    return shown


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Wayleaves (already redacted) as CSV; columns a row lacks are absent from the header."""
    rows = list(rows)
    columns = [c for c in EXPORT_COLUMNS if not rows or any(c in r for r in rows)]
    if not rows:
        columns = [c for c in EXPORT_COLUMNS if c not in RESTRICTED]
    return write_records(columns, rows)
