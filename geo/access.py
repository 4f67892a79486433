"""API keys and what each role may do.

Roles: ``admin`` (the GLA connectivity team: everything), ``borough`` (bound to one GSS
code: writes only its own borough's data) and ``operator`` (reads, requests reports).
Keys are random 256-bit tokens shown once; only their SHA-256 is stored, which is enough
for tokens of that entropy (no password-stretching needed).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from geo.boroughs import check_code

Role = Literal["admin", "borough", "operator"]
ROLES: tuple[Role, ...] = ("admin", "borough", "operator")
KEY_PREFIX = "cx_"


class AuthenticationFailed(Exception):
    """No valid key was sent where one is needed (401)."""


class PermissionDenied(Exception):
    """The key is valid but its role or borough does not allow this (403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's role and borough, or anonymous."""

    role: Role | None
    borough_code: str | None = None
    key_id: int | None = None
    label: str = "anonymous"

    @property
    def is_admin(self) -> bool:
        """Whether the caller is the GLA team."""
        return self.role == "admin"

    @property
    def name(self) -> str:
        """How this caller is recorded in history."""
        return f"key {self.key_id} ({self.label})" if self.key_id is not None else self.label

    def require_key(self) -> None:
        """Raise unless a valid key was sent."""
        if self.role is None:
            raise AuthenticationFailed("this needs an API key: send 'Authorization: Bearer <key>'")

    def require_role(self, *roles: Role) -> None:
        """Raise unless the caller has one of ``roles``."""
        self.require_key()
        if self.role not in roles:
            raise PermissionDenied(f"a {self.role} key cannot do this; it needs a {' or '.join(roles)} key")

    def require_borough_write(self, borough_code: str) -> None:
        """Raise unless the caller may write data of ``borough_code`` (admins: any; boroughs: their own)."""
        self.require_role("admin", "borough")
        if self.role == "borough" and self.borough_code != borough_code:
            raise PermissionDenied(
                f"this key belongs to borough {self.borough_code} and cannot write data of borough {borough_code}"
            )


ANONYMOUS = Principal(role=None)


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A key just created: the secret is shown once and never stored."""

    id: int
    key: str
    role: Role
    borough_code: str | None
    label: str


async def create_key(
    conn: psycopg.AsyncConnection[Any], role: str, borough_code: str | None = None, label: str = ""
) -> NewKey:
    """Create a key; a ``borough`` key must name its borough, other roles must not."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "borough":
        if not borough_code:
            raise ValueError("a borough key needs --borough with the borough's GSS code")
        borough_code = check_code(borough_code)
    elif borough_code:
        raise ValueError(f"only borough keys are bound to a borough, not {role} keys")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    cur = await conn.execute(
        """INSERT INTO api_keys (prefix, key_hash, role, borough_code, label)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        [key[:11], hash_key(key), role, borough_code, label],
    )
    row = await cur.fetchone()
    assert row is not None
    return NewKey(int(row[0]), key, role, borough_code, label)  # type: ignore[arg-type]


async def list_keys(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every key, without its secret."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT id, prefix, role, borough_code, operator, label, created_at, last_used_at, revoked_at
               FROM api_keys ORDER BY id"""
        )
        return await cur.fetchall()


async def revoke_key(conn: psycopg.AsyncConnection[Any], key_id: int) -> bool:
    """Revoke a key at once; False when no live key has that id."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", [key_id]
    )
    return cur.rowcount == 1


async def authenticate(conn: psycopg.AsyncConnection[Any], key: str) -> Principal:
    """The principal a key stands for; raises :class:`AuthenticationFailed` for unknown or revoked keys."""
    cur = await conn.execute(
        """SELECT id, role, borough_code, label,
                  last_used_at IS NULL OR last_used_at < now() - interval '5 minutes' AS stale
           FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL""",
        [hash_key(key)],
    )
    row = await cur.fetchone()
    if row is None:
        raise AuthenticationFailed("the API key is unknown or revoked")
    key_id, role, borough_code, label, stale = row
    if stale:
        # Recorded at most every five minutes, so reads do not turn into writes.
        await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", [key_id])
    return Principal(role=role, borough_code=borough_code, key_id=int(key_id), label=label or role)
