"""The second half of the report: the map, the gaps, the assets to open up first, the Pipeline
projects, and how the report was computed (its timings in seconds, its sources)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maps.report.certificate import certificate_text
from maps.report.format import count, e, hectares, km2, label, metres, num, pct, share_digits, table
from maps.report.mapdata import ATTRIBUTION, MAP_GAPS

#: Gaps listed in the table (all are drawn, up to :data:`~maps.report.mapdata.MAP_GAPS`).
TOP_GAPS = 20
#: The steps of a report as :data:`geo.coverage.STEPS` names them, in words.
STEP_NAMES = {
    "area": "The area: its boroughs' outline or the shape given",
    "assets": "The assets read and indexed",
    "demand": "The demand points and grid cells",
    "nearest": "The distance from each point and cell to its nearest asset",
    "summary": "Coverage at each distance, for the area and each borough",
    "gaps": "The gaps found",
    "priorities": "The candidates prioritised",
    "pipeline": "The Pipeline projects in the area",
    "store": "The results stored",
}
PROJECT_MATCH = {"exact": "its site", "borough": "its borough", "london": "London-wide"}


def map_figure(summary: Mapping[str, Any], drawn_gaps: int, priorities: int) -> str:
    """The map's place in the page, its legend and what it shows (the script draws it)."""
    gap = metres(summary["gaps"]["threshold_m"])
    total = summary["gaps"]["count"]
    shown = (
        f"all {count(total, 'gap')}"
        if drawn_gaps >= total
        else f"the largest {num(drawn_gaps)} of {num(total)}"
    )
    legend = [
        f'<li><span class="swatch covered"></span>The area: within {gap} of a qualifying asset where not a gap</li>',
        f'<li><span class="swatch gap"></span>Gaps, more than {gap} from every qualifying asset ({shown})</li>',
    ]
    if priorities:
        legend.append(
            '<li><span class="swatch priority">1</span>Assets to open up first, numbered as in their table</li>'
        )
    if summary.get("pipeline_projects"):
        legend.append('<li><span class="swatch project"></span>Pipeline projects</li>')
    legend.append('<li><span class="swatch borough"></span>Borough boundaries</li>')
    return (
        '<section class="map-section" aria-labelledby="map-heading"><h2 id="map-heading">Map</h2><figure>'
        '<div id="report-map" class="report-map" role="region" aria-label="Map of the area, its gaps and '
        'the assets to open up first (the tables say the same)"></div>'
        f'<figcaption><ul class="legend">{"".join(legend)}</ul>'
        '<p class="note">No background map: this file loads nothing from anywhere. '
        f"{e(ATTRIBUTION)}.</p></figcaption></figure>"
        "<noscript><p>The map needs JavaScript; the tables hold every figure it shows.</p></noscript></section>"
    )


def gap_list(
    summary: Mapping[str, Any],
    gaps: Sequence[Mapping[str, Any]],
    places: Mapping[int, Mapping[str, Any]],
    names: Mapping[str, str],
) -> str:
    """The largest gaps in a table (where each is: its nearest postcode), after a sentence on all."""
    g = summary["gaps"]

    def where(gap_id: int) -> str:
        place = places.get(gap_id)
        if not place:
            return "–"
        borough = names.get(place.get("borough_code") or "", "")
        return f"{e(place['postcode'])}" + (f'<span class="sub">{e(borough)}</span>' if borough else "")

    rows = [
        [str(f["properties"]["gap_id"]), where(f["properties"]["gap_id"]), num(f["properties"]["households"]),
         hectares(f["properties"]["area_m2"]), num(f["properties"]["cells"])]
        for f in gaps[:TOP_GAPS]
    ]  # fmt: skip
    listed = f"the {min(TOP_GAPS, len(gaps))} largest" if len(gaps) > TOP_GAPS else "all of them"
    return (
        f'<h2 id="gaps">Largest gaps (beyond {metres(g["threshold_m"])})</h2>'
        f"<p>{count(g['count'], 'gap')} of grid cells more than {metres(g['threshold_m'])} from every "
        f"qualifying asset hold {num(g['households'])} households over {km2(g['area_m2'])}; "
        f"by households, {listed}:</p>"
        + (
            table(["Gap", "Around postcode", "Households", "Area", "Grid cells"], rows, numeric=(2, 3, 4))
            if rows
            else ""
        )
    )


def _postcode(p: Mapping[str, Any]) -> str:
    if not p.get("postcode"):
        return "–"
    return f'{e(p["postcode"])}<span class="sub">{metres(p.get("postcode_distance_m"))} away</span>'


def _priority_row(p: Mapping[str, Any], digits: int) -> list[str]:
    ident = p.get("name") or p.get("source_id") or f"asset {p['asset_id']}"
    also = [p["source_id"]] if p.get("name") and p.get("source_id") else []
    also.append(f"asset id {p['asset_id']}")
    subtype = str(p.get("subtype_label") or label(p.get("subtype")) or label(p.get("kind")) or "–")
    return [
        str(p["rank"]),
        f'<span class="ident">{e(ident)}</span><span class="sub">{e(", ".join(also))}</span>',
        e(subtype.split(" (")[0]),
        e(p.get("status_label") or label(p.get("status"))),
        e(p.get("borough") or p.get("borough_code") or "–"),
        _postcode(p),
        num(p["gain"]),
        num(p["cumulative"]),
        pct(p["household_share"], digits),
    ]


def priority_list(
    params: Mapping[str, Any],
    priorities: Sequence[Mapping[str, Any]],
    certificate: Mapping[str, Any] | None = None,
) -> str:
    """The candidates in the order chosen: what and where each is, the households it adds, how good that is.

    ``certificate``: the summary's ``priorities`` (the bound and the proven gap; each one's cost
    when budgeted).
    """
    radius = metres(params["radius"])
    head = f'<h2 id="priorities">Assets to open up first (each serves {radius})</h2>'
    if not priorities:
        if not params.get("k"):
            return head + "<p>No candidates were asked for (k = 0).</p>"
        return head + (
            f"<p>No candidate asset would add a household: none is within {radius} of a household "
            "that no qualifying asset already serves at that distance.</p>"
        )
    first, last = priorities[0], priorities[-1]
    share = last.get("household_share")
    total = float(last["covered_households"]) / float(share) if share else None
    before = (float(first["covered_households"]) - float(first["gain"])) / total if total else None
    digits = share_digits(before, *(p.get("household_share") for p in priorities))
    sentence = (
        f"<p>Opened up in this order, these {count(len(priorities), 'candidate asset')} would bring "
        f"{num(last['cumulative'])} more households within {radius} of an asset, from "
        f"{pct(before, digits)} to {pct(share, digits)} of the area's households. Each adds the "
        "households it is the first to reach; the numbers are those on the map.</p>"
    )
    rows = [_priority_row(p, digits) for p in priorities]
    headers = ["No.", "Asset", "Subtype", "Status now", "Borough", "Nearest postcode", "Households added",
               "Added so far", "Share covered"]  # fmt: skip
    numeric: tuple[int, ...] = (0, 6, 7, 8)
    costs = (certificate or {}).get("costs")
    if costs and len(costs) == len(rows):
        headers.append("Cost")
        numeric = (*numeric, 9)
        rows = [[*row, num(c, 2)] for row, c in zip(rows, costs, strict=True)]
    return (
        head
        + sentence
        + certificate_text(certificate, int(params.get("k") or 0))
        + table(
            headers,
            rows,
            numeric=numeric,
            css="priorities",
        )  # fmt: skip
    )


def project_list(summary: Mapping[str, Any]) -> str:
    """The Pipeline projects in the area (their site, their borough or London-wide)."""
    projects = summary.get("pipeline_projects", [])
    rows = [
        [e(p["title"]), e(p["organisation"]), e(p.get("status") or "–"), e(p.get("phase") or "–"),
         PROJECT_MATCH.get(p["match"], e(p["match"]))]
        for p in projects
    ]  # fmt: skip
    return f'<h2 id="projects">Pipeline projects in the area ({len(projects)})</h2>' + (
        table(["Project", "Organisation", "Status", "Phase", "In the area by"], rows)
        if rows
        else "<p>No LocalGov Digital Pipeline project is in the area.</p>"
    )


def method(record: Mapping[str, Any]) -> str:
    """How the report was computed: the method in two sentences, the time of each step, the sources."""
    timings = record.get("timings") or {}
    steps = [s for s in STEP_NAMES if s in timings] + [
        s for s in timings if s not in STEP_NAMES and s != "total"
    ]
    rows = [[e(STEP_NAMES.get(s, label(s))), f"{float(timings[s]):.2f} s"] for s in steps]
    if "total" in timings:
        rows.append(["<strong>All steps</strong>", f"<strong>{float(timings['total']):.2f} s</strong>"])
    return (
        '<h2 id="method">How it was computed</h2>'
        "<p>Distances are exact, to the whole of a duct rather than its vertices; a demand point or "
        "grid cell is covered at a distance when a qualifying asset lies at most that far from it. "
        "Gaps are uncovered grid cells that share an edge, merged.</p>"
        + (
            table(["Step", "Time"], rows, numeric=(1,), caption="Time taken, in seconds", css="compact")
            if rows
            else ""
        )
        + f'<p class="note">Sources: {e(ATTRIBUTION)}; households: ONS 2011 Census, Open Government '
        "Licence. Assets: the boroughs' uploads (the demo's are synthetic).</p>"
    )


__all__ = ["MAP_GAPS", "TOP_GAPS", "gap_list", "map_figure", "method", "priority_list", "project_list"]
