"""The OGC API's HTML pages in Chromium: followed from the landing page to a feature, readable, accessible.

A browser sends ``Accept: text/html…``, so the same URLs as the JSON answer with pages; an asset
named with HTML in it shows as text, and a field only its borough may see stays off the
anonymous pages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from browser import axe_violations, screenshot, until
from servers import serving

from geo.core.settings import DatabaseSettings, Settings

pytestmark = pytest.mark.browser
HOSTILE = '<img src=x onerror="window.pwned=1">Lamp <b>7</b>'
SECRET_FIELD = "ward_officer_note"


@pytest.fixture(scope="module")
def site(isolated: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """The isolated database, one Camden lamp post named with HTML and given a borough-only field, served."""
    with psycopg.connect(isolated.url, autocommit=True) as conn:
        asset_id = conn.execute(
            "SELECT id FROM assets WHERE kind = 'street_furniture' AND borough_code = 'E09000007' "
            "AND retired_at IS NULL AND GeometryType(geom) = 'POINT' ORDER BY id LIMIT 1"
        ).fetchone()[0]
    edit = isolated.client.patch(
        f"/assets/{asset_id}",
        json={"name": HOSTILE, "extra": {SECRET_FIELD: "call first"}},
        headers=isolated.auth("camden"),
    )
    assert edit.status_code == 200, edit.text
    with serving(Settings(db=DatabaseSettings(url=isolated.app_url))) as url:
        yield SimpleNamespace(url=url, asset_id=asset_id, client=isolated.client, auth=isolated.auth)


def checked(page: Any, name: str, heading: str) -> None:
    """The page is the one expected, has no serious axe violation, and is kept as a screenshot."""
    assert page.locator("h1").inner_text().strip() == heading
    assert page.locator("html").get_attribute("lang") == "en-GB"
    assert page.locator("a.govuk-skip-link").count() == 1
    assert page.locator('link[rel="alternate"]').count() >= 1
    assert axe_violations(page) == [], name
    screenshot(page, f"ogc-{name}")


def test_links_lead_from_the_landing_page_to_a_feature(page, site):
    page.goto(f"{site.url}/", wait_until="networkidle")  # Chromium's own Accept: text/html first
    checked(page, "landing", "connectivity: OGC API")
    page.get_by_role("link", name=re.compile(r"^Page\W+Collections$")).click()
    page.wait_for_load_state("networkidle")
    checked(page, "collections", "Collections")
    assert page.locator("tbody tr").count() == len(site.client.get("/collections").json()["collections"])
    page.get_by_role("link", name="Street furniture", exact=True).click()
    page.wait_for_load_state("networkidle")
    checked(page, "collection", "Street furniture")
    page.get_by_role("link", name="Browse the features").click()
    page.wait_for_load_state("networkidle")
    until(page, "() => document.querySelectorAll('#ogc-map path.leaflet-interactive').length > 0")
    checked(page, "items", "Street furniture: features")
    screenshot(page, "ogc-items-top", full_page=False)
    # The table is the page of the JSON: the same features, in the same order.
    json_ids = [
        str(f["id"]) for f in site.client.get("/collections/street_furniture/items").json()["features"]
    ]
    assert page.locator("[data-features] tbody th").all_inner_texts() == json_ids
    page.get_by_role("link", name="Next page").click()
    page.wait_for_load_state("networkidle")
    second = page.locator("[data-features] tbody th").all_inner_texts()
    assert second and int(second[0]) > int(json_ids[-1])
    page.get_by_role("link", name="Previous page").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-features] tbody th").all_inner_texts() == json_ids
    page.get_by_role("link", name=json_ids[0], exact=True).click()
    page.wait_for_load_state("networkidle")
    until(page, "() => document.querySelectorAll('#ogc-map path.leaflet-interactive').length === 1")
    feature = site.client.get(f"/collections/street_furniture/items/{json_ids[0]}").json()
    heading = feature["properties"]["name"] or json_ids[0]
    checked(page, "item", heading)
    shown = dict(zip(page.locator("[data-properties] tbody th").all_inner_texts(),
                     page.locator("[data-properties] tbody td").all_inner_texts(), strict=True))  # fmt: skip
    assert shown["subtype"] == feature["properties"]["subtype"]
    assert shown["borough_code"] == feature["properties"]["borough_code"]


def test_the_other_pages(page, site):
    for path, name, heading in [
        ("/conformance", "conformance", "Conformance classes"),
        ("/collections/street_furniture/queryables", "queryables", "Street furniture: queryables"),
        ("/processes", "processes", "Processes"),
        ("/processes/coverage", "process", "Coverage report"),
    ]:
        page.goto(f"{site.url}{path}", wait_until="networkidle")
        checked(page, name, heading)
    page.goto(f"{site.url}/processes", wait_until="networkidle")
    assert page.get_by_role("link", name="Coverage report").get_attribute("href").endswith("?f=html")
    answer = page.goto(f"{site.url}/jobs", wait_until="networkidle")
    assert answer.status == 401 and "needs an API key" in page.locator("main").inner_text()
    checked(page, "jobs-anonymous", "Jobs")
    page.set_extra_http_headers(site.auth("camden"))
    page.goto(f"{site.url}/jobs", wait_until="networkidle")
    assert "0 jobs" in page.locator("[data-count]").inner_text()


def test_values_are_text_and_borough_fields_stay_hidden(page, site):
    page.goto(f"{site.url}/collections/street_furniture/items/{site.asset_id}", wait_until="networkidle")
    assert page.locator("h1").inner_text() == HOSTILE  # the markup as text, not as elements
    assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0
    # Through the page's own filter form: a CQL2 filter, as the JSON takes it.
    page.goto(f"{site.url}/collections/street_furniture/items", wait_until="networkidle")
    page.get_by_label("CQL2 filter").fill(f"id = {site.asset_id}")
    page.get_by_role("button", name="Show features").click()
    page.wait_for_load_state("networkidle")
    assert "filter=id" in page.url and "f=html" in page.url
    assert page.locator("[data-features] tbody tr").count() == 1
    row = page.locator("[data-features] tbody tr")
    assert row.locator("th").inner_text() == str(site.asset_id) and HOSTILE in row.inner_text()
    until(page, "() => document.querySelectorAll('#ogc-map path.leaflet-interactive').length > 0")
    page.locator("#ogc-map path.leaflet-interactive").first.hover()
    until(page, "() => document.querySelector('.leaflet-tooltip')")
    assert page.locator(".leaflet-tooltip").inner_text() == HOSTILE
    assert page.evaluate("() => window.pwned") is None and page.locator("img[src='x']").count() == 0
    screenshot(page, "ogc-items-hostile")
    # The borough's own field: not for anyone, shown to its borough's key.
    page.goto(f"{site.url}/collections/street_furniture/queryables", wait_until="networkidle")
    anonymous = page.locator("[data-queryables]").inner_text()
    assert "status" in anonymous and SECRET_FIELD not in anonymous and "changed_by" not in anonymous
    assert "without an API key" in page.locator(".app-ogc-who").inner_text()
    page.set_extra_http_headers(site.auth("camden"))
    page.goto(f"{site.url}/collections/street_furniture/queryables", wait_until="networkidle")
    camden = page.locator("[data-queryables]").inner_text()
    assert f"extra.{SECRET_FIELD}" in camden and "changed_by" in camden
    assert "borough E09000007" in page.locator(".app-ogc-who").inner_text()


def test_errors_and_jobs_are_pages_too(page, site):
    hostile = "<b>1</b>,2,3"
    answer = page.goto(
        f"{site.url}/collections/street_furniture/items?bbox={hostile}", wait_until="networkidle"
    )
    assert answer.status == 400 and answer.headers["content-type"].startswith("text/html")
    detail = page.locator("[data-detail]").inner_text()
    assert "bbox" in detail and "<b>1</b>" in detail and page.locator("main b").count() == 0
    checked(page, "error", "Bad request")
    answer = page.goto(f"{site.url}/collections/no_such_layer", wait_until="networkidle")
    assert answer.status == 404 and "no_such_layer" in page.locator("[data-detail]").inner_text()
    # A job: its status page needs the key that made it; with it, status, progress and links.
    report = site.client.post(
        "/coverage/reports", json={"area": {"boroughs": ["E09000001"]}}, headers=site.auth("camden")
    )
    assert report.status_code == 201, report.text
    job = report.json()["id"]
    answer = page.goto(f"{site.url}/jobs/{job}", wait_until="networkidle")
    assert answer.status == 401 and "needs an API key" in page.locator("main").inner_text()
    deadline = time.monotonic() + 60
    while site.client.get(f"/jobs/{job}", headers=site.auth("camden")).json()["status"] != "successful":
        assert time.monotonic() < deadline, "the report did not finish"
        time.sleep(0.2)
    page.set_extra_http_headers(site.auth("camden"))
    page.goto(f"{site.url}/jobs/{job}", wait_until="networkidle")
    assert "successful" in page.locator("[data-status]").inner_text()
    assert page.locator("#job-progress").get_attribute("value") == "100"
    assert page.get_by_role("link", name="The job's results").count() == 1
    checked(page, "job", f"Job {job}")
