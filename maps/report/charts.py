"""The report's charts as inline SVG and HTML: no chart library, nothing to load, crisp in print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maps.report.format import e, pct, share_digits

#: Series of the coverage curve: summary key -> (label, colour).
SERIES = {"households": ("Households", "#1b7a6e"), "area": ("Area", "#c2410c")}


def coverage_chart(
    profile: Mapping[str, Sequence[Sequence[float | None]]], thresholds: Sequence[float]
) -> str:
    """An inline SVG line chart of the covered share (households, area) against distance.

    Parameters
    ----------
    profile : mapping
        ``{"households": [[d, share], ...], "area": [...]}`` from the report summary.
    thresholds : sequence of float
        Drawn as dashed vertical lines, labelled in metres.

    Returns
    -------
    str
        An ``<svg>`` element (``role="img"`` with a description of what it shows).
    """
    width, height, left, bottom, top, right = 640, 280, 52, 46, 12, 110
    ordered = sorted(profile, key=lambda n: (list(SERIES).index(n) if n in SERIES else len(SERIES), n))
    series = {
        name: [(float(p[0]), float(p[1])) for p in profile[name] if p[0] is not None and p[1] is not None]
        for name in ordered
    }
    reach = max((p[0] for pts in series.values() for p in pts), default=1.0) or 1.0

    def sx(d: float) -> float:
        return left + (width - left - right) * d / reach

    def sy(s: float) -> float:
        return height - bottom - (height - bottom - top) * s

    described = ", ".join(SERIES.get(n, (n, ""))[0].lower() for n, pts in series.items() if pts)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="Share of {e(described) or "demand"} '
        f'within each distance of a qualifying asset, from 0 to {reach:g} m">'
    ]
    for s in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(s):.1f}" y2="{sy(s):.1f}" stroke="#d6d6d6"/>'
            f'<text x="{left - 6}" y="{sy(s) + 4:.1f}" text-anchor="end">{int(s * 100)}%</text>'
        )
    for t in thresholds:
        parts.append(
            f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{sy(0):.1f}" y2="{sy(1):.1f}" stroke="#767676" '
            f'stroke-dasharray="4 3"/><text x="{sx(t):.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{t:g} m</text>'
        )
    for i, (name, pts) in enumerate(p for p in series.items() if p[1]):
        title, colour = SERIES.get(name, (name, "#264653"))
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(d):.1f},{sy(s):.1f}" for j, (d, s) in enumerate(pts))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        parts.append(
            f'<rect x="{width - right + 14}" y="{top + 20 * i}" width="16" height="4" fill="{colour}"/>'
            f'<text x="{width - right + 36}" y="{top + 20 * i + 6}">{e(title)}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
        "distance to the nearest qualifying asset (metres)</text></svg>"
    )
    return "".join(parts)


def borough_bars(rows: Sequence[Mapping[str, Any]], threshold: float, names: Mapping[str, str]) -> str:
    """HTML bars of the household share covered within ``threshold``, one per borough, least covered first.

    The share of the area stands in for a borough without households in the demand.
    """
    picked = [r for r in rows if r["threshold_m"] == threshold]

    def share(row: Mapping[str, Any]) -> float | None:
        value = row.get("household_share")
        return row.get("area_share") if value is None else value

    picked.sort(key=lambda r: (share(r) or 0.0, names.get(r["borough_code"], r["borough_code"])))
    digits = share_digits(*(share(r) for r in picked))
    lines = ['<ul class="bars">']
    for row in picked:
        value = share(row)
        width = 0 if value is None else max(0.0, min(1.0, float(value))) * 100
        name = names.get(row["borough_code"], row["borough_code"])
        lines.append(
            f'<li><span class="name">{e(name)}</span><span class="track" aria-hidden="true">'
            f'<span class="fill" style="width:{width:.1f}%"></span></span>'
            f'<span class="value">{pct(value, digits)}</span></li>'
        )
    lines.append("</ul>")
    return "".join(lines)
