"""``connectivity keys``: create, list, revoke and rotate API keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import psycopg
import typer
from rich.table import Table

from cli.common import console, domain_errors, err, fail, principal, run_async
from geo import access
from geo.core.settings import Settings

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


def _expiry(days: int | None, until: str | None) -> dt.datetime | None:
    """The expiry of a new key: ``--expires-days`` from now, or ``--expires`` (an ISO date or date-time)."""
    if days is not None and until is not None:
        raise fail("give --expires-days or --expires, not both", 2)
    if days is not None:
        if not 1 <= days <= 36_500:
            raise fail(f"--expires-days: {days} is not between 1 and 36,500 (a hundred years)", 2)
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    if until is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(until)
    except ValueError:
        raise fail(f"--expires: {until!r} is not an ISO 8601 date or date-time", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, borough or operator")],
    borough: Annotated[str | None, typer.Option(help="GSS code the borough key is bound to")] = None,
    label: Annotated[str, typer.Option(help="Who the key is for")] = "",
    operator: Annotated[
        str | None, typer.Option(help="For operator keys: the operator whose wayleaves the key may see")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(help="The key stops working this many days from now")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="The key stops working at this date or time (ISO 8601)")
    ] = None,
) -> None:
    """Create an API key and print it once: it is stored hashed and cannot be shown again."""
    if operator and role != "operator":
        raise fail("--operator applies to operator keys only", 2)
    expires_at = _expiry(expires_days, expires)
    actor = principal()

    async def create(conn: psycopg.AsyncConnection[Any]) -> access.NewKey:
        async with conn.transaction():
            new = await access.create_key(conn, role, borough, label, expires_at=expires_at, actor=actor)
            if operator:
                await access.bind_operator(conn, new.id, operator, actor=actor)
        return new

    with domain_errors(usage=True):  # a refused role, borough or expiry is a usage error (2)
        new = run_async(Settings(), create)
    until = f", expires {new.expires_at:%Y-%m-%d %H:%M} UTC" if new.expires_at else ""
    err.print(
        f"key {new.id} ({new.role}{' ' + new.borough_code if new.borough_code else ''}{until}); store it now:"
    )
    console.print(new.key, highlight=False)


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    rows = run_async(Settings(), access.list_keys)
    table = Table(
        "id", "prefix", "role", "borough", "operator", "label", "created", "last used", "expires", "rotated",
        "revoked",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            str(r["id"]), r["prefix"] + "…", r["role"], r["borough_code"] or "", r["operator"] or "", r["label"],
            _when(r["created_at"]), _when(r["last_used_at"]), _when(r["expires_at"]), _when(r["rotated_at"]),
            _when(r["revoked_at"]),
        )  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")]) -> None:
    """Revoke a key at once."""
    actor = principal()
    if not run_async(Settings(), lambda conn: access.revoke_key(conn, key_id, actor=actor)):
        raise fail(f"no live key has id {key_id}")
    console.print(f"key {key_id} revoked")


@keys_app.command("rotate")
def keys_rotate(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")]) -> None:
    """Give a key a new secret and print it once; the old secret stops working at once."""
    actor = principal()
    with domain_errors():
        new = run_async(Settings(), lambda conn: access.rotate_key(conn, key_id, actor=actor))
    err.print(f"key {new.id} ({new.role}) has a new secret; the old one no longer works. Store it now:")
    console.print(new.key, highlight=False)
