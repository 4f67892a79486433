"""report.html from plain values (no database): escaping, the inlined files, the figures' words."""

from __future__ import annotations

import json
import re

import pytest

from maps.report import format as fmt
from maps.report import inline
from maps.report.page import render_report

EVIL = '</script><script>alert("x")</script> & <b>'


def record() -> dict:
    rows = [
        {"borough_code": "all", "threshold_m": t, "households": 1000.0, "covered_households": c,
         "household_share": c / 1000, "demand_points": 50, "covered_points": int(c / 20),
         "area_m2": 2e6, "covered_area_m2": c * 1000, "area_share": c / 2000}
        for t, c in ((50.0, 400.0), (100.0, 700.0))
    ]  # fmt: skip
    return {
        "id": 7,
        "parameters": {"area": {"boroughs": ["E09000007"]}, "demand": "postcodes", "cell_size": 100.0,
                       "thresholds": [50.0, 100.0], "gap_threshold": 100.0, "kinds": ["street_furniture"],
                       "statuses": ["in_service"], "subtypes": None, "asset_boroughs": None,
                       "ready_now": False, "k": 1, "radius": 100.0},
        "data_version": {"assets": 3, "boroughs": 1, "pipeline": 2, "demand": "postcodes"},
        "summary": {
            "thresholds": [50.0, 100.0], "whole_area": rows,
            "boroughs": [{**r, "borough_code": "E09000007"} for r in rows],
            "demand_points": 50, "cells": 200, "households": 1000.0, "area_m2": 2e6, "mean_distance_m": 61.5,
            "beyond_reach_points": 1, "reach_m": 100.0,
            "assets": {"qualifying_points": 12, "qualifying_lines": 3, "candidate_points": 4, "candidate_lines": 1},
            "profile": {"households": [[0, 0.0], [50, 0.4], [100, 0.7]], "area": [[0, 0.0], [100, 0.35]]},
            "gaps": {"threshold_m": 100.0, "count": 1, "households": 300.0, "area_m2": 40000.0},
            "pipeline_projects": [{"title": EVIL, "organisation": "Camden", "status": "Live", "phase": None,
                                   "match": "borough", "geometry": {"type": "Point", "coordinates": [-0.14, 51.54]}}],
        },
        "timings": {"area": 0.01, "nearest": 0.2, "total": 0.5},
        "created_by": "test", "finished_at": None,
    }  # fmt: skip


GAP = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[-0.14, 51.54], [-0.139, 51.54],
       [-0.139, 51.541], [-0.14, 51.54]]]}, "properties": {"gap_id": 1, "cells": 4, "area_m2": 40000.0,
       "households": 300.0}}  # fmt: skip
PRIORITY = {"rank": 1, "asset_id": 9, "kind": "street_furniture", "status": "proposed", "gain": 120.0,
            "cumulative": 120.0, "covered_households": 820.0, "household_share": 0.82, "lon": -0.14,
            "lat": 51.54, "name": EVIL, "source_id": "LP-1", "subtype": "lamp_post",
            "subtype_label": "Lamp post (street-lighting column)", "status_label": "Proposed",
            "borough": "Camden", "postcode": "NW1 2DB", "postcode_distance_m": 12.0}  # fmt: skip


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(record(), None, [GAP], [PRIORITY], borough_names={"E09000007": "Camden"})


def test_text_from_the_data_never_becomes_markup(page):
    assert "<script>alert" not in page and "<b>" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert" in page  # in the tables, escaped
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and ">" not in data and "&" not in data
    loaded = json.loads(data)
    assert loaded["projects"][0]["title"] == EVIL and loaded["priorities"][0]["title"].startswith(
        f"1. {EVIL}"
    )
    assert len(re.findall(r"<script\b", page)) == 3  # the data, Leaflet and the report's own


def test_figures_have_their_units(page):
    text = re.sub(r"<[^>]+>", " ", page.split("<body>")[1].split('<script type="application/json"')[0])
    assert "70.0%" in text and "1,000" in text and "100\u00a0m" in text and "4\u00a0ha" in text
    assert "0.20 s" in text and "0.50 s" in text and "{'" not in text
    assert "NW1 2DB" in text and "Lamp post" in text and "Camden" in text


def test_the_page_allows_exactly_its_scripts(page):
    meta = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    meta = meta.replace("&#x27;", "'")
    assert inline.script_hash(inline.leaflet_js()) in meta and inline.script_hash(inline.report_js()) in meta
    assert "default-src 'none'" in meta


def test_an_unexpected_leaflet_fails_loudly(monkeypatch, tmp_path):
    changed = tmp_path / "leaflet.js"
    changed.write_text("/* another Leaflet */ window.L = {};")
    monkeypatch.setattr(inline, "LEAFLET_JS", changed)
    with pytest.raises(ValueError, match="LEAFLET_JS_EDITS"):
        inline.leaflet_js()


@pytest.mark.parametrize(
    ("shares", "digits"), [((0.5, 0.6), 1), ((0.998652, 0.998658), 3), ((0.99861, 0.99868), 2), ((0.7,), 1)]
)
def test_shares_get_the_decimals_that_tell_them_apart(shares, digits):
    assert fmt.share_digits(*shares) == digits
