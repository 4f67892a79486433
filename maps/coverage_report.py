"""``report.html``: a coverage report a person reads and prints.

A folium map (area, gaps, the assets that serve the area and the prioritised candidates), a
chart of the covered share against distance and per-borough bars (inline SVG and HTML, no
chart library), and the tables. Every script and stylesheet is served by the app
(:func:`maps.static_files.render_page`); nothing comes from a CDN.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import folium
import folium.plugins
from branca.element import Element, Figure
from psycopg import AsyncConnection

from geo import coverage
from maps.static_files import check_static_files, render_page

#: Above this many serving assets the map draws the asset vector tiles instead of GeoJSON.
MAX_INLINE_ASSETS = 3000
TOP_GAPS = 20
MAP_GAPS = 500
LONDON_CENTRE = (51.4893, -0.0880)
ASSET_TILES = (("street_furniture", "#0077b6"), ("ducts", "#e76f51"), ("public_buildings", "#7b2cbf"))

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; max-width: 1000px; padding: 1em 2em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.meta { color: #555; } .note { color: #666; font-size: .9em; }
.bars .row { display: flex; align-items: center; gap: .5em; margin: 2px 0; }
.bars .name { width: 12em; } .bars .track { flex: 1; background: #eee; height: 12px; position: relative; }
.bars .fill { background: #2a9d8f; height: 100%; } .bars .value { width: 4em; text-align: right; }
.folium-map { height: 520px !important; position: relative !important; border: 1px solid #ccc; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  .folium-map { height: 420px !important; page-break-inside: avoid; }
  .leaflet-control-container { display: none; }
  h2 { page-break-after: avoid; } table, .bars, svg { page-break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _num(value: Any, digits: int = 0) -> str:
    return "–" if value is None else f"{float(value):,.{digits}f}"


def coverage_chart(
    profile: Mapping[str, Sequence[Sequence[float | None]]], thresholds: Sequence[float]
) -> str:
    """An inline SVG line chart of the covered share (households, area) against distance.

    Parameters
    ----------
    profile : mapping
        ``{"households": [[d, share], ...], "area": [...]}`` from the report summary.
    thresholds : sequence of float
        Drawn as dashed vertical lines.

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    width, height, left, bottom, top, right = 640, 300, 50, 40, 15, 120
    series = {
        name: [(float(p[0]), float(p[1])) for p in points if p[0] is not None and p[1] is not None]
        for name, points in profile.items()
    }
    reach = max((p[0] for pts in series.values() for p in pts), default=1.0) or 1.0

    def sx(d: float) -> float:
        return left + (width - left - right) * d / reach

    def sy(s: float) -> float:
        return height - bottom - (height - bottom - top) * s

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="Covered share against distance">'
    ]
    for s in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(s):.1f}" y2="{sy(s):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{sy(s) + 4:.1f}" text-anchor="end" font-size="11">{int(s * 100)}%</text>'
        )
    for t in thresholds:
        parts.append(
            f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{sy(0):.1f}" y2="{sy(1):.1f}" stroke="#999" '
            f'stroke-dasharray="4 3"/><text x="{sx(t):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'font-size="11">{t:g} m</text>'
        )
    colours = {"households": "#2a9d8f", "area": "#e76f51"}
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(d):.1f},{sy(s):.1f}" for j, (d, s) in enumerate(pts))
        colour = colours.get(name, "#264653")
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(
            f'<rect x="{width - right + 12}" y="{top + 18 * i}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{width - right + 30}" y="{top + 18 * i + 5}" font-size="11">{_e(name)}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11">'
        "distance to the nearest qualifying asset</text></svg>"
    )
    return "".join(parts)


def borough_bars(rows: Sequence[Mapping[str, Any]], threshold: float, names: Mapping[str, str]) -> str:
    """HTML/CSS bars of the household share covered at ``threshold``, one per borough."""
    lines = ['<div class="bars">']
    for row in rows:
        if row["threshold_m"] != threshold:
            continue
        share = row.get("household_share")
        if share is None:
            share = row.get("area_share")
        width = 0 if share is None else max(0.0, min(1.0, float(share))) * 100
        name = names.get(row["borough_code"], row["borough_code"])
        lines.append(
            f'<div class="row"><span class="name">{_e(name)}</span><span class="track">'
            f'<span class="fill" style="display:block;width:{width:.1f}%"></span></span>'
            f'<span class="value">{_pct(share)}</span></div>'
        )
    lines.append("</div>")
    return "".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return _table(
        [
            "Within",
            "Households covered",
            "Share",
            "Demand points covered",
            "Area covered (km²)",
            "Area share",
        ],
        [
            [
                f"{r['threshold_m']:g} m",
                f"{_num(r['covered_households'])} of {_num(r['households'])}",
                _pct(r["household_share"]),
                f"{_num(r['covered_points'])} of {_num(r['demand_points'])}",
                _num(None if r["covered_area_m2"] is None else r["covered_area_m2"] / 1e6, 2),
                _pct(r["area_share"]),
            ]
            for r in rows
        ],
    )


def render_report(
    record: Mapping[str, Any],
    area: Mapping[str, Any] | None,
    gaps: Sequence[Mapping[str, Any]],
    priorities: Sequence[Mapping[str, Any]],
    assets: Mapping[str, Any] | None,
    *,
    borough_names: Mapping[str, str] | None = None,
    prefix: str = "",
) -> str:
    """The report page as HTML.

    Parameters
    ----------
    record
        The report (:func:`geo.coverage.results.get_report`), finished.
    area
        The area as a GeoJSON geometry in WGS84.
    gaps
        Gap features in WGS84, largest first (the first :data:`MAP_GAPS` are drawn).
    priorities
        The prioritised candidates (:func:`geo.coverage.results.priority_rows`).
    assets
        The serving assets as a FeatureCollection, or None to draw the asset vector tiles.
    borough_names
        GSS code -> name, for the per-borough rows.
    prefix
        Path the app is mounted under, put before every ``/static`` and ``/tiles`` URL.
    """
    summary = record["summary"]
    params = record["parameters"]
    names = dict(borough_names or {})
    thresholds = summary["thresholds"]
    title = f"Coverage report {record['id']}"

    figure = Figure(title=title)
    figure.header.add_child(Element(f"<style>{CSS}</style>"), name="report_css")
    figure.header.add_child(Element('<meta name="robots" content="noindex">'), name="robots")
    figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    fmap = folium.Map(
        location=LONDON_CENTRE, zoom_start=12, tiles=None, control_scale=True, prefer_canvas=True
    )

    area_desc = params["area"]
    if "boroughs" in area_desc:
        where = ", ".join(names.get(c, c) for c in area_desc["boroughs"])
    elif "bbox" in area_desc:
        where = f"box {', '.join(f'{v:g}' for v in area_desc['bbox'])} ({area_desc['crs']})"
    else:
        where = f"a drawn polygon ({area_desc['crs']})"
    filters = [f"kinds {', '.join(params['kinds'])}", f"statuses {', '.join(params['statuses'])}"]
    if params.get("subtypes"):
        filters.append(f"subtypes {', '.join(params['subtypes'])}")
    if params.get("asset_boroughs"):
        filters.append(f"assets of {', '.join(params['asset_boroughs'])}")
    if params.get("ready_now"):
        filters.append("only assets with a signed or live wayleave")
    version = record.get("data_version") or {}
    top = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Area: {_e(where)}. Demand: {_e(version.get("demand", params["demand"]))}. '
        f"Qualifying assets: {_e('; '.join(filters))}. Asset data version {_e(version.get('assets'))}. "
        f"Computed {_e(str(record.get('finished_at') or '')[:19])} by {_e(record.get('created_by'))}.</p>",
        "<h2>Coverage of the whole area</h2>",
        _summary_table(summary["whole_area"]),
        f'<p class="note">{summary["demand_points"]:,} demand points, {summary["cells"]:,} grid cells of '
        f"{params['cell_size']:g} m. Mean distance {_num(summary.get('mean_distance_m'), 1)} m; "
        f"{summary['beyond_reach_points']:,} demand points have no qualifying asset within "
        f"{summary['reach_m']:g} m. Assets: {_e(summary['assets'])}.</p>",
        "<h2>Covered share against distance</h2>",
        coverage_chart(summary["profile"], thresholds),
    ]
    boroughs = [r for r in summary["boroughs"] if r["borough_code"] != coverage.OUTSIDE]
    if boroughs:
        middle = thresholds[len(thresholds) // 2]
        top += [
            f"<h2>Households covered within {middle:g} m, by borough</h2>",
            borough_bars(boroughs, middle, names),
        ]
    top.append("<h2>Map</h2>")
    for i, part in enumerate(top):
        figure.html.add_child(Element(part), name=f"top_{i}")
    # Reserve the map's place: folium adds its div under the map's name when rendering.
    figure.html.add_child(Element(""), name=fmap.get_name())
    fmap.add_to(figure)

    bounds = None
    if area:
        layer = folium.GeoJson(
            {"type": "Feature", "geometry": area, "properties": {}},
            name="Area",
            style_function=lambda _: {"color": "#264653", "weight": 2, "fill": False},
        ).add_to(fmap)
        bounds = layer.get_bounds()
    if gaps:
        folium.GeoJson(
            {"type": "FeatureCollection", "features": list(gaps[:MAP_GAPS])},
            name=f"Gaps beyond {summary['gaps']['threshold_m']:g} m",
            style_function=lambda _: {"color": "#e63946", "weight": 1, "fillOpacity": 0.35},
            tooltip=folium.GeoJsonTooltip(fields=["gap_id", "households", "area_m2"]),
        ).add_to(fmap)
    if assets is not None:
        folium.GeoJson(
            dict(assets),
            name=f"Serving assets ({len(assets['features']):,})",
            marker=folium.CircleMarker(radius=3, weight=1, fill=True, fill_opacity=0.8),
            style_function=lambda _: {"color": "#0077b6", "fillColor": "#0077b6", "weight": 2},
        ).add_to(fmap)
    else:
        for collection, colour in ASSET_TILES:
            style = {"color": colour, "fillColor": colour, "weight": 1, "radius": 2, "fill": True}
            options = f"{{vectorTileLayerStyles: {{{json.dumps(collection)}: {json.dumps(style)}}}}}"
            folium.plugins.VectorGridProtobuf(
                f"{prefix}/tiles/{collection}/{{z}}/{{x}}/{{y}}.mvt",
                name=collection.replace("_", " "),
                options=options,
            ).add_to(fmap)
    for p in priorities:
        if p.get("lat") is None:
            continue
        folium.CircleMarker(
            (p["lat"], p["lon"]),
            radius=7,
            color="#ffb703",
            fill=True,
            fill_opacity=0.9,
            tooltip=_e(f"#{p['rank']}: asset {p['asset_id']} (+{p['gain']:,.0f} households)"),
        ).add_to(fmap)
    projects = [p for p in summary.get("pipeline_projects", []) if p.get("geometry")]
    if projects:
        folium.GeoJson(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": p["geometry"],
                        # Escaped here: folium's tooltip sets its values as HTML (innerHTML).
                        "properties": {
                            "title": _e(p["title"]),
                            "organisation": _e(p["organisation"]),
                            "status": _e(p["status"] or ""),
                        },
                    }
                    for p in projects
                ],
            },
            name=f"Pipeline projects ({len(projects)})",
            marker=folium.CircleMarker(radius=6, weight=2, fill=True, fill_opacity=0.9),
            style_function=lambda _: {"color": "#d00070", "fillColor": "#f08cc0"},
            tooltip=folium.GeoJsonTooltip(fields=["title", "organisation", "status"]),
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    if bounds:
        fmap.fit_bounds(bounds)  # type: ignore[arg-type]  # folium types bounds as optional floats

    gap_rows = [
        [str(g["properties"]["gap_id"]), _num(g["properties"]["households"]), _num(g["properties"]["area_m2"] / 1e4, 1),
         str(g["properties"]["cells"])]
        for g in gaps[:TOP_GAPS]
    ]  # fmt: skip
    bottom = [
        f"<h2>Largest gaps (beyond {summary['gaps']['threshold_m']:g} m)</h2>",
        f'<p class="note">{summary["gaps"]["count"]:,} gaps holding {_num(summary["gaps"]["households"])} '
        f"households over {_num(summary['gaps']['area_m2'] / 1e6, 2)} km².</p>",
        _table(["Gap", "Households", "Area (ha)", "Cells"], gap_rows),
        f"<h2>Assets to open up first (reach {params['radius']:g} m)</h2>",
        _table(
            ["Rank", "Asset", "Kind", "Status", "Households added", "Cumulative", "Share covered"],
            [
                [
                    str(p["rank"]),
                    str(p["asset_id"]),
                    _e(p["kind"]),
                    _e(p["status"]),
                    _num(p["gain"]),
                    _num(p["cumulative"]),
                    _pct(p["household_share"]),
                ]
                for p in priorities
            ],
        ),  # fmt: skip
        f"<h2>Pipeline projects in the area ({len(summary.get('pipeline_projects', []))})</h2>",
        _table(
            ["Project", "Organisation", "Status", "Phase", "Where"],
            [
                [
                    _e(p["title"]),
                    _e(p["organisation"]),
                    _e(p["status"] or ""),
                    _e(p["phase"] or ""),
                    {"exact": "its site", "borough": "its borough", "london": "London-wide"}.get(
                        p["match"], p["match"]
                    ),
                ]
                for p in summary.get("pipeline_projects", [])
            ],
        ),  # fmt: skip
        "<h2>By borough</h2>",
        _table(
            ["Borough", "Within", "Households covered", "Share", "Area share"],
            [
                [
                    _e(names.get(r["borough_code"], r["borough_code"])),
                    f"{r['threshold_m']:g} m",
                    f"{_num(r['covered_households'])} of {_num(r['households'])}",
                    _pct(r["household_share"]),
                    _pct(r["area_share"]),
                ]
                for r in summary["boroughs"]
            ],
        ),  # fmt: skip
        f'<p class="note">Timings (s): {_e(record.get("timings"))}. Distances are exact (to the whole duct, '
        "not its vertices); a demand point counts as covered when an asset lies at most the threshold away.</p>",
    ]
    for i, part in enumerate(bottom):
        figure.html.add_child(Element(part), name=f"bottom_{i}")
    return render_page(figure, prefix)


async def report_page(conn: AsyncConnection[Any], report_id: int, principal: Any, *, prefix: str = "") -> str:
    """The report page for a request: checks access and state, reads the results, renders."""
    record = await coverage.finished_report(conn, report_id, principal)
    check_static_files()
    area = await coverage.area_feature(conn, report_id)
    gaps = await coverage.gap_features(conn, report_id, MAP_GAPS)
    priorities = await coverage.priority_rows(conn, report_id)
    assets = await coverage.serving_assets(conn, report_id, MAX_INLINE_ASSETS)
    cur = await conn.execute("SELECT code, name FROM boroughs")
    names = dict(await cur.fetchall())
    return render_report(record, area, gaps, priorities, assets, borough_names=names, prefix=prefix)
