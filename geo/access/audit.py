"""The audit trail: one ``audit_events`` row for every write, and for every read of personal data.

:func:`record` (and :func:`record_async`) write the event on the caller's connection, in the
caller's transaction: the event commits with the write it records, or not at all. An event
names its actor (the API key's id, label and role, or the CLI's operating-system user), the
action (``asset.update``, ``upload.apply``, ``wayleave.transition``, ``key.revoke``...), the
object (type and id) and what changed: field names and versions, or a reference to the
history row that holds the values, never a copy of personal data (so an erasure has fewer
places to reach). The table is append-only (migration 0013, grants in 0015).

:data:`ACTIONS` lists every action; :func:`search` reads them back for ``GET /audit`` and
``connectivity audit``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.access.principals import Principal
from geo.core.errors import InvalidParameter
from geo.core.query import whole_number

#: The request an event belongs to (the ``X-Request-Id`` of the access log), set per request.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

#: Every action recorded, and what it means.
ACTIONS = {
    "asset.update": "an asset's attributes changed through the API",
    "upload.create": "a file was received for upload (a dry run or an import)",
    "upload.apply": "a previewed upload was asked to be applied",
    "upload.applied": "an upload's assets were written (new, changed, retired)",
    "demo.load": "the demo data were loaded into an empty database",
    "wayleave.create": "a wayleave (and its site) was created",
    "wayleave.transition": "a wayleave's status changed",
    "wayleave.update": "a wayleave's details changed (values in wayleave_changes)",
    "key.create": "an API key was created",
    "key.revoke": "an API key was revoked",
    "key.rotate": "an API key's secret was replaced",
    "key.bind": "an operator key was bound to (or released from) an operator",
    "pipeline.import": "a Pipeline export was imported (or previewed)",
    "pipeline.location": "a Pipeline project's site was set or cleared",
    "report.create": "a coverage report was requested",
    "report.dismiss": "a coverage report was dismissed (stopped, or deleted once finished)",
    "personal_data.read": "personal data (wayleave contacts, Pipeline owners) was read",
    "gdpr.export": "everything held about a person was exported",
    "gdpr.erase": "a person's data was erased everywhere",
    "retention.purge": "data past its retention period was deleted",
    "webhook.create": "a webhook was registered (its URL's host and events)",
    "webhook.delete": "a webhook was deleted (its pending deliveries cancelled)",
}


@dataclass(frozen=True)
class Actor:
    """Who did it, as an event records it."""

    name: str
    key_id: int | None = None
    role: str | None = None

    @classmethod
    def of(cls, who: Principal | Actor | str) -> Actor:
        """The actor of a principal (an API key or the CLI) or a plain name (``system``)."""
        if isinstance(who, Actor):
            return who
        if isinstance(who, str):
            return cls(who)
        return cls(who.name, who.key_id, who.role)


INSERT = """INSERT INTO audit_events (actor, actor_key_id, actor_role, action, object_type, object_id, details, request_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""


def _params(
    who: Principal | Actor | str,
    action: str,
    object_type: str,
    object_id: Any,
    details: dict[str, Any] | None,
) -> list[Any]:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    actor = Actor.of(who)
    return [
        actor.name, actor.key_id, actor.role, action, object_type,
        None if object_id is None else str(object_id), Jsonb(details or {}), REQUEST_ID.get(),
    ]  # fmt: skip


def record(
    conn: psycopg.Connection[Any],
    who: Principal | Actor | str,
    action: str,
    object_type: str,
    object_id: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one event on ``conn``, in its current transaction."""
    conn.execute(INSERT, _params(who, action, object_type, object_id, details))


async def record_async(
    conn: psycopg.AsyncConnection[Any],
    who: Principal | Actor | str,
    action: str,
    object_type: str,
    object_id: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    """:func:`record` on an async connection."""
    await conn.execute(INSERT, _params(who, action, object_type, object_id, details))


async def record_reads(
    conn: psycopg.AsyncConnection[Any], who: Principal, object_type: str, ids: list[int], what: str
) -> None:
    """Record that ``who`` was shown personal data (``what``) of these objects: one event, its
    object the one id or, for several, none, with up to 1,000 ids in its details. Nothing if none."""
    if ids:
        await record_async(
            conn, who, "personal_data.read", object_type, ids[0] if len(ids) == 1 else None,
            {"what": what, "ids": ids[:1000], "count": len(ids)},
        )  # fmt: skip


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit search; every one optional."""

    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before: int | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        """An action must be one of :data:`ACTIONS`; a time without a zone is taken as UTC."""
        if self.action is not None and self.action not in ACTIONS:
            raise InvalidParameter(f"action: {self.action!r} is not one of {', '.join(ACTIONS)}")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                object.__setattr__(self, name, moment.replace(tzinfo=dt.UTC))


COLUMNS = "id, at, actor, actor_key_id, actor_role, action, object_type, object_id, details, request_id"


def _where(query: AuditQuery) -> tuple[sql.Composable, dict[str, Any]]:
    conds: list[sql.Composable] = [sql.SQL("true")]
    params: dict[str, Any] = {}
    if query.actor:
        # A key id ("8" or "key 8") or any part of the actor's name ("cli:", "pt-camden").
        number = query.actor.removeprefix("key ").strip()
        key_id = whole_number(number)
        if key_id is not None and key_id >= 0:
            conds.append(sql.SQL("actor_key_id = %(actor_key)s"))
            params["actor_key"] = key_id
        else:
            conds.append(sql.SQL("actor ILIKE %(actor)s"))
            params["actor"] = "%" + query.actor.replace("%", r"\%").replace("_", r"\_") + "%"
    for column in ("action", "object_type", "object_id"):
        value = getattr(query, column)
        if value:
            conds.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)))
            params[column] = value
    if query.since:
        conds.append(sql.SQL("at >= %(since)s"))
        params["since"] = query.since
    if query.until:
        conds.append(sql.SQL("at <= %(until)s"))
        params["until"] = query.until
    if query.before is not None:
        conds.append(sql.SQL("id < %(before)s"))
        params["before"] = query.before
    return sql.SQL(" AND ").join(conds), params


async def search(
    conn: psycopg.AsyncConnection[Any], query: AuditQuery
) -> tuple[list[dict[str, Any]], int | None]:
    """Events matching ``query``, newest first, and the ``before`` cursor of the next page (None: last)."""
    where, params = _where(query)
    params["limit"] = query.limit + 1
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL("SELECT {} FROM audit_events WHERE {} ORDER BY id DESC LIMIT %(limit)s").format(
                sql.SQL(COLUMNS), where
            ),
            params,
        )
        rows = await cur.fetchall()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, (rows[-1]["id"] if more and rows else None)
