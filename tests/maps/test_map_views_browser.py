"""What a person sees on the redesigned map, in Chromium, at each zoom and in each state.

London zoom: a borough choropleth with names and counts, nothing covering much of the map.
Middle zoom: grid clusters that never overlap. Zoom 16 in Camden: the ward, borough and nearest
postcode named. Search, filters, the URL, the legend, the keyboard and a coverage report. Every
state is checked with axe-core and kept as a screenshot (tests/artifacts/screenshots/map-*.png).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from browser import axe_violations, screenshot, until
from fastapi.testclient import TestClient

pytestmark = pytest.mark.browser

CAMDEN = "E09000007"
BELSIZE = "#map=16/51.54550/-0.16270"
CLUSTER_VIEW = "#map=12/51.53500/-0.14000"

LARGEST_ELEMENT = """() => {
    // The share of the map the largest drawn element covers (its bounding box within the map).
    const box = document.getElementById('map').getBoundingClientRect();
    let worst = 0;
    for (const e of document.querySelectorAll('#map path, #map circle, #map rect, #map canvas, #map img, #map .app-cluster')) {
        const r = e.getBoundingClientRect();
        const w = Math.max(0, Math.min(r.right, box.right) - Math.max(r.left, box.left));
        const h = Math.max(0, Math.min(r.bottom, box.bottom) - Math.max(r.top, box.top));
        worst = Math.max(worst, w * h / (box.width * box.height));
    }
    return worst;
}"""

OVERLAPS = """(selector) => {
    // Pairs of visible elements matching `selector` whose boxes overlap.
    const boxes = [...document.querySelectorAll(selector)].filter((e) => getComputedStyle(e).visibility !== 'hidden'
        && !e.closest('.app-label--hidden')).map((e) => e.getBoundingClientRect());
    let n = 0;
    for (let i = 0; i < boxes.length; i += 1) for (let j = i + 1; j < boxes.length; j += 1) {
        const a = boxes[i], b = boxes[j];
        if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) n += 1;
    }
    return n;
}"""

DRAWN = """(name) => [].concat(...Object.values(window.connectivityMap.layers[name]._vectorTiles || {})
    .filter((r) => r.getContainer().isConnected).map((r) => Object.values(r._features).map((f) => f.feature.options)))"""

VISIBLE_LABELS = """(kind) => [...document.querySelectorAll(`#map .app-label--${kind}:not(.app-label--hidden)`)]
    .map((e) => e.textContent)"""


@pytest.fixture
def page(page: Any, live_server: str) -> Any:
    page.base = live_server
    return page


SETTLED = "() => window.connectivityMap && !window.connectivityMap.loading()"


def settle(page: Any) -> None:
    """Wait until every tile layer on the map has its tiles, and they are drawn."""
    page.wait_for_load_state("networkidle")
    until(page, SETTLED)
    page.wait_for_timeout(300)  # VectorGrid draws, and labels are placed, on the next frames


def open_map(page: Any, where: str = "") -> Any:
    page.goto(f"{page.base}/map{where}", wait_until="networkidle")
    until(page, "() => window.connectivityMap && document.querySelector('[data-legend] *')")
    settle(page)
    return page


def view(page: Any) -> dict[str, float]:
    return dict(
        page.evaluate("""() => { const m = window.connectivityMap.map, c = m.getCenter();
        return {lat: c.lat, lng: c.lng, zoom: m.getZoom()}; }""")
    )


def move(page: Any, lat: float, lng: float, zoom: int) -> None:
    page.evaluate(
        "([lat, lng, z]) => window.connectivityMap.map.setView([lat, lng], z, {animate: false})",
        [lat, lng, zoom],
    )
    settle(page)


def test_london_zoom_is_a_labelled_borough_choropleth_and_nothing_covers_much_of_the_map(page: Any) -> None:
    open_map(page)
    assert (
        view(page)["zoom"] == 10
        and page.evaluate("document.getElementById('map').dataset.mode") == "boroughs"
    )
    labels = page.evaluate(VISIBLE_LABELS, "borough")
    assert len(labels) >= 24, labels  # the small central ones make room at zoom 11
    assert any(t.startswith("Bromley") for t in labels) and any(t.startswith("Camden") for t in labels)
    # Each full label gives the borough's count of assets (the compact ones the name alone).
    assert sum(any(ch.isdigit() for ch in t) for t in labels) >= 20
    assert page.evaluate(OVERLAPS, "#map .app-label--borough .app-label__box") == 0
    # No cluster circles, no blobs, no tiles: the largest element is a borough's outline.
    assert page.locator("#map .app-cluster").count() == 0
    largest = page.evaluate(LARGEST_ELEMENT)
    assert largest < 0.10, largest
    assert page.locator("[data-legend] [data-legend='density'] li").count() >= 3
    assert axe_violations(page) == []
    screenshot(page, "map-london", full_page=False)
    assert page.errors == []


def test_middle_zooms_draw_grid_clusters_that_never_overlap(page: Any) -> None:
    open_map(page, f"?borough={CAMDEN}")  # a borough framed (and filtered): its assets only
    assert page.evaluate("document.getElementById('map').dataset.mode") in ("clusters", "assets")
    assert axe_violations(page) == []
    screenshot(page, "map-borough", full_page=False)
    open_map(page, CLUSTER_VIEW)
    until(page, "() => document.querySelectorAll('#map .app-cluster').length >= 10")
    assert page.evaluate("document.getElementById('map').dataset.mode") == "clusters"
    symbols = page.evaluate(
        """() => [...document.querySelectorAll('#map .app-cluster')].map((e) => ({
            w: e.getBoundingClientRect().width, text: e.textContent, count: Number(e.dataset.count)}))"""
    )
    assert all(22 <= s["w"] <= 44 for s in symbols), symbols  # radius 11 to 22 px: a small range
    assert all(s["text"].replace(",", "").replace("k", "").isdigit() and s["count"] >= 1 for s in symbols)
    assert page.evaluate(OVERLAPS, "#map .app-cluster") == 0
    # Names go where no number is.
    clash = page.evaluate(
        """() => { const c = [...document.querySelectorAll('#map .app-cluster')].map((e) => e.getBoundingClientRect());
        return [...document.querySelectorAll('#map .app-label:not(.app-label--hidden) .app-label__box')].filter((l) => {
            const a = l.getBoundingClientRect();
            return c.some((b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom); }).length; }"""
    )
    assert clash == 0
    wards = page.evaluate(VISIBLE_LABELS, "ward")
    assert len(wards) >= 5, wards  # wards and their names from zoom 12
    assert page.locator("[data-legend] [data-legend='clusters']").count() == 1
    assert axe_violations(page) == []
    screenshot(page, "map-clusters", full_page=False)
    assert page.errors == []


def test_at_zoom_16_in_camden_the_page_says_where_you_are(page: Any) -> None:
    open_map(page, BELSIZE)
    assert (
        view(page)["zoom"] == 16 and page.evaluate("document.getElementById('map').dataset.mode") == "assets"
    )
    where = until(
        page,
        "() => /postcode/.test(document.querySelector('[data-where]').textContent) && document.querySelector('[data-where]').textContent",
    )
    assert where.startswith("Centre of the map: Belsize ward, Camden, near postcode NW3"), where
    assert "Zoom 16" in where
    assert "Belsize" in page.evaluate(VISIBLE_LABELS, "ward")
    drawn = page.evaluate(DRAWN, "street_furniture")
    assert len(drawn) > 5 and len({d["fillColor"] for d in drawn}) >= 2  # coloured by subtype
    # Each asset is coloured by its subtype; the legend names them.
    legend = page.inner_text("[data-legend] [data-legend='street_furniture']")
    assert "Lamp post" in legend and "Bus stop pole or flag" in legend
    assert "No street map underneath" in page.inner_text("[data-legend]")  # no basemap is set in the tests
    assert axe_violations(page) == []
    screenshot(page, "map-camden-z16", full_page=False)
    assert page.errors == []


def tab_to(page: Any, selector: str, limit: int = 60) -> int:
    """Press Tab until ``selector`` has the focus; how many presses it took."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return n
    raise AssertionError(f"{selector} cannot be reached with the keyboard")


def test_a_postcode_searched_with_the_keyboard_moves_the_map_there(page: Any) -> None:
    open_map(page)
    tab_to(page, "#map-search")
    page.keyboard.type("nw1 2db")
    until(page, "() => document.querySelectorAll('#map-search-results [role=option]').length")
    assert page.get_attribute("#map-search", "aria-expanded") == "true"
    assert "1 place found" in page.inner_text("[data-search-status]")
    assert axe_violations(page) == []
    screenshot(page, "map-search-results", full_page=False)
    page.keyboard.press("ArrowDown")
    option = page.get_attribute("#map-search", "aria-activedescendant")
    assert page.get_attribute(f"#{option}", "aria-selected") == "true"
    page.keyboard.press("Enter")
    until(page, "() => window.connectivityMap.map.getZoom() === 17")
    page.wait_for_load_state("networkidle")
    centre = view(page)
    # NW1 2DB, Code-Point Open 2014: 529933 E, 182660 N (Euston Road).
    assert centre["lat"] == pytest.approx(51.5300, abs=0.0005) and centre["lng"] == pytest.approx(
        -0.1270, abs=0.0008
    )
    until(page, "() => !document.querySelector('[data-details]').hidden")
    details = page.inner_text("[data-details]")
    assert "NW1 2DB" in details and "Camden" in details
    assert page.evaluate("document.activeElement.id") == "map-details-heading"  # the focus follows
    where = until(page, "() => /NW1 2DB/.test(document.querySelector('[data-where]').textContent)")
    assert where
    assert page.errors == []


def test_a_bad_search_says_why_next_to_the_box(page: Any) -> None:
    open_map(page)
    page.fill("#map-search", "x")
    page.click("[data-search] button[type=submit]")
    assert page.inner_text("[data-search-error]").startswith("Error: enter at least 2 characters")
    assert "govuk-form-group--error" in page.get_attribute("#map-search-group", "class")
    page.fill("#map-search", "zzqqxx")
    until(page, "() => /No place matches/.test(document.querySelector('[data-search-status]').textContent)")
    assert axe_violations(page) == []


def cluster_total(page: Any) -> int:
    until(page, "() => document.querySelectorAll('#map .app-cluster').length")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    return int(
        page.evaluate(
            "() => [...document.querySelectorAll('#map .app-cluster')].reduce((n, e) => n + Number(e.dataset.count), 0)"
        )
    )


def test_a_filter_changes_the_features_drawn_and_the_choropleth(page: Any, client: TestClient) -> None:
    open_map(page)
    shaded = "(code) => window.connectivityMap.places.current.counts[code]"
    before = page.evaluate(shaded, CAMDEN)
    label = next(t for t in page.evaluate(VISIBLE_LABELS, "borough") if t.startswith("Camden"))
    assert label == f"Camden{before:,}"  # the label gives the count the shade is made from
    page.click("[data-filters-section] summary")
    page.check("#filter-street_furniture-bus_stop")
    page.wait_for_timeout(300)
    after = page.evaluate(shaded, CAMDEN)
    assert 0 < after < before
    assert f"Camden{after:,}" in page.evaluate(VISIBLE_LABELS, "borough")
    assert "(1 set)" in page.inner_text("[data-filters-section] summary")
    # At zoom 12 the clusters count only bus stops (and the public buildings, whose filter is unset).
    move(page, 51.535, -0.14, 12)
    filtered = cluster_total(page)
    page.click("[data-filters-clear]")
    assert cluster_total(page) > filtered
    # At zoom 16 the tiles are asked with the filter, and every drawn street furniture is a bus stop.
    page.check("#filter-street_furniture-bus_stop")
    move(page, 51.5455, -0.1627, 16)
    urls = page.evaluate(
        "() => performance.getEntriesByType('resource').map((e) => e.name).filter((u) => u.includes('/tiles/street_furniture/16/'))"
    )
    assert urls and all("subtype=bus_stop" in u for u in urls[-4:])
    colours = {d["fillColor"] for d in page.evaluate(DRAWN, "street_furniture")}
    assert colours == {"#0072b2"}, colours  # bus stops only
    assert axe_violations(page) == []
    assert page.errors == []


def test_the_view_round_trips_through_the_url(page: Any, browser: Any) -> None:
    open_map(page)
    move(page, 51.5201, -0.0882, 14)
    page.uncheck("[data-layers] input[value='ducts']")
    page.uncheck("[data-layers] input[value='wards']")
    page.click("[data-filters-section] summary")
    page.check("#filter-status-in_service")
    page.check("#filter-wayleave-requested")
    page.select_option("#filter-borough", "E09000019")  # Islington: frames the map there
    page.wait_for_timeout(600)
    move(page, 51.5390, -0.1030, 15)
    url = page.evaluate("location.href")
    assert "#map=15/51.53900/-0.10300" in url and "borough=E09000019" in url and "status=in_service" in url
    assert "wayleave=requested" in url and "ducts" not in url.split("layers=")[1].split("&")[0]
    shown = view(page)
    state = page.evaluate(
        "() => JSON.stringify({l: [...window.connectivityMap.state.layers].sort(), f: window.connectivityMap.state.filters})"
    )

    other = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    other.base = page.base
    open_map(other, url.removeprefix(page.base + "/map"))
    assert view(other) == pytest.approx(shown, abs=1e-5)
    assert (
        other.evaluate(
            "() => JSON.stringify({l: [...window.connectivityMap.state.layers].sort(), f: window.connectivityMap.state.filters})"
        )
        == state
    )
    assert other.is_checked("#filter-status-in_service") and other.is_checked("#filter-wayleave-requested")
    assert (
        not other.is_checked("[data-layers] input[value='ducts']")
        and other.input_value("#filter-borough") == "E09000019"
    )
    assert other.evaluate("location.hash") == page.evaluate("location.hash")
    other.context.close()
    # A link to a plain borough (the old ?borough=) still frames it.
    open_map(page, f"?borough={CAMDEN}")
    assert f"borough={CAMDEN}" in page.evaluate("location.hash")


def test_the_legend_shows_only_layers_that_are_on_and_folds_from_the_keyboard(page: Any) -> None:
    open_map(page, BELSIZE)
    assert page.locator("[data-legend] [data-legend='wayleaves']").count() == 1
    page.uncheck("[data-layers] input[value='wayleaves']")
    assert page.locator("[data-legend] [data-legend='wayleaves']").count() == 0
    page.uncheck("[data-layers] input[value='street_furniture']")
    assert page.locator("[data-legend] [data-legend='street_furniture']").count() == 0
    page.check("[data-layers] input[value='street_furniture']")
    settle(page)
    page.wait_for_timeout(300)  # Leaflet fades new tiles in
    page.locator("[data-legend-section]").scroll_into_view_if_needed()
    screenshot(page, "map-legend", full_page=False)
    tab_to(page, "[data-legend-section] summary")
    assert page.evaluate("document.querySelector('[data-legend-section]').open") is True
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('[data-legend-section]').open") is False
    page.keyboard.press("Enter")
    assert page.evaluate("document.querySelector('[data-legend-section]').open") is True
    # The map itself takes the keyboard: arrows move it.
    tab_to(page, "#map")
    before = view(page)
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(400)
    assert view(page)["lng"] > before["lng"]
    assert axe_violations(page) == []


def test_a_coverage_report_shows_its_gaps_shares_and_numbered_priorities(
    page: Any, client: TestClient, keys: dict[str, str], auth: Callable[[str], dict[str, str]]
) -> None:
    created = client.post(
        "/coverage/reports", json={"area": {"boroughs": [CAMDEN]}, "k": 5}, headers=auth("operator")
    )
    assert created.status_code == 201 and created.json()["state"] == "done", created.text
    report_id = str(created.json()["id"])
    gaps = client.get(f"/coverage/reports/{report_id}/gaps.geojson", headers=auth("operator")).json()[
        "features"
    ]
    open_map(page)
    assert "Sign in to show one of your coverage reports" in page.inner_text("[data-report-hint]")
    assert page.is_disabled("#map-report")
    page.fill("#signin-key", keys["operator"])
    page.click("[data-signin-form] button[type=submit]")
    until(
        page,
        "(id) => [...document.querySelectorAll('#map-report option')].some((o) => o.value === id)",
        report_id,
    )
    page.select_option("#map-report", report_id)
    until(page, "() => document.querySelectorAll('#map .app-priority').length === 5")
    settle(page)
    until(page, "() => /ward/.test(document.querySelector('[data-where]').textContent)")
    summary = page.inner_text("[data-report-summary]")
    assert summary.startswith(f"Report {report_id} (Camden):") and "of households within 100 m" in summary
    assert f"{len(gaps)} gaps" in summary or f"{len(gaps)} gap;" in summary
    drawn_gaps = page.evaluate(
        "() => document.querySelector('.leaflet-coverage-pane').querySelectorAll('path').length"
    )
    assert drawn_gaps == len(gaps) > 0
    assert [page.inner_text(f"#map .app-priority >> nth={n}") for n in range(5)] == ["1", "2", "3", "4", "5"]
    assert f"report={report_id}" in page.evaluate("location.hash")
    assert page.locator("[data-legend] [data-legend='coverage']").count() == 1
    assert axe_violations(page) == []
    screenshot(page, "map-report", full_page=False)
    # The borough choropleth becomes the share of households covered.
    move(page, 51.545, -0.16, 11)
    camden = next(t for t in page.evaluate(VISIBLE_LABELS, "borough") if t.startswith("Camden"))
    assert camden.endswith("% covered")
    assert page.locator("[data-legend] [data-legend='share']").count() == 1
    # The priorities are a list to choose from, in order, with the keyboard as well.
    page.click("[data-report-priorities] li:first-child button")
    until(
        page,
        "() => /Priority/.test(document.querySelector('[data-details]').textContent) && document.querySelector('[data-details] dl .govuk-summary-list__row')",
    )
    assert "1 of the report’s candidates" in page.inner_text("[data-details]")
    assert axe_violations(page) == []
    assert page.errors == []
