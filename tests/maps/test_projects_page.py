"""/app/projects in Chromium: Pipeline projects on a map and in a table, filters in the URL, unplaced for admins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from browser import axe_violations, screenshot, until
from servers import serving

from geo.core.settings import DatabaseSettings, Settings

pytestmark = pytest.mark.browser
FIXTURES = Path(__file__).parent.parent / "fixtures" / "pipeline"
OWNER_EMAIL = "olivia.example@lbbd.gov.uk"  # a project owner in the fixtures: personal data


@pytest.fixture(scope="module")
def site(isolated: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """The isolated database with the Pipeline fixtures imported, served under uvicorn."""
    for name in ("projects.json", "PipelineReports_locations.csv"):
        sent = isolated.client.post(
            "/pipeline/imports",
            files={"file": (name, (FIXTURES / name).read_bytes())},
            data={"skip_invalid": "true"},
            headers=isolated.auth("admin"),
        )
        assert sent.status_code == 201, sent.text
    keys = {who: isolated.auth(who)["Authorization"].removeprefix("Bearer ") for who in ("admin", "camden")}
    with serving(Settings(db=DatabaseSettings(url=isolated.app_url))) as url:
        yield SimpleNamespace(url=url, keys=keys, client=isolated.client, auth=isolated.auth)


def loaded(page: Any) -> str:
    return until(
        page,
        "() => /project|No projects/.test(document.querySelector('[data-count]').textContent) && document.querySelector('[data-count]').textContent",
    )


def titles(page: Any) -> list[str]:
    return page.locator("[data-rows] th").all_inner_texts()


def test_everyone_sees_the_projects_without_owners(page, site):
    page.goto(f"{site.url}/app/projects", wait_until="networkidle")
    loaded(page)
    every = site.client.get("/pipeline/projects?limit=1000").json()["projects"]
    assert sorted(titles(page)) == sorted(p["title"] for p in every)
    assert OWNER_EMAIL not in page.content() and "Owner" not in page.locator("[data-head]").inner_text()
    until(page, "() => document.querySelectorAll('#projects-map path.leaflet-interactive').length > 0")
    assert page.locator("[data-unplaced]").is_hidden()  # the unplaced list is for admins
    assert axe_violations(page) == []
    screenshot(page, "projects-public")


def test_filters_change_the_rows_and_stay_in_the_url(page, site):
    page.goto(f"{site.url}/app/projects", wait_until="networkidle")
    loaded(page)
    page.get_by_label("Borough").select_option(label="Camden")
    page.get_by_role("button", name="Show projects").click()
    until(page, "() => location.search.includes('borough=E09000007')")
    loaded(page)
    camden = site.client.get("/pipeline/projects?borough=E09000007&limit=1000").json()["projects"]
    assert camden and sorted(titles(page)) == sorted(p["title"] for p in camden)
    # The link shows the same list to a colleague.
    page.goto(page.url, wait_until="networkidle")
    loaded(page)
    assert page.get_by_label("Borough").input_value() == "E09000007"
    assert sorted(titles(page)) == sorted(p["title"] for p in camden)


def test_admins_see_owners_and_the_unplaced_with_reasons(page, site):
    page.goto(f"{site.url}/app/projects", wait_until="networkidle")
    page.get_by_label("API key").fill(site.keys["admin"])
    page.get_by_role("button", name="Sign in").click()
    until(
        page,
        "() => !document.querySelector('[data-unplaced]').hidden && document.querySelectorAll('[data-unplaced-rows] tr').length",
    )
    loaded(page)
    assert "Owner" in page.locator("[data-head]").inner_text()
    assert OWNER_EMAIL in page.locator("[data-rows]").inner_text()
    unplaced = site.client.get("/pipeline/unplaced", headers=site.auth("admin")).json()["projects"]
    shown = page.locator("[data-unplaced-rows]").inner_text()
    assert unplaced and all(p["title"] in shown and p["unplaced_reason"] in shown for p in unplaced)
    assert axe_violations(page) == []
    screenshot(page, "projects-admin")
