"""``connectivity gdpr`` and ``purge``: a person's data exported or erased, expired data deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.common import console, database_url, domain_errors, err, fail, principal, run_async
from geo.core.settings import Settings
from geo.db import database

gdpr_app = typer.Typer(
    help="Personal data: export or erase everything held about a person.", no_args_is_help=True
)


@gdpr_app.command("export")
def gdpr_export(
    email: Annotated[str | None, typer.Option(help="The person's e-mail address")] = None,
    name: Annotated[str | None, typer.Option(help="The person's name")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here (default: standard output)")] = None,
) -> None:
    """Everything held about a person, table by table (JSON), history and the audit trail included."""
    from geo.access import personal_data

    target = None
    if out:
        try:  # opened first (a path that cannot be written exports nothing), its owner's alone
            target = os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")
            os.fchmod(target.fileno(), 0o600)  # an existing file keeps its mode otherwise
        except OSError as exc:
            raise fail(f"--out: {out} cannot be written ({exc.strerror})", 2) from None
    actor = principal()
    try:
        with domain_errors(usage=True):  # a subject that names nobody
            result = run_async(Settings(), lambda conn: personal_data.export(conn, actor, email, name))
    except BaseException:
        if target is not None:
            target.close()
            out.unlink()  # type: ignore[union-attr]
        raise
    text = json.dumps(result, default=str, indent=2)
    if target is not None:
        with target:
            target.write(text + "\n")
    else:
        typer.echo(text)
    found = ", ".join(f"{t}: {v['count']}" for t, v in result["tables"].items()) or "nothing"
    err.print(f"found {found}")


@gdpr_app.command("erase")
def gdpr_erase(
    email: Annotated[str | None, typer.Option(help="The person's e-mail address")] = None,
    name: Annotated[str | None, typer.Option(help="The person's name")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking (it cannot be undone)")] = False,
) -> None:
    """Erase a person everywhere: current rows, history, events, errors, key labels, the audit trail."""
    from geo.access import personal_data

    with domain_errors(usage=True):  # checked before asking
        who = " and ".join(personal_data.needles(email, name))
    if not yes and not typer.confirm(f"Erase {who} everywhere? This cannot be undone"):
        raise fail("nothing erased", 1)
    actor = principal()
    with domain_errors(usage=True):
        counts = run_async(Settings(), lambda conn: personal_data.erase(conn, actor, email, name))
    table = Table("where", "rows")
    for where, n in counts.items():
        if n:
            table.add_row(where, f"{n:,}")
    console.print(table if any(counts.values()) else "nothing held about them")


def purge_command() -> None:
    """Delete what is past its retention period (raw upload files, row errors, premises points) now."""
    from geo.access.personal_data import Retention, purge

    settings = Settings()
    retention = Retention.from_settings(settings.retention)
    with database.connect(database_url(settings)) as conn:
        counts = purge(conn, retention, principal())
    if counts is None:
        raise fail("another process is purging right now; try again in a minute")
    table = Table("deleted", "count")
    for what, n in counts.items():
        table.add_row(what.replace("_", " "), f"{n:,}")
    console.print(table)
