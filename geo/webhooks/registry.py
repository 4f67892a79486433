"""Registering webhooks: check the URL and events, keep the secret, list, delete, and read the delivery log.

A webhook belongs to the key that registered it: that key (and admins) see it and its log;
anyone else is told there is no such webhook. Creation and deletion are in the audit trail.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from geo.access.audit import record_async
from geo.access.principals import PermissionDenied, Principal
from geo.core.errors import Conflict, InvalidParameter, NotFound
from geo.core.settings import WebhookSettings
from geo.webhooks.events import EVENTS, ROLE_EVENTS

SECRET_PREFIX = "whsec_"
MAX_URL = 2000
DELIVERY_STATES = ("pending", "delivered", "failed", "cancelled")


class InvalidWebhook(InvalidParameter):
    """A URL or event list that cannot be registered (400); ``errors`` says where."""

    def __init__(self, where: str, message: str, value: Any = None) -> None:
        super().__init__(f"{where}: {message}")
        # The value as sent, short: a string's first 200 characters, anything else as its repr.
        shown = value[:200] if isinstance(value, str) else value if value is None else repr(value)[:200]
        self.problem_extra = {"errors": [{"where": where, "message": message, "value": shown}]}


class WebhookNotFound(NotFound):
    """No webhook has that id, or the key may not see it (404)."""


class TooManyWebhooks(Conflict):
    """The key has as many live webhooks as it may (409)."""


def _refused_host(host: str) -> str | None:
    """Why ``host`` is refused when private addresses are not allowed (None: allowed here).

    Names are resolved again before every delivery (:mod:`geo.webhooks.sender`), which refuses
    one that has come to point at a private address.
    """
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return f"{host} is a local name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if address.is_global else f"{host} is not a public address"


def check_url(url: str, *, allow_private: bool = False, where: str = "body.url") -> str:
    """The URL a webhook may post to: http or https, a host, no credentials, no fragment.

    Without ``allow_private``, loopback, private and link-local addresses and local names are
    refused. Raises :class:`InvalidWebhook` (at ``where``).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidWebhook(where, "a webhook needs a URL", url)
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidWebhook(where, f"{len(url)} characters: at most {MAX_URL}", url)
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidWebhook(where, "a URL has no spaces or control characters", url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidWebhook(where, f"the scheme must be http or https, not {parts.scheme or 'none'!r}", url)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidWebhook(
            where, "a URL must not carry credentials (user:password@); sign with the secret", url
        )
    if parts.fragment or url.endswith("#"):
        raise InvalidWebhook(where, "a URL has no fragment (#...): it is never sent", url)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidWebhook(where, "the URL has no host", url)
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number in range)
    except ValueError:
        raise InvalidWebhook(where, "the port is not a number from 1 to 65535", url) from None
    if not allow_private:
        refused = _refused_host(host)
        if refused:
            raise InvalidWebhook(where, f"{refused}; the service posts only to public addresses", url)
    return url


def check_events(events: Sequence[str] | None, principal: Principal) -> list[str]:
    """The events asked for, checked; none asked: every event the key's role may see."""
    principal.require_key()
    allowed = ROLE_EVENTS[principal.role]  # type: ignore[index]
    if not events:
        return list(allowed)
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InvalidWebhook(
            "body.events", f"unknown events {', '.join(unknown)}; choose from {', '.join(EVENTS)}"
        )
    refused = [e for e in events if e not in allowed]
    if refused:
        raise PermissionDenied(
            f"a {principal.role} key cannot subscribe to {', '.join(refused)}: it cannot read those objects"
        )
    return sorted(set(events), key=list(EVENTS).index)


@dataclass(frozen=True)
class NewWebhook:
    """A webhook just registered: its record and its secret, shown this once."""

    record: dict[str, Any]
    secret: str


COLUMNS = "id, key_id, url, events, active, created_at, created_by, deleted_at"


async def create_webhook(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    url: str,
    events: Sequence[str] | None,
    *,
    settings: WebhookSettings,
) -> NewWebhook:
    """Register ``url`` for ``events`` on behalf of ``principal``'s key; the secret is in the answer only.

    Raises :class:`InvalidWebhook`, :class:`~geo.access.principals.PermissionDenied` (an event
    the role cannot see) or :class:`TooManyWebhooks`.
    """
    principal.require_key()
    url = check_url(url, allow_private=settings.allow_private)
    wanted = check_events(events, principal)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with conn.transaction():
        # One registration at a time per key, so the count below cannot be raced past.
        await conn.execute("SELECT 1 FROM api_keys WHERE id = %s FOR UPDATE", [principal.key_id])
        cur = await conn.execute(
            "SELECT count(*) FROM webhooks WHERE key_id = %s AND active AND job_id IS NULL",
            [principal.key_id],
        )
        count = await cur.fetchone()
        if count is not None and count[0] >= settings.max_per_key:
            raise TooManyWebhooks(
                f"key {principal.key_id} has {count[0]} webhooks, as many as a key may; delete one first"
            )
        async with conn.cursor(row_factory=dict_row) as dcur:
            await dcur.execute(
                f"""INSERT INTO webhooks (key_id, url, events, secret, created_by) VALUES (%s, %s, %s, %s, %s)
                    RETURNING {COLUMNS}""",
                [principal.key_id, url, wanted, secret, principal.name],
            )
            record = await dcur.fetchone()
        assert record is not None
        await record_async(
            conn, principal, "webhook.create", "webhook", record["id"],
            {"host": urlsplit(url).hostname, "events": wanted},
        )  # fmt: skip
    return NewWebhook(record, secret)


#: An execute request's subscriber member -> the job's callback it asks for.
CALLBACKS = {"successUri": ("success", "report.done"), "failedUri": ("failed", "report.failed")}


def check_subscriber(subscriber: Any, *, allow_private: bool = False) -> dict[str, str]:
    """An OGC API Processes ``subscriber`` as {callback: URL}: each URL checked as a webhook's is.

    ``inProgressUri`` is refused: this server sends no progress callbacks (a job's status page
    and ``GET /jobs/{id}`` give its progress). Raises :class:`InvalidWebhook` (``subscriber.…``).
    """
    if not isinstance(subscriber, dict):
        raise InvalidWebhook("subscriber", "an object with successUri and failedUri", str(subscriber))
    if "inProgressUri" in subscriber:
        raise InvalidWebhook(
            "subscriber.inProgressUri",
            "progress callbacks are not sent by this server; follow GET /jobs/{jobId} for progress",
            subscriber["inProgressUri"],
        )
    unknown = [name for name in subscriber if name not in CALLBACKS]
    if unknown:
        raise InvalidWebhook(
            f"subscriber.{unknown[0]}", f"not a member of a subscriber ({', '.join(CALLBACKS)})"
        )
    if not subscriber:
        raise InvalidWebhook("subscriber", "give successUri, failedUri or both")
    return {
        CALLBACKS[name][0]: check_url(url, allow_private=allow_private, where=f"subscriber.{name}")
        for name, url in subscriber.items()
    }


async def create_job_callbacks(
    conn: psycopg.AsyncConnection[Any], principal: Principal, job_id: int, base: str, urls: dict[str, str]
) -> list[int]:
    """Register a job's callbacks (:func:`check_subscriber`) for ``principal``'s key; their webhook ids.

    Before the job starts, so its end cannot come first. Each is a webhook for that job only
    (migration 0022), posted, signed, retried and logged like any other; its secret is not
    shown (the standard's callbacks carry no signature a client expects), and it is audited.
    """
    principal.require_key()
    events = dict(CALLBACKS.values())
    ids = []
    async with conn.transaction():
        for callback, url in urls.items():
            cur = await conn.execute(
                """INSERT INTO webhooks (key_id, url, events, secret, created_by, job_id, job_callback, job_base)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                [principal.key_id, url, [events[callback]], SECRET_PREFIX + secrets.token_urlsafe(32),
                 principal.name, job_id, callback, base],
            )  # fmt: skip
            row = await cur.fetchone()
            assert row is not None
            ids.append(row[0])
            await record_async(
                conn, principal, "webhook.create", "webhook", row[0],
                {"host": urlsplit(url).hostname, "events": [events[callback]], "job": job_id},
            )  # fmt: skip
    return ids


def _visible(row: dict[str, Any] | None, webhook_id: int, principal: Principal) -> dict[str, Any]:
    if row is None or (not principal.is_admin and row["key_id"] != principal.key_id):
        raise WebhookNotFound(f"no webhook has id {webhook_id}")
    return row


async def get_webhook(
    conn: psycopg.AsyncConnection[Any], webhook_id: int, principal: Principal
) -> dict[str, Any]:
    """One webhook (never its secret); the key that registered it and admins see it, deleted ones too."""
    principal.require_key()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM webhooks WHERE id = %s", [webhook_id])
        return _visible(await cur.fetchone(), webhook_id, principal)


async def list_webhooks(
    conn: psycopg.AsyncConnection[Any], principal: Principal, *, deleted: bool = False
) -> list[dict[str, Any]]:
    """The key's live webhooks (admins: everyone's), oldest first; ``deleted`` adds the deleted ones."""
    principal.require_key()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {COLUMNS} FROM webhooks
                WHERE (%(admin)s OR key_id = %(key)s) AND (active OR %(deleted)s) AND job_id IS NULL
                ORDER BY id LIMIT 1000""",
            {"admin": principal.is_admin, "key": principal.key_id, "deleted": deleted},
        )
        return await cur.fetchall()


async def delete_webhook(conn: psycopg.AsyncConnection[Any], webhook_id: int, principal: Principal) -> None:
    """Stop a webhook: nothing more is sent to it (pending deliveries are cancelled); its log stays.

    A deleted webhook cannot be deleted again (404).
    """
    async with conn.transaction():
        row = await get_webhook(conn, webhook_id, principal)
        if not row["active"]:
            raise WebhookNotFound(f"no webhook has id {webhook_id} (it was deleted)")
        await conn.execute(
            "UPDATE webhooks SET active = false, deleted_at = now(), deleted_by = %s WHERE id = %s",
            [principal.name, webhook_id],
        )
        cur = await conn.execute(
            """UPDATE webhook_deliveries SET state = 'cancelled', last_error = 'the webhook was deleted'
               WHERE webhook_id = %s AND state = 'pending'""",
            [webhook_id],
        )
        await record_async(
            conn, principal, "webhook.delete", "webhook", webhook_id, {"cancelled": cur.rowcount}
        )


DELIVERIES_SQL = """
SELECT d.id, d.event_id, d.event_type, d.state, d.attempts, d.created_at, d.next_attempt_at, d.last_attempt_at,
       d.last_status_code, d.last_error, d.delivered_at, d.payload,
       coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at, 'status_code', a.status_code,
                                                     'error', a.error, 'duration_ms', a.duration_ms)
                                  ORDER BY a.attempt)
                 FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]') AS attempt_log
FROM webhook_deliveries d
WHERE d.webhook_id = %(webhook)s AND (%(state)s::text IS NULL OR d.state = %(state)s)
  AND (%(before)s::bigint IS NULL OR d.id < %(before)s)
ORDER BY d.id DESC LIMIT %(limit)s
"""


async def list_deliveries(
    conn: psycopg.AsyncConnection[Any],
    webhook_id: int,
    principal: Principal,
    *,
    state: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """A webhook's deliveries, newest first, with every attempt; and the ``before`` of the next page (None: last)."""
    await get_webhook(conn, webhook_id, principal)
    if state is not None and state not in DELIVERY_STATES:
        raise InvalidParameter(f"state: {state!r} is not one of {', '.join(DELIVERY_STATES)}")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            DELIVERIES_SQL, {"webhook": webhook_id, "state": state, "before": before, "limit": limit + 1}
        )
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more and rows else None)
