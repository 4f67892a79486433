"""``connectivity wayleaves``: the wayleave commands, a thin front over :mod:`geo.wayleaves`.

The CLI acts as the GLA team (an admin principal): it runs where the database is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.common import principal
from geo import access, wayleaves
from geo.core.row_errors import errors_csv
from geo.core.settings import Settings, WayleaveSettings

wayleaves_app = typer.Typer(
    help="Wayleaves: list, create, edit, change status, history, KPIs, bulk updates.", no_args_is_help=True
)


def _run(work: Callable[[Any, WayleaveSettings], Awaitable[Any]]) -> Any:
    """Run ``work(conn, wayleave settings)``, domain errors turned into exits."""
    from cli.common import domain_errors, run_async

    settings = Settings()
    with domain_errors():
        return run_async(settings, lambda conn: work(conn, settings.wayleave))


def _console() -> Any:
    from cli.common import console

    return console


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "borough", "operator", "site", "status", "days", "due", "overdue", "version")
    for r in rows:
        table.add_row(
            str(r["id"]), r["borough_code"], r["operator"], r["site_name"], r["status"],
            str(r["days_in_status"]), str(r["due_on"] or ""), "yes" if r["overdue"] else "", str(r["version"]),
        )  # fmt: skip
    return table


@wayleaves_app.command("list")
def list_command(
    borough: Annotated[str | None, typer.Option(help="GSS codes, comma-separated")] = None,
    operator: Annotated[str | None, typer.Option(help="Operators, comma-separated")] = None,
    status: Annotated[str | None, typer.Option(help="Statuses, comma-separated")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--on-time", help="Only overdue or on-time")
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
) -> None:
    """List wayleaves with their clocks."""
    from cli.common import domain_errors

    with domain_errors(usage=True):
        query = wayleaves.parse_query(borough, operator, status, overdue)
    rows = _run(lambda conn, settings: wayleaves.list_wayleaves(conn, principal(), query, settings))
    if csv:
        typer.echo(wayleaves.to_csv(rows), nl=False)
    else:
        _console().print(_table(rows))


@wayleaves_app.command("show")
def show(wayleave_id: Annotated[int, typer.Argument(help="The wayleave's id")]) -> None:
    """Show one wayleave as JSON."""
    row = _run(lambda conn, settings: wayleaves.get_wayleave(conn, wayleave_id, principal(), settings))
    typer.echo(json.dumps(row, default=str, indent=2))


@wayleaves_app.command("create")
def create(
    operator: Annotated[str, typer.Option(help="The operator's name")],
    asset: Annotated[list[int] | None, typer.Option(help="Asset id of the site (repeat for a group)")] = None,
    site: Annotated[int | None, typer.Option(help="An existing site's id instead of --asset")] = None,
    site_name: Annotated[str | None, typer.Option(help="Name of the new site")] = None,
    template: Annotated[str, typer.Option(help="standardised or bespoke")] = "standardised",
    template_version: Annotated[str | None, typer.Option(help="Template version")] = None,
    status: Annotated[str, typer.Option(help="identified or requested")] = "identified",
    reference: Annotated[str | None, typer.Option(help="The borough's reference")] = None,
) -> None:
    """Create a wayleave on a site or on assets, and print its id."""
    row = _run(
        lambda conn, settings: wayleaves.create_wayleave(
            conn,
            principal(),
            operator=operator,
            template=template,
            template_version=template_version,
            site_id=site,
            asset_ids=asset,
            site_name=site_name,
            status=status,
            reference=reference,
            settings=settings,
        )  # fmt: skip
    )
    _console().print(f"wayleave {row['id']} created: {row['status']} (version {row['version']})")


@wayleaves_app.command("transition")
def transition_command(
    wayleave_id: Annotated[int, typer.Argument(help="The wayleave's id")],
    to: Annotated[str, typer.Argument(help="The new status")],
    note: Annotated[str | None, typer.Option(help="Why")] = None,
    version: Annotated[int | None, typer.Option(help="The version you read (default: current)")] = None,
    at: Annotated[str | None, typer.Option(help="Backdate the event (ISO 8601), for imports")] = None,
) -> None:
    """Change a wayleave's status (exit 1 with the allowed next statuses when the rules refuse)."""
    from cli.common import fail

    try:
        when = dt.datetime.fromisoformat(at) if at else None
    except ValueError:
        raise fail(f"--at: {at!r} is not an ISO 8601 date-time", 2) from None
    actor = principal()
    row = _run(
        lambda conn, settings: wayleaves.transition(
            conn, wayleave_id, to, actor, expected_version=version, note=note, at=when, settings=settings
        )
    )
    _console().print(f"wayleave {row['id']}: {row['status']} (version {row['version']})")


@wayleaves_app.command("edit")
def edit(
    wayleave_id: Annotated[int, typer.Argument(help="The wayleave's id")],
    notes: Annotated[str | None, typer.Option(help="Internal notes")] = None,
    contact_name: Annotated[str | None, typer.Option(help="Landlord or site contact")] = None,
    contact_email: Annotated[str | None, typer.Option(help="The contact's email")] = None,
    contact_phone: Annotated[str | None, typer.Option(help="The contact's phone")] = None,
    expires_on: Annotated[str | None, typer.Option(help="When the agreement ends (YYYY-MM-DD)")] = None,
    reference: Annotated[str | None, typer.Option(help="The borough's reference")] = None,
    operator_reference: Annotated[str | None, typer.Option(help="The operator's reference")] = None,
    template: Annotated[str | None, typer.Option(help="standardised or bespoke")] = None,
    template_version: Annotated[str | None, typer.Option(help="Template version")] = None,
    version: Annotated[int | None, typer.Option(help="The version you read (default: current)")] = None,
) -> None:
    """Edit a wayleave's details (an empty value clears one); every edit is kept (`history`).

    The status and its key dates change only with `transition`.
    """
    from cli.common import fail

    given = {
        "notes": notes, "contact_name": contact_name, "contact_email": contact_email,
        "contact_phone": contact_phone, "expires_on": expires_on, "reference": reference,
        "operator_reference": operator_reference, "template": template, "template_version": template_version,
    }  # fmt: skip
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        options = ", ".join("--" + k.replace("_", "-") for k in given)
        raise fail(f"nothing to change: give one or more of {options}", 2)

    async def work(conn: Any, settings: WayleaveSettings) -> tuple[dict[str, Any], dict[str, Any]]:
        before = await wayleaves.get_wayleave(conn, wayleave_id, principal(), settings)
        after = await wayleaves.update_wayleave(
            conn, wayleave_id, changes, principal(), expected_version=version, settings=settings
        )
        return before, after

    before, after = _run(work)
    changed = [f for f in wayleaves.EDITABLE if f in changes and before.get(f) != after.get(f)]
    if changed:
        _console().print(f"wayleave {wayleave_id} edited: {', '.join(changed)} (version {after['version']})")
    else:
        _console().print(
            f"wayleave {wayleave_id}: nothing changed, the values are the current ones (version {after['version']})"
        )


@wayleaves_app.command("history")
def history_command(wayleave_id: Annotated[int, typer.Argument(help="The wayleave's id")]) -> None:
    """The wayleave's status events, then the edits of its details, oldest first."""

    async def work(
        conn: Any, settings: WayleaveSettings
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            await wayleaves.history(conn, wayleave_id, principal()),
            await wayleaves.changes(conn, wayleave_id, principal()),
        )

    events, edits = _run(work)
    table = Table("seq", "at", "from", "to", "by", "note", title="Status")
    for e in events:
        table.add_row(
            str(e["seq"]), f"{e['at']:%Y-%m-%d %H:%M}", e["from_status"] or "", e["to_status"], e["by"],
            e["note"] or "",
        )  # fmt: skip
    _console().print(table)
    if not edits:
        return
    table = Table("version", "at", "by", "field", "old", "new", title="Edits")
    for edit in edits:
        for i, f in enumerate(edit["fields"]):
            first = i == 0
            table.add_row(
                str(edit["version"]) if first else "", f"{edit['at']:%Y-%m-%d %H:%M}" if first else "",
                edit["by"] if first else "", f["field"], escape(f["old"] or ""), escape(f["new"] or ""),
            )  # fmt: skip
    _console().print(table)


@wayleaves_app.command("kpis")
def kpis_command(csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False) -> None:
    """KPIs per borough and operator."""
    result = _run(lambda conn, settings: wayleaves.wayleave_kpis(conn, principal(), settings))
    if csv:
        typer.echo(wayleaves.kpis_csv(result), nl=False)
        return
    table = Table("scope", "key", "total", "overdue", "signed", "median days", "p90 days", "share ≤30d")
    for scope, key, groups in (
        ("all", None, [result["overall"]]),
        ("borough", "borough_code", result["by_borough"]),
        ("operator", "operator", result["by_operator"]),
    ):
        for g in groups:
            table.add_row(
                scope, g[key] if key else "", str(g["total"]), str(g["overdue"]), str(g["signed"]),
                str(g["median_days_to_sign"] or ""), str(g["p90_days_to_sign"] or ""),
                "" if g["signed_within_share"] is None else f"{g['signed_within_share']:.0%}",
            )  # fmt: skip
    _console().print(table)
    if result["stalled"]:
        _console().print(
            f"stalled: {len(result['stalled'])}, longest first: "
            + ", ".join(f"{s['id']} ({s['status']}, {s['days_in_status']} d)" for s in result["stalled"][:10])
        )


@wayleaves_app.command("bulk")
def bulk(
    file: Annotated[Path, typer.Argument(help="CSV: wayleave_id or reference, to, [version, note, at]")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only, apply nothing")] = False,
) -> None:
    """Apply status updates from a CSV, all or nothing; errors are printed as CSV and exit 1."""
    from cli.common import fail, progress_bar

    if not file.is_file():
        raise fail(f"{file}: no such file", 2)
    try:
        rows = wayleaves.read_bulk_csv(file.read_bytes())
    except wayleaves.InvalidBulkFile as exc:
        raise fail(f"{file}: {exc}", 2) from exc
    with progress_bar(f"checking {len(rows)} rows") as report:
        report("checking and applying", 0, len(rows))
        result = _run(
            lambda conn, settings: wayleaves.bulk_transition(conn, principal(), rows, dry_run=dry_run)
        )
        report("done", len(rows), len(rows))
    if result.errors:
        typer.echo(errors_csv(result.errors), nl=False)
        raise fail(f"{len(result.errors)} row errors: nothing applied")
    verb = "would apply" if dry_run else "applied"
    _console().print(f"{verb} {len(rows) if dry_run else result.applied} status changes")


@wayleaves_app.command("bind-key")
def bind_key(
    key_id: Annotated[int, typer.Argument(help="The operator key's id (see `keys list`)")],
    operator: Annotated[str, typer.Argument(help="The operator name its wayleaves carry")],
) -> None:
    """Bind an operator key to an operator, so it sees that operator's wayleaves."""
    _run(lambda conn, settings: access.bind_operator(conn, key_id, operator, actor=principal()))
    _console().print(f"key {key_id} bound to operator {operator!r}")
