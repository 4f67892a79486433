"""``connectivity demo``: the London demo data."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.common import console, domain_errors, fail, owner_url, progress_bar
from geo.core.settings import Settings
from geo.db import database
from geo.reference import model

demo_app = typer.Typer(help="The London demo data.", no_args_is_help=True)


@demo_app.command("load")
def demo_load(
    scale: Annotated[
        str,
        typer.Option(
            help="small, default (London-wide in seconds) or london (500k+ points, 5,000+ km ducts)"
        ),
    ] = "default",
) -> None:
    """Fill an empty database with London: real boroughs and bus stops, labelled synthetic assets."""
    from geo.demo import SCALES, load_demo  # pandas and numpy: loaded when used

    if scale not in SCALES:
        raise fail(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", 2)
    settings = Settings()
    with database.connect(owner_url(settings)) as conn:
        model.migrate(conn)
        with domain_errors(), progress_bar(f"demo ({scale})") as report:
            counts = load_demo(conn, scale, report, settings.tiles.raw_min_zoom)
    table = Table("kind", "assets")
    for kind, n in counts.items():
        table.add_row(kind, f"{n:,}")
    console.print(table)
