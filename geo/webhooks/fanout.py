"""From the outbox to deliveries: each event, for each webhook whose key may see its object, redacted for that key.

The triggers of migration 0020 write ``webhook_events`` in the transaction of each write;
:func:`fan_out` claims them (``FOR UPDATE SKIP LOCKED``: several service processes share the
work), makes one ``webhook_deliveries`` row per webhook that wants the event and whose key
may see the object, and deletes the events, all in one transaction: an event becomes its
deliveries exactly once.

Who sees what is the API's rule, through the same functions: a wayleave by
:class:`~geo.wayleaves.visibility.Viewer` (operators their own operator's; the authors only
for admins and the owning borough, :func:`~geo.wayleaves.visibility.redact`), and a borough
webhook hears only of its own borough's wayleaves and uploads; a report only by the key that
asked for it and admins (as :mod:`geo.coverage.results`); a Pipeline import only by admins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.access.principals import Principal
from geo.wayleaves.visibility import RESTRICTED, Viewer, redact, redact_event

#: What a job's callback is sent, by callback (``success``, ``failed``): a function of the report
#: as the event carries it and the service's base URL. The coverage package makes these
#: documents (the OGC API Processes ones), so the service hands them in (:class:`Sender`).
JobDocuments = dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]


@dataclass(frozen=True)
class Subscriber:
    """A live webhook and the key it speaks for (a job's callback: for that job only)."""

    webhook_id: int
    events: tuple[str, ...]
    created_at: dt.datetime
    principal: Principal
    operator: str | None = None
    job_id: int | None = None
    job_callback: str | None = None
    job_base: str | None = None

    @property
    def viewer(self) -> Viewer:
        """The webhook's key as the wayleave rules see it."""
        return Viewer(self.principal, self.operator)


def _wayleave(data: dict[str, Any], sub: Subscriber) -> dict[str, Any] | None:
    row = data["wayleave"]
    viewer = sub.viewer
    p = sub.principal
    if not viewer.may_see(row) or (p.role == "borough" and row.get("borough_code") != p.borough_code):
        return None
    out: dict[str, Any] = {"wayleave": redact(row, viewer)}
    if "transition" in data:
        out["transition"] = redact_event(data["transition"], viewer, row)
    if "edit" in data:
        edit = dict(data["edit"])
        if not viewer.sees_restricted(row):
            edit["fields"] = [f for f in edit["fields"] if f not in RESTRICTED]
            edit.pop("by", None)
            if not edit["fields"]:
                return None  # it changed only what this key may not see
        out["edit"] = edit
    return out


def _upload(data: dict[str, Any], sub: Subscriber) -> dict[str, Any] | None:
    p = sub.principal
    if p.is_admin or (p.role == "borough" and data["upload"].get("borough_code") == p.borough_code):
        return {"upload": data["upload"]}
    return None


def _report(data: dict[str, Any], sub: Subscriber) -> dict[str, Any] | None:
    p = sub.principal
    if p.is_admin or (data.get("key_id") is not None and data["key_id"] == p.key_id):
        return {"report": data["report"]}
    return None


def _pipeline_import(data: dict[str, Any], sub: Subscriber) -> dict[str, Any] | None:
    return {"import": data["import"]} if sub.principal.is_admin else None


#: Object type -> (what a subscriber may see of the event's data, the object's API path).
SHAPES: dict[str, tuple[Callable[[dict[str, Any], Subscriber], dict[str, Any] | None], str]] = {
    "wayleave": (_wayleave, "/wayleaves/{}"),
    "upload": (_upload, "/uploads/{}"),
    "report": (_report, "/coverage/reports/{}"),
    "pipeline_import": (_pipeline_import, "/pipeline/imports/{}"),
}


def payload_for(
    event: dict[str, Any], sub: Subscriber, documents: JobDocuments | None = None
) -> dict[str, Any] | None:
    """The JSON a subscriber is sent for ``event`` (a ``webhook_events`` row); None if it may not see it.

    ``{"id", "type", "created_at", "object": {"type", "id", "href"}, "data": {...}}``, the data
    redacted for the subscriber's key as the API redacts it. A job's callback is sent the
    document of ``documents`` for its callback, of its own job's end only (its key ran the job).
    """
    if event["type"] not in sub.events or event["at"] < sub.created_at:
        return None
    if sub.job_id is not None:
        build = (documents or {}).get(sub.job_callback or "")
        if build is None or event["object_type"] != "report" or event["object_id"] != str(sub.job_id):
            return None
        return build(event["data"]["report"], sub.job_base or "")
    shape, href = SHAPES[event["object_type"]]
    data = shape(event["data"], sub)
    if data is None:
        return None
    return {
        "id": str(event["event_id"]),
        "type": event["type"],
        "created_at": event["at"].isoformat(),
        "object": {
            "type": event["object_type"],
            "id": event["object_id"],
            "href": href.format(event["object_id"]),
        },
        "data": data,
    }


EVENTS_SQL = """SELECT id, event_id, type, object_type, object_id, at, data FROM webhook_events
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"""
SUBSCRIBERS_SQL = """
SELECT w.id, w.events, w.created_at, w.job_id, w.job_callback, w.job_base,
       k.id AS key_id, k.role, k.borough_code, k.operator, k.label
FROM webhooks w JOIN api_keys k ON k.id = w.key_id
WHERE w.active AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
  AND w.events && %s::text[]
"""
INSERT_SQL = """INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
                VALUES (%s, %s, %s, %s) ON CONFLICT (webhook_id, event_id) DO NOTHING"""


async def subscribers(conn: psycopg.AsyncConnection[Any], types: list[str]) -> list[Subscriber]:
    """The live webhooks (their keys live too) that want any of ``types``."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SUBSCRIBERS_SQL, [types])
        rows = await cur.fetchall()
    return [
        Subscriber(
            r["id"],
            tuple(r["events"]),
            r["created_at"],
            Principal(
                role=r["role"],
                borough_code=r["borough_code"],
                key_id=r["key_id"],
                label=r["label"] or r["role"],
            ),
            r["operator"],
            r["job_id"],
            r["job_callback"],
            r["job_base"],
        )  # fmt: skip
        for r in rows
    ]


async def fan_out(
    conn: psycopg.AsyncConnection[Any], limit: int = 500, documents: JobDocuments | None = None
) -> int:
    """Turn up to ``limit`` outbox events into deliveries (one transaction); the number of events taken.

    ``documents``: what jobs' callbacks are sent (:data:`JobDocuments`; without them, nothing).
    """
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(EVENTS_SQL, [limit])
            events = await cur.fetchall()
        if not events:
            return 0
        subs = await subscribers(conn, sorted({e["type"] for e in events}))
        rows = []
        for event in events:
            for sub in subs:
                payload = payload_for(event, sub, documents)
                if payload is not None:
                    rows.append((sub.webhook_id, event["event_id"], event["type"], Jsonb(payload)))
        if rows:
            async with conn.cursor() as cur:
                await cur.executemany(INSERT_SQL, rows)
        await conn.execute("DELETE FROM webhook_events WHERE id = ANY(%s)", [[e["id"] for e in events]])
    return len(events)
