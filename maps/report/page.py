"""report.html assembled: one document that holds everything it shows and runs.

:func:`render_report` builds it from a report's record and results (plain values: testable
without a database); :func:`report_page` reads those for a request, after checking access.
The API serves the same text as ``GET /coverage/reports/{id}/report.html`` and the CLI writes
it with ``connectivity coverage --out report.html``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection

from geo import coverage
from geo.coverage.results import context_boroughs, gap_places
from maps.report import inline, lists, sections
from maps.report.format import e
from maps.report.mapdata import MAP_GAPS, map_data, map_json

#: Gap outlines for the map: coordinates to 5 decimals of a degree (about a metre), unsimplified.
MAP_DIGITS = 5


def _document(title: str, body: str, data: str) -> str:
    """The page around ``body``: inlined styles and scripts under the page's own policy."""
    scripts = [inline.leaflet_js(), inline.report_js()]
    return (
        '<!DOCTYPE html>\n<html lang="en-GB">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{e(inline.meta_policy(scripts))}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{e(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>\n{inline.leaflet_css()}\n</style>\n<style>\n{inline.report_css()}\n</style>\n"
        f"</head>\n<body>\n{body}\n"
        f'<script type="application/json" id="report-data">{data}</script>\n'
        + "".join(f"<script>{code}</script>\n" for code in scripts)
        + "</body>\n</html>\n"
    )


def render_report(
    record: Mapping[str, Any],
    area: Mapping[str, Any] | None,
    gaps: Sequence[Mapping[str, Any]],
    priorities: Sequence[Mapping[str, Any]],
    *,
    borough_names: Mapping[str, str] | None = None,
    boroughs: Sequence[Mapping[str, Any]] = (),
    gap_places: Mapping[int, Mapping[str, Any]] | None = None,
) -> str:
    """The report as one HTML document that loads nothing.

    Parameters
    ----------
    record
        The report (:func:`geo.coverage.results.get_report`), finished.
    area
        The area as a GeoJSON geometry in WGS84.
    gaps
        Gap features in WGS84, largest first (:func:`geo.coverage.results.gap_features`): the
        first :data:`~maps.report.mapdata.MAP_GAPS` are drawn, the largest listed.
    priorities
        The prioritised candidates with their details (:func:`geo.coverage.results.priority_rows`).
    borough_names
        GSS code -> name.
    boroughs
        The boroughs drawn around the area (:func:`geo.coverage.results.context_boroughs`).
    gap_places
        Gap id -> its nearest postcode and borough (:func:`geo.coverage.results.gap_places`).

    Returns
    -------
    str
        The page: Leaflet and the page's script and styles inlined, the map's data as JSON.
    """
    summary, params = record["summary"], record["parameters"]
    names = dict(borough_names or {})
    heading = sections.title(record, names)
    data = map_data(summary, area, gaps, priorities, boroughs)
    body = [
        f'<header><h1>{e(heading)}</h1><p class="meta lead">How far the area\'s households are from the '
        "assets that could serve them with full fibre, where the gaps are and which assets to open up "
        "first.</p></header><main>",
        sections.headline(record),
        sections.whole_area(record),
        sections.chart(summary),
        sections.by_borough(summary, names),
        lists.map_figure(summary, len(data["gaps"]), len(data["priorities"])),
        lists.priority_list(params, priorities, summary.get("priorities")),
        lists.gap_list(summary, gaps, gap_places or {}, names),
        lists.project_list(summary),
        sections.asked(record, names),
        lists.method(record),
        "</main>",
    ]
    return _document(heading, "\n".join(b for b in body if b), map_json(data))


async def report_page(conn: AsyncConnection[Any], report_id: int, principal: Any, *, prefix: str = "") -> str:
    """The report page for a request: checks access and state, reads the results, renders.

    ``prefix`` (where the app is mounted) is not needed any more: the page links to nothing.
    """
    record = await coverage.finished_report(conn, report_id, principal)
    area = await coverage.area_feature(conn, report_id)
    gaps = await coverage.gap_features(conn, report_id, MAP_GAPS, digits=MAP_DIGITS)
    priorities = await coverage.priority_rows(conn, report_id)
    boroughs = await context_boroughs(conn, report_id)
    places = await gap_places(conn, report_id, lists.TOP_GAPS)
    cur = await conn.execute("SELECT code, name FROM boroughs")
    names = dict(await cur.fetchall())
    return render_report(
        record, area, gaps, priorities, borough_names=names, boroughs=boroughs, gap_places=places
    )
