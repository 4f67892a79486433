"""/app/coverage in Chromium: request a report by boroughs or a drawn area, follow it, read it, per role."""

from __future__ import annotations

from typing import Any

import pytest
from browser import axe_violations, screenshot, until

pytestmark = pytest.mark.browser


@pytest.fixture
def page(page: Any, live_server: str) -> Any:
    page.goto(f"{live_server}/app/coverage", wait_until="networkidle")
    return page


def sign_in(page: Any, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    until(
        page,
        "() => document.querySelector('.app-signin--in') && !document.querySelector('[data-with-key]').hidden",
    )


def wait_for_report(page: Any) -> str:
    until(
        page,
        "() => /^(Done|Failed|Interrupted)/.test(document.querySelector('[data-report-state]').textContent)",
    )
    return page.locator("[data-report-state]").inner_text()


def test_without_a_key_the_page_asks_for_one(page):
    assert "Sign in with an API key" in page.locator("[data-needs-key]").inner_text()
    assert page.locator("[data-request-form]").is_hidden()
    assert axe_violations(page) == []
    screenshot(page, "coverage-signed-out")


def test_a_borough_requests_its_report_and_reads_it(page, keys):
    sign_in(page, keys["camden"])
    assert page.get_by_label("Camden").is_checked()  # a borough key starts from its own borough
    page.get_by_label("Gap distance, metres").fill("lots")
    page.get_by_role("button", name="Request the report").click()
    summary = page.locator("[data-error-summary]")
    assert (
        summary.is_visible()
        and "Gap distance, metres must be a number from 1 to 5,000" in summary.inner_text()
    )
    assert page.evaluate("document.activeElement.matches('[data-error-summary]')")
    assert "must be a number" in page.locator("#gap-threshold-error").inner_text()
    assert axe_violations(page) == []
    screenshot(page, "coverage-error")

    page.get_by_label("Gap distance, metres").fill("100")
    page.get_by_role("button", name="Request the report").click()
    assert wait_for_report(page) == "Done."
    assert summary.is_hidden()
    heading = page.locator("#report-heading").inner_text()
    assert heading.startswith("Report ") and heading.endswith(": Camden")
    lead = page.locator("[data-report-body] .govuk-body-l").inner_text()
    assert "households are within 100 m of a usable asset" in lead and "gaps hold" in lead
    rows = page.locator("[data-report-body] table").first.locator("tbody tr")
    assert rows.count() == 3 and rows.first.inner_text().startswith("50 m")
    # The gaps are drawn on the report's map.
    until(page, "() => document.querySelectorAll('#report-map path.leaflet-interactive').length > 0")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download: Sites to open up first (CSV)").click()
    text = open(caught.value.path(), encoding="utf-8").read()
    assert text.splitlines()[0].startswith(("rank", "asset_id", "id")), text[:200]
    # The key's reports list it, newest first.
    until(page, "() => !document.querySelector('[data-list]').hidden")
    first = page.locator("[data-list-rows] tr").first.inner_text()
    assert heading.split(":")[0].removeprefix("Report ") in first and "Camden" in first and "done" in first
    assert axe_violations(page) == []
    screenshot(page, "coverage-report")


def test_an_area_drawn_with_the_keyboard(page, keys):
    sign_in(page, keys["operator"])
    page.get_by_label("An area drawn on the map").check()
    drawing = page.locator("#draw-map")
    until(page, "() => document.querySelectorAll('#draw-map path').length > 0")  # the boroughs are drawn
    add = page.get_by_role("button", name="Add the map's centre")
    for key in ("ArrowLeft", "ArrowUp", "ArrowRight"):
        drawing.focus()
        for _ in range(3):
            page.keyboard.press(key)
            page.wait_for_timeout(300)  # Leaflet animates each 80-pixel pan
        add.focus()
        page.keyboard.press("Enter")
    assert page.locator("[data-draw-status]").inner_text() == "3 corners: the area is ready."
    # Three corners 240 pixels apart: a triangle a person can see, not a dot.
    box = page.locator("#draw-map path.leaflet-interactive").bounding_box()
    assert box and box["width"] > 150 and box["height"] > 150, box
    screenshot(page, "coverage-drawn")
    page.get_by_role("button", name="Request the report").click()
    assert wait_for_report(page) == "Done."
    assert page.locator("#report-heading").inner_text().endswith(": a drawn area")
    assert axe_violations(page) == []


def test_each_key_lists_only_its_own_reports(page, keys):
    sign_in(page, keys["hackney"])
    until(
        page,
        "() => !document.querySelector('[data-list]').hidden || !document.querySelector('[data-list-empty]').hidden",
    )
    listed = page.locator("[data-list-rows]").inner_text()
    assert "test camden" not in listed and "test operator" not in listed
