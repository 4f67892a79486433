"""``connectivity db``: the embedded PostGIS cluster and migrations."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.common import console, database_url, domain_errors, fail, owner_url
from geo.core.settings import Settings
from geo.db import database
from geo.db.cluster import EmbeddedCluster
from geo.reference import model

db_app = typer.Typer(help="The database: the embedded PostGIS cluster and migrations.", no_args_is_help=True)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS cluster (initialising it on first use) and print its URL."""
    settings = Settings()
    if settings.db.url:
        raise fail("DATABASE_URL is set: the embedded cluster is not used")
    with domain_errors():
        url = EmbeddedCluster(settings.db).start()
    typer.echo(url)  # one line whatever the terminal's width: `psql "$(connectivity db start)"`


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (its data stay in var/pg)."""
    settings = Settings()
    with domain_errors():
        stopped = EmbeddedCluster(settings.db).stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Show whether the embedded cluster is initialised and running (exit 3 when it is not running)."""
    settings = Settings()
    if settings.db.url:
        console.print("using DATABASE_URL (embedded cluster not used)")
        return
    status = EmbeddedCluster(settings.db).status()
    table = Table(show_header=False)
    table.add_row("directory", str(status.directory))
    table.add_row("postgres binaries", str(status.bin_dir or "not installed"))
    table.add_row("initialised", "yes" if status.initialised else "no")
    table.add_row("running", "yes" if status.running else "no")
    table.add_row("port", str(status.port or "-"))
    console.print(table)
    if not status.running:
        raise typer.Exit(3)


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded cluster if needed)."""
    typer.echo(database_url(Settings()))  # not rich: it would wrap a long URL at the terminal's width


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations; a second run applies nothing."""
    with database.connect(owner_url(Settings())) as conn:
        applied = model.migrate(conn)
        level = database.migration_level(conn)
    console.print(f"applied: {', '.join(applied) or 'nothing'}; migration level {level}")
