"""``/app/uploads`` in Chromium: a real file sent through the page, its preview, errors, mapping and apply.

The uploads are written to a database of this module's own (``isolated``), served by uvicorn, so
the session database stays as the other tests expect it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import shapely
from browser import axe_violations, screenshot, until
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from servers import serving

from geo.core.settings import DatabaseSettings, Settings
from geo.uploads import load_mapping_file

pytestmark = pytest.mark.browser
ROLES = ("admin", "operator", "camden", "hackney")


@pytest.fixture(scope="module")
def server(isolated: Any) -> Iterator[str]:
    with serving(Settings(db=DatabaseSettings(url=isolated.app_url))) as url:
        yield url


@pytest.fixture(scope="module")
def own_keys(isolated: Any) -> dict[str, str]:
    return {who: isolated.auth(who)["Authorization"].removeprefix("Bearer ") for who in ROLES}


def lamps(samples: Any, prefix: str, broken: bool = True) -> gpd.GeoDataFrame:
    """Camden's sample lamps renamed ``prefix…``, in WGS84; with ``broken`` four rows have errors."""
    frame = samples.stops.copy().to_crs(4326).rename(columns={"STREET": "LOCN"})
    frame["UNITNO"] = prefix + frame["UNITNO"]
    if broken:
        frame.loc[[2, 6], "HEIGHT"] = -2.0  # rows 3 and 7: below the model's minimum
        frame.loc[9, "TYPE"] = "Flux capacitor"  # row 10: no such subtype
        frame.loc[14, "geometry"] = shapely.Point(0.05, 51.38)  # row 15: in Bromley, not Camden
    return frame


def write_geojson(frame: gpd.GeoDataFrame, path: Path) -> Path:
    pyogrio.write_dataframe(frame, path, driver="GeoJSON")
    return path


def open_page(page: Any, server: str, key: str | None = None) -> None:
    page.goto(f"{server}/app/uploads", wait_until="networkidle")
    if key:
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        until(page, "() => document.querySelector('.app-signin--in')")


def preview_of(page: Any, previous: str | None = None) -> str:
    """Wait for a preview (another one than ``previous``); its heading."""
    return until(
        page,
        """(previous) => {
            const h = document.querySelector('[data-preview-heading]');
            const shown = !document.querySelector('[data-preview]').hidden;
            const rows = document.querySelectorAll('[data-counts] li').length;
            const box = document.querySelector('[data-progress-status]').textContent;
            return shown && rows && box.startsWith('Preview ready') && h.textContent + '|' +
                document.querySelector('[data-facts]').textContent !== previous
                ? h.textContent + '|' + document.querySelector('[data-facts]').textContent : null;
        }""",
        previous,
    )


def watch_steps(page: Any) -> None:
    """Keep every step the progress box announces in ``window.steps``."""
    page.evaluate(
        """() => { const live = document.querySelector('[data-progress-status]'); window.steps = [];
            new MutationObserver(() => window.steps.push(live.textContent))
                .observe(live, {childList: true, characterData: true, subtree: true}); }"""
    )


def hold_running(page: Any) -> dict[str, bool]:
    """Answer GET /uploads/{id} as a job at 120 of 200 rows while ``held["on"]`` (to see the progress)."""
    held = {"on": True}

    def running(route: Any) -> None:
        if not held["on"] or route.request.method != "GET":
            route.continue_()
            return
        response = route.fetch()
        progress = {"done": 120, "total": 200, "fraction": 0.6}
        body = {**response.json(), "state": "running", "progress_done": 120, "progress_total": 200}
        route.fulfill(response=response, json={**body, "progress": progress})

    page.route(re.compile(r"/uploads/\d+$"), running)
    return held


def choose_with_keyboard(page: Any, path: Path) -> None:
    """Enter on the focused file input, and ``path`` in the chooser it opens.

    Chromium opens no second chooser within about a second of the last one, so Enter is pressed
    again until one opens.
    """
    for _ in range(5):
        try:
            with page.expect_file_chooser(timeout=700) as chooser:
                page.keyboard.press("Enter")
        except PlaywrightTimeout:
            continue
        chooser.value.set_files(str(path))
        return
    raise AssertionError("Enter on the file input opened no file chooser")


def counts(page: Any) -> dict[str, int]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-count]')].map(li =>
            [li.dataset.count, Number(li.querySelector('.app-count__number').textContent.replace(/,/g, ''))]))"""
    )


def error_rows(page: Any) -> list[list[str]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-errors-rows] tr')].map(tr =>
            [...tr.cells].map(td => td.textContent))"""
    )


def test_without_a_key_the_page_asks_for_one_and_shows_the_sign_in(page, server):
    open_page(page, server)
    assert page.title() == "Upload assets – Connectivity for London"
    needs = page.locator("[data-needs-key]")
    assert needs.is_visible() and "needs a borough key" in needs.inner_text()
    assert "or an admin key" in needs.inner_text()
    assert (
        page.get_by_label("API key").is_visible() and page.get_by_role("button", name="Sign in").is_visible()
    )
    assert not page.locator("[data-upload-form]").is_visible()
    assert axe_violations(page) == []
    screenshot(page, "uploads-signed-out")
    assert page.errors == []


def test_an_operator_key_is_told_it_may_not_upload(page, server, own_keys):
    open_page(page, server, own_keys["operator"])
    text = page.locator("[data-needs-key]").inner_text()
    assert "Operator keys may not upload or apply asset files" in text
    assert "signed in as operator" in text
    assert not page.locator("[data-upload-form]").is_visible()
    assert axe_violations(page) == []
    screenshot(page, "uploads-operator")
    assert page.errors == []


def test_a_file_through_the_page_to_preview_errors_mapping_and_apply(
    page, server, own_keys, isolated, samples
):
    path = write_geojson(lamps(samples, "PG-"), samples.tmp / "camden-lamps.geojson")
    open_page(page, server, own_keys["camden"])
    assert "Camden: your key’s borough" in page.locator("[data-borough-fixed]").inner_text()
    assert not page.locator("#borough").is_visible()
    assert axe_violations(page) == []
    screenshot(page, "uploads-form")

    page.set_input_files("#file", str(path))
    assert "Chosen: camden-lamps.geojson" in page.locator("[data-drop-text]").inner_text()
    page.select_option("#kind", "street_furniture")
    watch_steps(page)
    held = hold_running(page)
    page.get_by_role("button", name="Preview the upload").click()
    # While the job runs: the bar and its figures (the API's answers held at 120 of 200 rows).
    until(
        page, "() => document.querySelector('[data-progress-figures]').textContent.startsWith('120 of 200')"
    )
    assert page.locator("#progress-bar").get_attribute("value") == "60"
    assert page.locator("[data-progress-status]").inner_text() == "Checking the rows."
    assert axe_violations(page) == []
    screenshot(page, "uploads-progress", full_page=False)
    held["on"] = False
    first = preview_of(page)
    steps = page.evaluate("window.steps")
    assert steps[0] == "Sending the file." and "Checking the rows." in steps and steps[-1] == "Preview ready."
    assert counts(page) == {"new": 196, "changed": 0, "unchanged": 0, "retired": 0, "invalid": 4}
    rows = error_rows(page)
    assert [r[0] for r in rows] == ["3", "7", "10", "15"]
    assert rows[2][1:4] == ["PG-11363", "TYPE", "Flux capacitor"] and "not a known subtype" in rows[2][4]
    assert "outside Camden" in rows[3][4]
    assert page.locator("[data-page-where]").inner_text() == "Page 1 of 1: errors 1 to 4 of 4"
    # The map (rows.geojson): the valid rows on a canvas, the invalid ones as markers.
    until(page, "() => document.querySelectorAll('.app-marker-invalid').length === 4")
    assert "Showing all 200 rows that have a location" in page.locator("[data-map-note]").inner_text()
    assert page.locator("[data-legend-valid]").inner_text() == "Valid row (blue circle): 196 shown"
    assert page.locator("#upload-map canvas").count() >= 1
    assert "cannot be applied yet" in page.locator("[data-why-not]").inner_text()
    assert axe_violations(page) == []
    screenshot(page, "uploads-preview")

    # An invalid row on the map leads to its error in the table.
    page.locator(".app-marker-invalid").nth(2).click()
    popup = page.locator(".leaflet-popup-content")
    assert "Row 10 (PG-11363)" in popup.inner_text() and "Flux capacitor" in popup.inner_text()
    popup.get_by_role("button", name="Show in the error table").click()
    assert page.evaluate("document.activeElement.dataset.errorRow") == "10"

    # errors.csv, fetched with the key, as a file.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download errors.csv").click()
    assert download.value.suggested_filename.endswith("-errors.csv")
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["row"] for r in table] == ["3", "7", "10", "15"]
    assert table[0] == {**table[0], "source_id": "PG-1057", "column": "HEIGHT", "value": "-2.0"}
    assert "outside 0.1..400" in table[0]["message"]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download errors.geojson").click()
    features = json.loads(Path(download.value.path()).read_text())["features"]
    assert [f["properties"]["row"] for f in features] == [3, 7, 10, 15]

    # The column LOCN went to the extra attributes; send it to name, download the mapping, preview again.
    locn = page.get_by_label("Where column LOCN goes")
    assert locn.input_value() == "extra"
    locn.select_option("name")
    assert "You changed where columns go" in page.locator("[data-why-not]").inner_text()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the mapping (JSON)").click()
    mapping = json.loads(Path(download.value.path()).read_text())
    assert mapping["columns"] == {
        "UNITNO": "source_id", "TYPE": "subtype", "HEIGHT": "height_m", "STATUS": "status", "LOCN": "name",
    }  # fmt: skip
    assert mapping["values"] == {} and mapping["defaults"] == {}
    # The file is one `connectivity import --mapping` and POST /uploads read.
    assert load_mapping_file(download.value.path())["columns"]["LOCN"] == "name"
    page.get_by_role("button", name="Re-run the preview with this mapping").click()
    second = preview_of(page, first)
    assert page.get_by_label("Where column LOCN goes").input_value() == "name"
    assert counts(page)["new"] == 196
    assert axe_violations(page) == []
    screenshot(page, "uploads-preview-remapped")

    # With errors left, the page offers to preview again leaving them out; then apply.
    page.get_by_role("button", name="Re-run the preview, leaving out the rows with errors").click()
    preview_of(page, second)
    assert "left out when applied" in page.locator("[data-facts]").inner_text()
    apply = page.get_by_role("button", name="Apply to Camden’s assets: 196 new, 0 changed, 0 retired")
    apply.click()
    result = page.locator("[data-result]")
    until(page, "() => !document.querySelector('[data-result]').hidden")
    assert "196 new, 0 changed, 0 unchanged and 0 retired assets in Camden" in result.inner_text()
    assert "4 rows with errors were left out" in result.inner_text()
    until(page, "() => document.querySelector('[data-history-rows] tr .govuk-tag--green')")
    latest = page.locator("[data-history-rows] tr").first
    assert "applied" in latest.inner_text() and "test camden" in latest.inner_text()
    assert page.locator("[data-history-rows] tr").count() == 3  # the three previews, the last applied
    assert axe_violations(page) == []
    screenshot(page, "uploads-applied")
    with psycopg.connect(isolated.url) as conn:
        stored = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE name IS NOT NULL) FROM assets WHERE source_id LIKE 'PG-%'"
        ).fetchone()
    assert stored == (196, 196)
    assert page.errors == []


def test_the_keyboard_alone_takes_a_file_from_the_form_to_applied(page, server, own_keys, samples):
    path = write_geojson(lamps(samples, "KB-", broken=False), samples.tmp / "keyboard.geojson")
    open_page(page, server, own_keys["camden"])
    page.locator("#signin-heading").evaluate(
        "e => e.closest('section').querySelector('button[data-signout]').focus()"
    )
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    choose_with_keyboard(page, path)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "kind"
    page.keyboard.type("Street")
    assert page.evaluate("document.activeElement.value") == "street_furniture"
    for expected in ("layer", "mode-append", "skip-invalid", "mapping-file"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == expected
    # A mapping file, as the page downloads them: LOCN is the name.
    mapping = samples.tmp / "mapping.json"
    mapping.write_text(json.dumps({"columns": {"LOCN": "name", "WARD": None}}))
    choose_with_keyboard(page, mapping)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Preview the upload"
    page.keyboard.press("Enter")
    preview_of(page)
    assert counts(page) == {"new": 200, "changed": 0, "unchanged": 0, "retired": 0, "invalid": 0}
    assert page.get_by_label("Where column LOCN goes").input_value() == "name"
    assert page.get_by_label("Where column WARD goes").input_value() == "ignored"
    assert page.evaluate("document.activeElement.id") == "preview-heading"
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.hasAttribute('data-apply')"):
            break
    else:
        raise AssertionError("the Apply button was not reached with Tab")
    page.keyboard.press("Enter")
    until(page, "() => !document.querySelector('[data-result]').hidden")
    assert page.evaluate("document.activeElement.hasAttribute('data-result')")
    assert "200 new" in page.locator("[data-result]").inner_text()
    assert page.errors == []


def test_an_admin_chooses_the_borough_and_the_layer_and_drops_the_file(page, server, own_keys, samples):
    two = samples.tmp / "two-layers.gpkg"
    stops = samples.stops.copy()
    stops["UNITNO"] = "GP-" + stops["UNITNO"]
    pyogrio.write_dataframe(stops.iloc[:100], two, layer="columns")
    pyogrio.write_dataframe(stops.iloc[100:], two, layer="signs", append=True)
    open_page(page, server, own_keys["admin"])
    assert page.locator("#borough").is_visible()
    page.get_by_role("button", name="Preview the upload").click()
    summary = page.locator("[data-error-summary]")
    assert summary.is_visible() and page.evaluate("document.activeElement.hasAttribute('data-error-summary')")
    assert summary.get_by_role("link").all_inner_texts() == [
        "Choose the file to upload",
        "Choose the borough the assets belong to",
    ]
    assert "Choose the borough" in page.locator("#borough-error").inner_text()
    assert axe_violations(page) == []
    screenshot(page, "uploads-form-errors")

    # A drop on the zone fills the file input.
    content = list(two.read_bytes())
    transfer = page.evaluate_handle(
        """(bytes) => { const t = new DataTransfer();
            t.items.add(new File([new Uint8Array(bytes)], 'two-layers.gpkg')); return t; }""",
        content,
    )
    page.dispatch_event("[data-drop-zone]", "drop", {"dataTransfer": transfer})
    assert page.evaluate("document.getElementById('file').files[0].name") == "two-layers.gpkg"
    page.select_option("#borough", "E09000007")
    page.get_by_role("button", name="Preview the upload").click()
    until(page, "() => !document.querySelector('#layer-error').hidden")
    assert "several layers" in page.locator("#layer-error").inner_text()
    assert page.locator("#layer option").all_inner_texts()[1:] == ["columns", "signs"]
    page.select_option("#layer", "signs")
    page.get_by_role("button", name="Preview the upload").click()
    preview_of(page)
    assert "signs (of 2: columns, signs)" in page.locator("[data-facts]").inner_text()
    assert counts(page)["new"] == 100
    until(
        page, "() => document.querySelector('[data-map-note]').textContent.startsWith('Showing all 100 rows')"
    )
    assert "Camden: Street furniture" in page.locator("[data-history-rows]").inner_text()
    assert axe_violations(page) == []
    screenshot(page, "uploads-admin-layers")
    page.get_by_role("button", name="Apply to Camden’s assets: 100 new, 0 changed, 0 retired").click()
    until(page, "() => !document.querySelector('[data-result]').hidden")
    assert "100 new" in page.locator("[data-result-heading]").inner_text()
    applied = page.locator("[data-preview-heading]").inner_text()
    assert applied == "2. Applied two-layers.gpkg"
    # An earlier upload, opened from the list, shows its preview again (here an older dry run).
    until(page, "() => document.querySelectorAll('[data-history-rows] tr').length >= 2")
    older = page.locator("[data-history-rows] tr").nth(1)
    number = older.locator("td").first.inner_text()
    older.get_by_role("button", name=f"Open upload {number}").click()
    until(page, "(n) => document.querySelector('[data-facts]').textContent.includes(`number ${n},`)", number)
    assert page.locator("[data-preview-heading]").inner_text().startswith("2. ")
    assert page.errors == []


def canvas_colours(page: Any) -> dict[str, int]:
    """Pixels of the map's canvas in the valid rows' blue and the invalid rows' vermillion."""
    return page.evaluate(
        """() => { const c = document.querySelector('#upload-map canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const near = (i, [r, g, b]) => Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40;
            let blue = 0, orange = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] > 0 && near(i, [0, 114, 178])) blue++;
                if (d[i + 3] > 0 && near(i, [213, 94, 0])) orange++;
            }
            return {blue, orange}; }"""
    )


def test_a_bng_csv_is_drawn_valid_in_blue_invalid_in_vermillion_and_an_error_opens_from_its_marker(
    page, server, own_keys, samples
):
    frame = samples.stops.copy()  # EPSG:27700, as boroughs export eastings and northings
    frame["UNITNO"] = "BNGP-" + frame["UNITNO"]
    frame.loc[[4, 40], "HEIGHT"] = -3.0  # rows 5 and 41: below the minimum height
    frame.loc[90, "geometry"] = shapely.Point(540000, 168000)  # row 91: in Bromley
    csv_path = samples.tmp / "lamps-bng.csv"
    table = frame.drop(columns="geometry")
    table["Easting"], table["Northing"] = frame.geometry.x, frame.geometry.y
    table.to_csv(csv_path, index=False)
    open_page(page, server, own_keys["camden"])
    page.set_input_files("#file", str(csv_path))
    page.select_option("#kind", "street_furniture")
    page.get_by_role("button", name="Preview the upload").click()
    preview_of(page)
    assert "EPSG:27700" in page.locator("[data-facts]").inner_text()
    assert counts(page)["invalid"] == 3
    until(page, "() => document.querySelectorAll('.app-marker-invalid').length === 3")
    legend = page.locator("[data-map-legend]").inner_text()
    assert "Valid row (blue circle): 197 shown" in legend
    assert "Row with an error (orange square with a cross): 3 shown" in legend
    # Valid rows: blue circles on the canvas; the invalid ones: vermillion markers over it.
    drawn = until(
        page,
        "() => { const c = document.querySelector('#upload-map canvas'); return c && c.width ? 1 : null; }",
    )
    assert drawn
    colours = canvas_colours(page)
    assert colours["blue"] > 500 and colours["orange"] == 0, colours
    markers = page.locator(".app-marker-invalid")
    assert (
        markers.evaluate_all("ms => ms.map(m => getComputedStyle(m).backgroundColor)")
        == ["rgb(213, 94, 0)"] * 3
    )
    assert markers.evaluate_all("ms => ms.map(m => m.dataset.row)") == ["5", "41", "91"]
    # In London: the markers sit inside the map, the Bromley one south-east of the others.
    boxes = [markers.nth(i).bounding_box() for i in range(3)]
    assert boxes[2]["y"] > boxes[0]["y"] and boxes[2]["x"] > boxes[0]["x"]
    # Keyboard: Tab reaches a marker, Enter opens its error.
    markers.nth(0).focus()
    page.keyboard.press("Enter")
    popup = page.locator(".leaflet-popup-content")
    until(page, "() => document.querySelector('.leaflet-popup-content')")
    assert "Row 5 (BNGP-" in popup.inner_text() and "HEIGHT" in popup.inner_text()
    assert "outside 0.1..400" in popup.inner_text()
    # Leaflet fades a popup in: axe measures contrast only once it is opaque.
    until(page, "() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")
    assert axe_violations(page) == []
    page.locator("#map-heading").scroll_into_view_if_needed()
    page.evaluate("document.querySelector('#map-heading').scrollIntoView({block: 'start'})")
    screenshot(page, "uploads-map-bng", full_page=False)
    # A click on another opens its own, and leads to its row in the table.
    markers.nth(2).click()
    until(page, "() => document.querySelector('.leaflet-popup-content').textContent.includes('Row 91')")
    assert "outside Camden" in popup.inner_text()
    popup.get_by_role("button", name="Show in the error table").click()
    assert page.evaluate("document.activeElement.dataset.errorRow") == "91"
    assert page.errors == []
