"""``connectivity export``: the stored assets in other standards' formats, the same code as the API.

``export ofds``: the Open Fibre Data Standard network (:mod:`geo.exports.ofds`), as its JSON
package or its GeoJSON publication format (``nodes.geojson`` and ``spans.geojson`` in a zip, or one
of them with ``--part``), written to a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, domain_errors, progress_bar, run_async
from geo import exports
from geo.core.settings import Settings

export_app = typer.Typer(help="Export the assets in other standards' formats (OFDS).", no_args_is_help=True)


@export_app.command("ofds")
def ofds_command(
    out: Annotated[Path, typer.Option("--out", help="The file to write (replaced if it exists).")],
    borough: Annotated[
        list[str], typer.Option("--borough", help="GSS code of a borough (repeatable); none: all of London.")
    ] = [],  # noqa: B006 - Typer's list option
    bbox: Annotated[
        str | None,
        typer.Option("--bbox", help="Only the ducts crossing minx,miny,maxx,maxy (see --bbox-crs)."),
    ] = None,
    bbox_crs: Annotated[
        str | None, typer.Option("--bbox-crs", help="CRS of --bbox: CRS84 (default) or EPSG:27700.")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="json: the OFDS network package; geojson: nodes and spans in a zip."),
    ] = "json",
    part: Annotated[
        str | None,
        typer.Option("--part", help="With --format geojson: only nodes or spans (one GeoJSON file)."),
    ] = None,
) -> None:
    """Write the ducts, and the assets and junctions their ends meet, as an Open Fibre Data Standard network."""
    if fmt not in ("json", "geojson"):
        raise typer.BadParameter(f"--format {fmt!r}: give json or geojson")
    if part not in (None, "nodes", "spans"):
        raise typer.BadParameter(f"--part {part!r}: give nodes or spans")
    settings = Settings()
    with domain_errors(usage=True):
        scope = exports.parse_scope(",".join(borough), bbox, bbox_crs)
        exports.output_file(fmt, part)  # type: ignore[arg-type]
    partial = out.with_name(out.name + ".partial")
    try:
        with domain_errors(), progress_bar(f"OFDS {out.name}") as report, open(partial, "wb") as file:
            done = run_async(
                settings,
                lambda conn: exports.export_ofds(conn, scope, settings.ofds, file, fmt, part, report),  # type: ignore[arg-type]
            )
    except BaseException:
        partial.unlink(missing_ok=True)  # never a half-written file under the name asked for
        raise
    partial.replace(out)
    console.print(
        f"{out}: {done.spans:,} spans, {done.nodes:,} nodes, {done.organisations:,} organisations"
        + (f", published {done.publication_date}" if done.publication_date else "")
    )
