"""The data of the report's map, as the JSON the page carries (``#report-data``).

Light enough for one file: the area and the boroughs around it simplified, coordinates to 5
decimals (about a metre), the gaps as their polygons (stair-stepped cell edges, which
simplification would not shorten), the priorities and Pipeline projects as points. The
serving assets are not drawn one by one: what is not a gap is within the gap distance of one,
so the area's light fill is the covered area and the gaps stand out on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from maps.report.format import label, metres, num
from maps.report.inline import json_for_script

#: Most gaps drawn (largest first); a London-wide report at 100 m has about 1,300.
MAP_GAPS = 5000
ATTRIBUTION = (
    "Boundaries: GLA, ONS and OS data © Crown copyright and database right 2012; "
    "postcodes: OS Code-Point Open © Crown copyright, Royal Mail © Royal Mail copyright 2014"
)
#: The map's own line (the figure's caption has :data:`ATTRIBUTION` in full).
MAP_ATTRIBUTION = "© Crown copyright (OS, ONS, GLA); © Royal Mail"


def priority_title(p: Mapping[str, Any]) -> str:
    """One line for a priority: its number, what and where it is, what it adds."""
    where = ", ".join(v for v in (p.get("borough"), p.get("postcode")) if v)
    return (
        f"{p['rank']}. {asset_name(p)}"
        + (f", {where}" if where else "")
        + f": adds {num(p['gain'])} households"
    )


def asset_name(p: Mapping[str, Any]) -> str:
    """A priority's asset by name, else by its kind of thing and source id ("Lamp post SYN-SF-…")."""
    if p.get("name"):
        return str(p["name"])
    what = p.get("subtype_label") or label(p.get("subtype")) or label(p.get("kind")) or "Asset"
    what = str(what).split(" (")[0]  # "Lamp post (street-lighting column)" -> "Lamp post"
    ident = p.get("source_id") or f"id {p['asset_id']}"
    return f"{what[:1].upper()}{what[1:]} {ident}"


def _round(value: Any, digits: int = 6) -> Any:
    return None if value is None else round(float(value), digits)


def map_data(
    summary: Mapping[str, Any],
    area: Mapping[str, Any] | None,
    gaps: Sequence[Mapping[str, Any]],
    priorities: Sequence[Mapping[str, Any]],
    boroughs: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """What the map draws, as plain JSON values (see :mod:`maps.report.mapdata`)."""
    gap = summary["gaps"]["threshold_m"]
    projects = [p for p in summary.get("pipeline_projects", []) if p.get("geometry")]
    return {
        "area": area,
        "gaps": [
            {
                "type": "Feature",
                "geometry": g["geometry"],
                "properties": {
                    "gap_id": g["properties"]["gap_id"],
                    "households": round(float(g["properties"]["households"]), 1),
                    "area_m2": float(g["properties"]["area_m2"]),
                },
            }
            for g in gaps[:MAP_GAPS]
        ],
        "priorities": [
            {"rank": p["rank"], "lon": _round(p["lon"]), "lat": _round(p["lat"]), "title": priority_title(p)}
            for p in priorities
            if p.get("lat") is not None
        ],
        "projects": [{"title": p["title"], "geometry": p["geometry"]} for p in projects],
        "boroughs": [
            {"name": b["name"], "lon": _round(b["lon"]), "lat": _round(b["lat"]), "geometry": b["geometry"]}
            for b in boroughs
        ],
        "labels": {
            "covered": f"Within {metres(gap)} of a qualifying asset",
            "gaps": f"Gaps: more than {metres(gap)} from every one",
            "projects": "Pipeline projects",
            "priorities": "Assets to open up first",
        },
        "attribution": MAP_ATTRIBUTION,
    }


def map_json(data: Mapping[str, Any]) -> str:
    """The map's data as compact JSON, safe inside a ``<script type="application/json">``."""
    return json_for_script(json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
