"""``connectivity audit``: the audit trail, newest first."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from cli.common import console, fail, run_async
from geo.core.errors import InvalidParameter
from geo.core.settings import Settings


def audit_command(
    actor: Annotated[
        str | None, typer.Option(help="A key id, or part of the actor's name (cli:, a label)")
    ] = None,
    action: Annotated[str | None, typer.Option(help="An action, e.g. wayleave.transition")] = None,
    object_type: Annotated[
        str | None, typer.Option("--object", help="asset, upload, wayleave, api_key...")
    ] = None,
    object_id: Annotated[str | None, typer.Option("--id", help="The object's id")] = None,
    since: Annotated[str | None, typer.Option(help="Events at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="Events at or before (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines on stdout")] = False,
) -> None:
    """The audit trail, newest first: who did what, when, to which object."""
    from geo.access import audit

    moments: dict[str, dt.datetime] = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                moments[name] = dt.datetime.fromisoformat(value)
            except ValueError:
                raise fail(f"--{name}: {value!r} is not an ISO 8601 date or date-time", 2) from None
    try:
        query = audit.AuditQuery(
            actor=actor, action=action, object_type=object_type, object_id=object_id, limit=limit,
            since=moments.get("since"), until=moments.get("until"),
        )  # fmt: skip
    except InvalidParameter as exc:  # "action: …" said as the option, "--action: …"
        raise fail(f"--{exc}", 2) from None
    rows, _ = run_async(Settings(), lambda conn: audit.search(conn, query))
    if json_out:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    table = Table("id", "at (UTC)", "actor", "action", "object", "details")
    for r in rows:
        target = f"{r['object_type']} {r['object_id'] or ''}".strip()
        details = json.dumps(r["details"], default=str)
        table.add_row(
            str(r["id"]), f"{r['at'].astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}", r["actor"], r["action"], target,
            details if len(details) < 120 else details[:117] + "...",
        )  # fmt: skip
    console.print(table)
