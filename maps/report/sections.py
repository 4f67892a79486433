"""The first half of the report: what was asked, the headline figures, the whole area, the boroughs.

Every figure is in a sentence or a table with its unit; nothing of the stored JSON is printed
as it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from geo import coverage
from maps.report.charts import borough_bars, coverage_chart
from maps.report.format import count, definitions, e, km2, label, metres, num, pct, table, words

#: More boroughs than this are counted, not named, in the title.
NAMED_BOROUGHS = 3


def area_words(params: Mapping[str, Any], names: Mapping[str, str], *, short: bool = False) -> str:
    """The report's area in words: its boroughs, its box or "a drawn area"."""
    area = params["area"]
    if "boroughs" in area:
        codes = area["boroughs"]
        if len(set(codes)) == 33:
            return "all 33 London boroughs"
        if short and len(codes) > NAMED_BOROUGHS:
            return f"{len(codes)} London boroughs"
        return words(sorted(names.get(c, c) for c in codes))
    if "bbox" in area:
        x0, y0, x1, y1 = area["bbox"]
        if area.get("crs") == "EPSG:27700":
            return f"the box {x0:,.0f}–{x1:,.0f} E, {y0:,.0f}–{y1:,.0f} N (British National Grid)"
        return f"the box {x0:g}° to {x1:g}° longitude, {y0:g}° to {y1:g}° latitude (WGS84)"
    return "a drawn area"


def title(record: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """The report's title: its number and area."""
    return f"Coverage report {record['id']}: {area_words(record['parameters'], names, short=True)}"


def _threshold_row(rows: Sequence[Mapping[str, Any]], threshold: float) -> Mapping[str, Any] | None:
    return next((r for r in rows if r["threshold_m"] == threshold), None)


def headline(record: Mapping[str, Any]) -> str:
    """Three figures to read first: households covered, area covered, gaps (at the gap distance)."""
    summary = record["summary"]
    gap = summary["gaps"]
    row = _threshold_row(summary["whole_area"], gap["threshold_m"]) or summary["whole_area"][-1]
    within = metres(row["threshold_m"])
    return (
        '<ul class="key-figures">'
        f"<li><strong>{pct(row['household_share'])}</strong> of households within {within} of a "
        f"qualifying asset ({num(row['covered_households'])} of {num(row['households'])})</li>"
        f"<li><strong>{pct(row['area_share'])}</strong> of the area within {within} "
        f"({km2(row['covered_area_m2'])} of {km2(row['area_m2'])})</li>"
        f"<li><strong>{num(gap['count'])}</strong> {'gap' if gap['count'] == 1 else 'gaps'} beyond "
        f"{metres(gap['threshold_m'])}, holding {num(gap['households'])} households over "
        f"{km2(gap['area_m2'])}</li></ul>"
    )


def whole_area(record: Mapping[str, Any]) -> str:
    """Coverage of the whole area at each threshold, in a table, with the distances in a sentence."""
    summary = record["summary"]
    first = summary["whole_area"][0] if summary["whole_area"] else {}
    rows = [
        [
            f"within {metres(r['threshold_m'])}",
            num(r["covered_households"]),
            pct(r["household_share"]),
            num(r["covered_points"]),
            km2(r["covered_area_m2"]),
            pct(r["area_share"]),
        ]
        for r in summary["whole_area"]
    ]
    mean = summary.get("mean_distance_m")
    beyond = summary["beyond_reach_points"]
    caption = (
        f"Of {num(first.get('households'))} households, {count(first.get('demand_points') or 0, 'demand point')} "
        f"and {km2(first.get('area_m2'))}"
    )
    return (
        '<h2 id="whole-area">Coverage of the whole area</h2>'
        + table(
            [
                "Distance to a qualifying asset",
                "Households covered",
                "Share of households",
                "Demand points covered",
                "Area covered",
                "Share of area",
            ],
            rows,
            numeric=(1, 2, 3, 4, 5),
            caption=caption,
        )  # fmt: skip
        + f'<p class="note">The mean distance from a demand point to its nearest qualifying asset is '
        f"{metres(mean)}. {count(beyond, 'demand point')} {'has' if beyond == 1 else 'have'} no "
        f"qualifying asset within {metres(summary['reach_m'])} (the furthest distance measured).</p>"
    )


def _filters(params: Mapping[str, Any], names: Mapping[str, str]) -> str:
    parts = [
        f"kinds {words([label(k) for k in params['kinds']])}",
        f"statuses {words([label(s) for s in params['statuses']])}",
    ]
    if params.get("subtypes"):
        parts.append(f"subtypes {words([label(s) for s in params['subtypes']])}")
    if params.get("asset_boroughs"):
        parts.append(f"assets of {words([names.get(c, c) for c in params['asset_boroughs']])}")
    if params.get("ready_now"):
        parts.append("only assets with a signed or live wayleave")
    return "; ".join(parts)


def asked(record: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """What the report measured: area, demand, assets, distances, data versions, when and by whom."""
    params, summary = record["parameters"], record["summary"]
    version = record.get("data_version") or {}
    demand = {"postcodes": "postcode centroids weighted by households", "grid": "grid cells",
              "premises": "premises points sent with the request"}.get(params["demand"], params["demand"])  # fmt: skip
    finished = record.get("finished_at")
    if isinstance(finished, dt.datetime):
        finished = finished.astimezone(dt.UTC) if finished.tzinfo else finished
        when = f"{finished.day} {finished:%B %Y at %H:%M} UTC"
    else:
        when = str(finished or "")[:16]
    pairs = [
        ("Area", e(area_words(params, names))),
        ("Demand", f"{e(demand)} ({e(version.get('demand', ''))}): {count(summary['demand_points'], 'point')}, "
                   f"{num(summary['households'])} households"),
        ("Grid", f"{count(summary['cells'], 'cell')} of {metres(params['cell_size'])} × "
                 f"{metres(params['cell_size'])} ({km2(summary.get('area_m2'))})"),
        ("Qualifying assets", e(_filters(params, names))),
        ("Distances", f"{words([metres(t) for t in summary['thresholds']])}; gaps beyond "
                      f"{metres(params['gap_threshold'])}; a candidate serves {metres(params['radius'])}"),
        ("Data", f"assets version {e(version.get('assets'))}, boroughs version {e(version.get('boroughs'))}, "
                 f"Pipeline version {e(version.get('pipeline'))}"),
        ("Computed", f"{e(when)} for {e(record.get('created_by'))}"),
    ]  # fmt: skip
    return '<h2 id="asked">What was measured</h2>' + definitions(pairs) + assets_read(summary["assets"])


def assets_read(counts: Mapping[str, int]) -> str:
    """The assets read, by kind of geometry: qualifying (they serve) and candidates (they could)."""
    rows = [
        ["Points (street furniture, public buildings)", num(counts.get("qualifying_points", 0)),
         num(counts.get("candidate_points", 0))],
        ["Lines (ducts)", num(counts.get("qualifying_lines", 0)), num(counts.get("candidate_lines", 0))],
        ["All", num(counts.get("qualifying_points", 0) + counts.get("qualifying_lines", 0)),
         num(counts.get("candidate_points", 0) + counts.get("candidate_lines", 0))],
    ]  # fmt: skip
    return table(
        ["Assets read (in and around the area)", "Qualifying: they serve", "Candidates: not in use yet"],
        rows, numeric=(1, 2), css="compact",
    ) + (
        '<p class="note">Candidates are assets that do not qualify now and are not gone for good '
        "(removed, decommissioned or abandoned): the ones the priorities choose from.</p>"
    )  # fmt: skip


def chart(summary: Mapping[str, Any]) -> str:
    """The coverage curve: share covered against distance."""
    return (
        '<h2 id="curve">Covered share against distance</h2><figure>'
        + coverage_chart(summary["profile"], summary["thresholds"])
        + '<figcaption class="note">Share of the households and of the area within each distance of '
        "a qualifying asset; the dashed lines are the report's distances.</figcaption></figure>"
    )


def by_borough(summary: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """Each borough's share covered: bars at the middle distance and a table at every distance."""
    rows = [r for r in summary["boroughs"] if r["borough_code"] != coverage.OUTSIDE]
    if not rows:
        return ""
    thresholds = summary["thresholds"]
    middle = thresholds[len(thresholds) // 2]
    codes = sorted({r["borough_code"] for r in rows}, key=lambda c: names.get(c, c))
    at = {(r["borough_code"], r["threshold_m"]): r for r in rows}
    body = []
    for code in codes:
        first = at.get((code, thresholds[0])) or {}
        cells = [e(names.get(code, code)), num(first.get("households"))]
        cells += [pct((at.get((code, t)) or {}).get("household_share")) for t in thresholds]
        cells.append(pct((at.get((code, middle)) or {}).get("area_share")))
        body.append(cells)
    header = ["Borough", "Households"] + [f"Households within {metres(t)}" for t in thresholds]
    header.append(f"Area within {metres(middle)}")
    return (
        '<h2 id="boroughs">By borough</h2>'
        + (
            f"<h3>Households within {metres(middle)}, least covered first</h3>"
            + borough_bars(rows, middle, names)
            if len(codes) > 1
            else ""
        )
        + table(header, body, numeric=range(1, len(header)))
    )
