"""``connectivity coverage``: a coverage report from the command line, the same code as the API.

The report is stored like one requested through the API (by the CLI, as an admin), so
``GET /coverage/reports/{id}`` serves it too.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.table import Table

from cli.common import console, err, fail, prepare_database, principal, progress_bar
from geo.core import jobs
from geo.core.csv_out import write_csv
from geo.core.settings import Settings

FORMATS = ("html", "json", "csv")


def _area(borough: list[str], bbox: str | None, area_file: Path | None) -> dict[str, Any]:
    given = [bool(borough), bbox is not None, area_file is not None]
    if sum(given) != 1:
        raise typer.BadParameter("give one of --borough (repeatable), --bbox or --area-file")
    if borough:
        return {"boroughs": borough}
    if bbox is not None:
        try:
            return {"bbox": [float(v) for v in bbox.split(",")]}
        except ValueError as exc:
            raise typer.BadParameter(f"--bbox {bbox!r}: give minx,miny,maxx,maxy") from exc
    assert area_file is not None
    data = json.loads(area_file.read_text())
    if data.get("type") == "FeatureCollection":
        features = data.get("features") or []
        if len(features) != 1:
            raise typer.BadParameter(
                f"--area-file {area_file}: needs exactly one feature, not {len(features)}"
            )
        data = features[0]
    return data  # type: ignore[no-any-return]


def _summary_table(record: dict[str, Any]) -> Table:
    table = Table(
        "within", "households covered", "share", "area share", title=f"coverage report {record['id']}"
    )
    for r in record["summary"]["whole_area"]:
        table.add_row(
            f"{r['threshold_m']:g} m",
            f"{r['covered_households']:,.0f} of {r['households']:,.0f}",
            "–" if r["household_share"] is None else f"{100 * r['household_share']:.1f}%",
            "–" if r["area_share"] is None else f"{100 * r['area_share']:.1f}%",
        )
    return table


async def _outputs(url: str, report_id: int, fmt: str) -> tuple[dict[str, Any], str]:
    from geo.coverage import DEMAND_COLUMNS, demand_rows, get_report
    from maps.coverage_report import report_page

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        record = await get_report(conn, report_id, principal())
        if record["state"] != "done":
            return record, ""
        if fmt == "html":
            return record, await report_page(conn, report_id, principal())
        if fmt == "json":
            return record, json.dumps(record, default=str, indent=2)
        rows = await demand_rows(conn, report_id)
    return record, write_csv(DEMAND_COLUMNS, rows)


def coverage(
    borough: Annotated[list[str], typer.Option("--borough", help="GSS code of a borough (repeatable).")] = [],  # noqa: B006
    bbox: Annotated[str | None, typer.Option(help="minx,miny,maxx,maxy in WGS84 or EPSG:27700.")] = None,
    area_file: Annotated[
        Path | None, typer.Option(help="GeoJSON Polygon/MultiPolygon (or one Feature).")
    ] = None,
    radius: Annotated[
        list[float], typer.Option("--radius", help="Coverage distance in metres (repeatable).")
    ] = [],  # noqa: B006
    grid: Annotated[
        float | None, typer.Option(help="Use a grid of this cell size (50, 100, 250) as demand.")
    ] = None,
    premises: Annotated[
        Path | None, typer.Option(help="GeoJSON FeatureCollection of premises points as demand.")
    ] = None,
    kind: Annotated[list[str], typer.Option("--kind", help="Asset kind that counts (repeatable).")] = [],  # noqa: B006
    status: Annotated[
        list[str], typer.Option("--status", help="Asset status that counts (repeatable).")
    ] = [],  # noqa: B006
    ready_now: Annotated[
        bool, typer.Option(help="Only assets with a signed or live wayleave count.")
    ] = False,
    k: Annotated[int, typer.Option(help="Candidate assets to prioritise.")] = 10,
    priority_radius: Annotated[float, typer.Option(help="Reach of a candidate asset in metres.")] = 100.0,
    out: Annotated[Path, typer.Option(help="Where to write the report.")] = Path("report.html"),
    format: Annotated[
        str, typer.Option("--format", help="html (report.html), json (summary) or csv (demand).")
    ] = "html",  # noqa: A002
) -> None:
    """Compute a coverage report for an area, print its summary and write it to --out."""
    # Imported when used: scipy and geopandas would add a second to every CLI start.
    from geo.coverage import (
        InvalidCoverageRequest,
        WayleavesUnavailable,
        open_report,
        parse_request,
        run_report,
    )

    if format not in FORMATS:
        raise typer.BadParameter(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    body: dict[str, Any] = {"area": _area(borough, bbox, area_file), "k": k, "radius": priority_radius}
    if radius:
        body["thresholds"] = radius
    if grid is not None:
        body.update(demand="grid", cell_size=grid)
    if premises is not None:
        body.update(demand="premises", premises=json.loads(premises.read_text()))
    if kind:
        body["kinds"] = kind
    if status:
        body["statuses"] = status
    if ready_now:
        body["ready_now"] = True
    settings = Settings()
    try:
        request = parse_request(body, settings.coverage)
    except InvalidCoverageRequest as exc:
        raise typer.BadParameter(str(exc)) from exc
    url = prepare_database(settings, demo=False, quiet=True)
    try:
        report_id = open_report(url, request, principal())
        with jobs.beating(url, settings.jobs.heartbeat_s), progress_bar("coverage report") as report:
            run_report(
                url, report_id, request, report, spacing=settings.coverage.spacing_m, raise_errors=False
            )
    except WayleavesUnavailable as exc:
        raise fail(str(exc)) from exc
    record, text = asyncio.run(_outputs(url, report_id, format))
    if record["state"] != "done":
        raise fail(f"coverage report {report_id} failed: {record['message']}")
    console.print(_summary_table(record))
    out.write_text(text)
    err.print(f"report {report_id} written to {out} (timings {record['timings']})", highlight=False)
