"""API keys: creation, rotation, revocation, the operator a key is bound to, and who a key is.

Roles: ``admin`` (the GLA connectivity team: everything), ``borough`` (bound to one GSS
code: writes only its own borough's data) and ``operator`` (reads, requests reports).
Keys are random 256-bit tokens shown once; only their SHA-256 is stored, which is enough
for tokens of that entropy (no password-stretching needed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from geo.access.principals import ROLES, AuthenticationFailed, Principal, Role
from geo.core.errors import InvalidInput, NotFound
from geo.reference.boroughs import check_code

KEY_PREFIX = "cx_"
#: Characters of a key stored in clear to find it by (``keys list`` shows them).
PREFIX_LENGTH = 11


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A key just created (or rotated): the secret is shown once and never stored."""

    id: int
    key: str
    role: Role
    borough_code: str | None
    label: str
    expires_at: dt.datetime | None = None


class InvalidKey(InvalidInput):
    """A key that cannot be created or bound as asked: role, borough, expiry, no such key (422)."""


class KeyNotFound(NotFound):
    """No live key has that id (404)."""


def _secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_key(
    conn: psycopg.AsyncConnection[Any],
    role: str,
    borough_code: str | None = None,
    label: str = "",
    *,
    expires_at: dt.datetime | None = None,
    actor: Principal,
) -> NewKey:
    """Create a key; a ``borough`` key must name its borough, other roles must not.

    ``expires_at``: after it the key is refused (no expiry by default). The creation is
    recorded in the audit trail with ``actor``. Raises :class:`InvalidKey` for a role, borough
    or expiry that cannot be used.
    """
    from geo.access.audit import record_async

    if role not in ROLES:
        raise InvalidKey(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "borough":
        if not borough_code:
            raise InvalidKey("a borough key needs --borough with the borough's GSS code")
        borough_code = check_code(borough_code)
    elif borough_code:
        raise InvalidKey(f"only borough keys are bound to a borough, not {role} keys")
    if expires_at is not None and expires_at <= dt.datetime.now(dt.UTC):
        raise InvalidKey(f"the expiry {expires_at.isoformat()} is not in the future")
    key = _secret()
    async with conn.transaction():
        cur = await conn.execute(
            """INSERT INTO api_keys (prefix, key_hash, role, borough_code, label, expires_at)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
            [key[:PREFIX_LENGTH], hash_key(key), role, borough_code, label, expires_at],
        )
        row = await cur.fetchone()
        assert row is not None
        details = {"role": role, "borough_code": borough_code, "label": label, "expires_at": _iso(expires_at)}
        await record_async(conn, actor, "key.create", "api_key", row[0], details)
    return NewKey(int(row[0]), key, role, borough_code, label, expires_at)  # type: ignore[arg-type]


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def list_keys(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every key, without its secret."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT id, prefix, role, borough_code, operator, label, created_at, last_used_at, expires_at,
                      rotated_at, revoked_at
               FROM api_keys ORDER BY id"""
        )
        return await cur.fetchall()


async def revoke_key(conn: psycopg.AsyncConnection[Any], key_id: int, *, actor: Principal) -> bool:
    """Revoke a key at once; False when no live key has that id."""
    from geo.access.audit import record_async

    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", [key_id]
        )
        if cur.rowcount == 1:
            await record_async(conn, actor, "key.revoke", "api_key", key_id)
    return cur.rowcount == 1


async def rotate_key(conn: psycopg.AsyncConnection[Any], key_id: int, *, actor: Principal) -> NewKey:
    """Give a live key a new secret, at once: the old one stops working; id, role and bindings stay.

    Raises :class:`KeyNotFound` when no live key has that id.
    """
    from geo.access.audit import record_async

    key = _secret()
    async with conn.transaction():
        cur = await conn.execute(
            """UPDATE api_keys SET prefix = %s, key_hash = %s, rotated_at = now()
               WHERE id = %s AND revoked_at IS NULL RETURNING role, borough_code, label, expires_at""",
            [key[:PREFIX_LENGTH], hash_key(key), key_id],
        )
        row = await cur.fetchone()
        if row is None:
            raise KeyNotFound(f"no live key has id {key_id}")
        await record_async(conn, actor, "key.rotate", "api_key", key_id)
    role, borough_code, label, expires_at = row
    return NewKey(key_id, key, role, borough_code, label, expires_at)


async def bind_operator(
    conn: psycopg.AsyncConnection[Any], key_id: int, operator: str | None, *, actor: Principal
) -> None:
    """Bind an operator key to the operator name its wayleaves carry (None unbinds)."""
    from geo.access.audit import record_async

    operator = operator.strip() if operator else None
    async with conn.transaction():
        try:
            cur = await conn.execute(
                "UPDATE api_keys SET operator = %s WHERE id = %s", [operator or None, key_id]
            )
        except psycopg.errors.CheckViolation:
            raise InvalidKey(
                f"key {key_id} is not an operator key: only those are bound to an operator"
            ) from None
        if cur.rowcount != 1:
            raise InvalidKey(f"no key has id {key_id}")
        await record_async(conn, actor, "key.bind", "api_key", key_id, {"operator": operator})


async def key_operator(conn: psycopg.AsyncConnection[Any], key_id: int) -> str | None:
    """The operator an API key is bound to (None when unbound)."""
    cur = await conn.execute("SELECT operator FROM api_keys WHERE id = %s", [key_id])
    row = await cur.fetchone()
    return row[0] if row else None


async def describe_caller(conn: psycopg.AsyncConnection[Any], principal: Principal) -> dict[str, Any]:
    """Who a key is (``GET /me``): its id, label, role, borough and, for operator keys, operator.

    Never the key or its hash. Raises :class:`~geo.access.principals.AuthenticationFailed` without a key.
    """
    principal.require_key()
    operator = None
    if principal.role == "operator" and principal.key_id is not None:
        operator = await key_operator(conn, principal.key_id)
    return {
        "key_id": principal.key_id,
        "label": principal.label,
        "role": principal.role,
        "borough_code": principal.borough_code,
        "operator": operator,
    }


async def authenticate(conn: psycopg.AsyncConnection[Any], key: str) -> Principal:
    """The principal a key stands for; raises :class:`AuthenticationFailed` for unknown, revoked or expired keys.

    The key is found by its prefix (not secret: ``keys list`` shows it) and its hash compared
    in constant time, so the answer's timing says nothing about how much of a guess was right.
    """
    cur = await conn.execute(
        """SELECT id, role, borough_code, label, key_hash, revoked_at IS NOT NULL,
                  expires_at IS NOT NULL AND expires_at <= now(),
                  last_used_at IS NULL OR last_used_at < now() - interval '5 minutes' AS stale
           FROM api_keys WHERE prefix = %s""",
        [key[:PREFIX_LENGTH]],
    )
    row = await cur.fetchone()
    given = hash_key(key)
    if row is None or not hmac.compare_digest(given, row[4]) or row[5]:
        raise AuthenticationFailed("the API key is unknown or revoked")
    key_id, role, borough_code, label, _, _, expired, stale = row
    if expired:
        raise AuthenticationFailed("the API key has expired; ask for a new one")
    if stale:
        # Recorded at most every five minutes, so reads do not turn into writes.
        await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", [key_id])
    return Principal(role=role, borough_code=borough_code, key_id=int(key_id), label=label or role)
