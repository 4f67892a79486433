"""``connectivity pipeline``: import LocalGov Digital Pipeline projects and list the unplaced ones.

A thin front over :mod:`geo.projects`. The CLI acts as the GLA team (its one admin principal): it
runs where the database is, so it sees owner names and emails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.common import console, fail, prepare_database, principal, progress_bar, run_async
from geo import projects
from geo.core import jobs
from geo.core.row_errors import ERROR_COLUMNS
from geo.core.settings import Settings
from geo.db import database

pipeline_app = typer.Typer(
    help="LocalGov Digital Pipeline projects: import, unplaced list.", no_args_is_help=True
)


@pipeline_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Pipeline's JSON (api/project) or PipelineReports.csv")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; write nothing")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some have errors")
    ] = False,
) -> None:
    """Import Pipeline projects in one transaction (exit 1 when rejected or failed)."""
    if not file.is_file():
        raise fail(f"{file}: no such file", 2)
    settings = Settings()
    url = prepare_database(settings, demo=False, quiet=True)
    with database.connect(url, autocommit=True) as conn:
        with jobs.beating(url, settings.jobs.heartbeat_s), progress_bar(f"pipeline {file.name}") as report:
            record = projects.import_pipeline(
                conn, file.read_bytes(), file.name, principal(), dry_run=dry_run, skip_invalid=skip_invalid,
                progress=report,
            )  # fmt: skip
        errors = projects.import_errors_sync(conn, record["id"])
    console.print(_summary(record))
    if errors:
        table = Table(*ERROR_COLUMNS, title=f"{len(errors)} row error(s)")
        for e in errors[:50]:
            table.add_row(*(str(e[k]) if e[k] is not None else "" for k in ERROR_COLUMNS))
        console.print(table)
    if record["state"] not in ("applied", "previewed"):
        raise fail(record["message"] or record["state"])


def _summary(record: dict[str, Any]) -> Table:
    table = Table(
        title=f"pipeline import {record['id']}: {record['file_name']} ({record['format']}) -> {record['state']}",
        show_header=False,
    )
    for key in ("rows", "valid", "invalid", "new", "changed", "unchanged", "unplaced", "errors"):
        if key in record["counts"]:
            table.add_row(key, f"{record['counts'][key]:,}")
    return table


@pipeline_app.command("unplaced")
def unplaced_command() -> None:
    """List the projects the gazetteer could not place, with the reason (exit 0 even when some are)."""
    rows = run_async(Settings(), lambda conn: projects.unplaced(conn, principal()))
    table = Table(
        "id", "pipeline id", "title", "organisation", "reason", title=f"{len(rows)} unplaced project(s)"
    )
    for r in rows:
        table.add_row(
            str(r["id"]), str(r["pipeline_id"] or ""), r["title"], r["organisation"], r["unplaced_reason"]
        )
    console.print(table)
