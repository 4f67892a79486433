"""The sender: fan the outbox out, claim due deliveries, post them signed, record every attempt, retry.

Each round (:meth:`Sender.run_once`): :func:`~geo.webhooks.fanout.fan_out`, then up to
``batch`` due deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` and leased (their next
attempt moved past the attempt's longest time, so a process that dies mid-post leaves them to be
retried, never lost, and two processes never post the same one at once). Each is posted, at most
``concurrency`` at a time, to the URL registered and nowhere else: redirects are not followed,
the name is resolved and every address checked (no loopback, private or link-local address
unless ``allow_private``), and the connection goes to the address checked (the name is only the
``Host`` and TLS server name), so a name that changes between the check and the connection
cannot send it elsewhere. An attempt has ``timeout_s`` in all and reads at most
``max_response_bytes`` of the answer. A 2xx delivers it; anything else is retried after an
exponential backoff with jitter until ``max_age_hours`` after the event, then ``failed``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from geo.core.settings import WebhookSettings
from geo.webhooks.events import (
    DELIVERY_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature,
)
from geo.webhooks.fanout import JobDocuments, fan_out

log = logging.getLogger("connectivity.webhooks")
USER_AGENT = "connectivity-webhooks/1"
#: Seconds between two purges of finished deliveries past their retention.
PURGE_EVERY_S = 3600.0


class UnsafeTarget(Exception):
    """The URL's name resolves to an address the sender may not post to."""


def next_attempt(
    attempts: int,
    created_at: dt.datetime,
    now: dt.datetime,
    settings: WebhookSettings,
    rand: Callable[[], float] = random.random,
) -> dt.datetime | None:
    """When to try again after ``attempts`` failed attempts; None once past ``max_age_hours``.

    ``backoff_base_s * 2**(attempts - 1)``, at most ``backoff_max_s``, times a random 50-100 %
    (jitter: receivers that come back are not met by every sender at once).
    """
    delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(attempts - 1, 0))
    at = now + dt.timedelta(seconds=delay * (0.5 + rand() / 2))
    return None if at > created_at + dt.timedelta(hours=settings.max_age_hours) else at


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: the checked address, and the name it speaks to."""

    url: str
    host_header: str
    server_name: str | None


async def resolve(url: str, allow_private: bool) -> Target:
    """The address ``url`` is posted to; :class:`UnsafeTarget` when any address of its name is refused."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"{host} cannot be resolved: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnsafeTarget(f"{host} has no address")
    refused = [str(a) for a in addresses if not a.is_global]
    if refused and not allow_private:
        raise UnsafeTarget(f"{host} resolves to {', '.join(refused)}, not a public address")
    address = addresses[0]
    netloc = f"[{address}]" if address.version == 6 else str(address)
    if parts.port:
        netloc += f":{parts.port}"
    return Target(
        urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        parts.netloc,
        host if parts.scheme == "https" else None,
    )


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: the answer's status, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes posted (and signed) for a payload: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def post(client: httpx.AsyncClient, delivery: dict[str, Any], settings: WebhookSettings) -> Outcome:
    """Post one delivery to its webhook's URL, signed; never raises (the error is the outcome)."""
    started = time.monotonic()
    body = body_of(delivery["payload"])
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(settings.timeout_s):
            target = await resolve(delivery["url"], settings.allow_private)
            headers = {
                "Host": target.host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: signature(delivery["secret"], body),
                EVENT_ID_HEADER: str(delivery["event_id"]),
                EVENT_TYPE_HEADER: delivery["event_type"],
                DELIVERY_HEADER: str(delivery["id"]),
            }
            extensions = {"sni_hostname": target.server_name} if target.server_name else {}
            async with client.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
                read = 0
                async for chunk in response.aiter_raw():  # only as much as the limit, then close
                    read += len(chunk)
                    if read >= settings.max_response_bytes:
                        break
            if not 200 <= status < 300:
                error = f"answered {status}"
    except TimeoutError:
        error = f"no answer within {settings.timeout_s:g} s"
    except UnsafeTarget as exc:
        error = str(exc)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Outcome(status, error[:500] if error else None, int((time.monotonic() - started) * 1000))


CLAIM_SQL = """
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE state = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
   SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
  FROM due, webhooks w JOIN api_keys k ON k.id = w.key_id
 WHERE d.id = due.id AND w.id = d.webhook_id
RETURNING d.id, d.event_id, d.event_type, d.payload, d.attempts, d.created_at, w.url, w.secret,
          w.active AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) AS live
"""
CANCEL_SQL = """UPDATE webhook_deliveries SET state = 'cancelled', attempts = attempts - 1,
                       last_error = 'the webhook was deleted or its key revoked'
                WHERE id = %s AND state = 'pending'"""
RECORD_SQL = """
WITH attempt AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
    VALUES (%(id)s, %(attempt)s, %(code)s, %(error)s, %(ms)s)
)
UPDATE webhook_deliveries
   SET state = %(state)s, last_attempt_at = now(), last_status_code = %(code)s, last_error = %(error)s,
       delivered_at = CASE WHEN %(state)s = 'delivered' THEN now() END,
       next_attempt_at = coalesce(%(next)s, next_attempt_at)
 WHERE id = %(id)s AND state = 'pending'
"""
PURGE_SQL = """DELETE FROM webhook_deliveries
               WHERE state <> 'pending' AND created_at < now() - make_interval(days => %s)"""


class Sender:
    """The webhook sender of one process: :meth:`run` loops until cancelled (the app's lifespan, or the CLI)."""

    def __init__(self, url: str, settings: WebhookSettings, documents: JobDocuments | None = None) -> None:
        self.url = url
        self.settings = settings
        #: What jobs' callbacks are sent (:data:`~geo.webhooks.fanout.JobDocuments`).
        self.documents = documents
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._client: httpx.AsyncClient | None = None
        self._purged_at = 0.0

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)
        return self._conn

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,  # only ever the URL registered
                trust_env=False,  # no proxy or .netrc from the environment
                timeout=httpx.Timeout(self.settings.timeout_s),
                limits=httpx.Limits(max_connections=self.settings.concurrency),
            )
        return self._client

    async def run_once(self) -> int:
        """One round: fan out, claim, post, record; the number of deliveries attempted."""
        conn = await self._connection()
        while await fan_out(conn, documents=self.documents) > 0:
            pass
        lease = self.settings.timeout_s * 2 + 10
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(CLAIM_SQL, {"n": self.settings.batch, "lease": lease})
            claimed = await cur.fetchall()
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def attempt(delivery: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
            async with gate:
                return delivery, await post(self._http(), delivery, self.settings)

        live = [d for d in claimed if d["live"]]
        for gone in (d for d in claimed if not d["live"]):
            await conn.execute(CANCEL_SQL, [gone["id"]])
        for delivery, outcome in await asyncio.gather(*(attempt(d) for d in live)):
            await self._record(conn, delivery, outcome)
        await self._purge(conn)
        return len(live)

    async def _record(
        self, conn: psycopg.AsyncConnection[Any], delivery: dict[str, Any], outcome: Outcome
    ) -> None:
        state, later = "delivered", None
        if not outcome.delivered:
            now = dt.datetime.now(dt.UTC)
            later = next_attempt(delivery["attempts"], delivery["created_at"], now, self.settings)
            state = "pending" if later is not None else "failed"
        await conn.execute(
            RECORD_SQL,
            {
                "id": delivery["id"], "attempt": delivery["attempts"], "code": outcome.status_code,
                "error": outcome.error, "ms": outcome.duration_ms, "state": state, "next": later,
            },
        )  # fmt: skip

    async def _purge(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._purged_at >= PURGE_EVERY_S:
            self._purged_at = time.monotonic()
            cur = await conn.execute(PURGE_SQL, [self.settings.retention_days])
            if cur.rowcount:
                log.info("webhook deliveries past retention deleted: %s", cur.rowcount)

    async def run(self) -> None:
        """Rounds until cancelled: at once while there is more to send, else every ``poll_s``."""
        try:
            while True:
                try:
                    busy = await self.run_once() >= self.settings.batch
                except (psycopg.Error, OSError) as exc:  # the database is away: the next round tries again
                    log.warning("webhook sender: %s", exc)
                    await self._close_conn()
                    busy = False
                await asyncio.sleep(0 if busy else self.settings.poll_s)
        finally:
            await self.close()

    async def _close_conn(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except psycopg.Error:
                pass

    async def close(self) -> None:
        """Close the sender's connection and HTTP client."""
        await self._close_conn()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
