"""``connectivity``: the command line, a thin front over the same ``geo`` functions as the API.

This module only assembles the commands: each group lives in its own module over :mod:`cli.common`.
"""

from __future__ import annotations

import gc

import typer

from cli.audit import audit_command
from cli.coverage import coverage
from cli.db import db_app
from cli.demo import demo_app
from cli.exports import export_app
from cli.gdpr import gdpr_app, purge_command
from cli.keys import keys_app
from cli.pipeline import pipeline_app
from cli.serve import serve
from cli.uploads import import_file
from cli.wayleaves import wayleaves_app

app = typer.Typer(
    help="Connectivity planning for London: assets, wayleaves, map layers, coverage.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(keys_app, name="keys")
app.add_typer(wayleaves_app, name="wayleaves")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(gdpr_app, name="gdpr")
app.add_typer(export_app, name="export")


app.command("import")(import_file)
app.command("serve")(serve)
app.command("coverage")(coverage)
app.command("purge")(purge_command)
app.command("audit")(audit_command)


def main() -> None:
    """The console entry point: the app, without the garbage collection of interpreter shutdown.

    The operating system frees the process's memory at exit anyway; freezing the objects first
    spares the last collections over pandas, Arrow and GDAL's modules (0.3-0.5 s per command).
    """
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
