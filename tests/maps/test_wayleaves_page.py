"""``/app/wayleaves`` in Chromium: the board by status per role, filters in the URL, a status change
from the board (by keyboard too), the stale-version 409 shown, the KPI charts and their CSV, several statuses at once and "Show more".

The wayleaves are created through the API in a database of this module's own (``isolated``),
served by uvicorn; the events are backdated (admin imports) so that clocks run and some are overdue.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from browser import axe_violations, screenshot, until
from servers import serving

from geo import access
from geo.core.settings import DatabaseSettings, Settings

pytestmark = pytest.mark.browser
CAMDEN, HACKNEY = "E09000007", "E09000012"
ALPHA, BETA = "Alpha Fibre", "Beta Networks"
CAMDEN_CONTACT, HACKNEY_CONTACT = "Jane Landlord", "Hackney Estates Office"
SECRET = "secret note about the caretaker"
#: name, borough, operator, [(status, days ago)] (the first is the status it is created in), extra fields.
PLAN: list[tuple[str, str, str, list[tuple[str, int]], dict[str, str]]] = [
    ("Camden Town Hall annexe", CAMDEN, ALPHA, [("identified", 60)],
     {"contact_name": CAMDEN_CONTACT, "contact_email": "jane@example.org", "notes": SECRET}),
    ("Kentish Town lamp columns", CAMDEN, BETA, [("requested", 3)], {"reference": "CAM-WL-2"}),
    ("Hackney estate block", HACKNEY, ALPHA,
     [("identified", 100), ("requested", 90), ("survey_scheduled", 80), ("surveyed", 70), ("terms_issued", 40)],
     {"contact_name": HACKNEY_CONTACT, "contact_phone": "020 7946 0001"}),
    ("Dalston duct section", HACKNEY, BETA,
     [("requested", 120), ("survey_scheduled", 110), ("surveyed", 100), ("terms_issued", 90),
      ("approved", 70), ("signed", 60)], {}),
    ("Camden library roof", CAMDEN, ALPHA, [("requested", 50), ("on_hold", 10)], {}),
    ("Regent's Park lamp", CAMDEN, BETA,
     [("requested", 200), ("survey_scheduled", 190), ("surveyed", 180), ("terms_issued", 170),
      ("approved", 160), ("signed", 150), ("installing", 100), ("live", 20)], {}),
    ("Old exchange", HACKNEY, ALPHA, [("requested", 400), ("refused", 300)], {}),
    ("Camden Road flats", CAMDEN, ALPHA, [("requested", 60), ("code_notice_served", 5)], {}),
]  # fmt: skip


def ago(days: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days, hours=1)).isoformat()


def operator_key(db_url: str, name: str) -> str:
    """A new operator key bound to ``name``."""

    async def make() -> str:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            new = await access.create_key(c, "operator", label=f"{name} key", actor=access.SYSTEM)
            await access.bind_operator(c, new.id, name, actor=access.SYSTEM)
            return new.key

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may run an event loop in this thread
        return pool.submit(asyncio.run, make()).result()


@pytest.fixture(scope="module")
def site(isolated: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """The isolated database with the wayleaves of PLAN, served under uvicorn; keys per role."""
    with psycopg.connect(isolated.url) as c:
        assets = c.execute(
            """SELECT borough_code, array_agg(id ORDER BY id) FROM assets
               WHERE kind = 'street_furniture' AND borough_code IN (%s, %s) AND retired_at IS NULL
               GROUP BY borough_code""",
            [CAMDEN, HACKNEY],
        ).fetchall()
    free = {code: list(ids) for code, ids in assets}
    admin = isolated.auth("admin")
    made = {}
    for name, borough, operator, steps, extra in PLAN:
        (first, days), *rest = steps
        body = {"operator": operator, "asset_ids": [free[borough].pop(0)], "site_name": name,
                "status": "requested" if first == "requested" else "identified", "at": ago(days), **extra}  # fmt: skip
        sent = isolated.client.post("/wayleaves", json=body, headers=admin)
        assert sent.status_code == 201, sent.text
        row = sent.json()
        for to, days in rest:
            moved = isolated.client.post(
                f"/wayleaves/{row['id']}/transitions",
                json={"to": to, "expected_version": row["version"], "at": ago(days), "note": f"to {to}"},
                headers=admin,
            )
            assert moved.status_code == 200, moved.text
            row = moved.json()
        made[name] = row
    # An edit of the details, for the /changes panel.
    first = made["Camden Town Hall annexe"]
    edited = isolated.client.patch(
        f"/wayleaves/{first['id']}", json={"reference": "CAM-WL-1", "expected_version": first["version"]},
        headers=admin,
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    keys = {
        who: isolated.auth(who)["Authorization"].removeprefix("Bearer ")
        for who in ("admin", "camden", "hackney")
    }
    keys["unbound"] = isolated.auth("operator")["Authorization"].removeprefix("Bearer ")
    keys["operator"] = operator_key(isolated.url, ALPHA)
    with serving(Settings(db=DatabaseSettings(url=isolated.app_url))) as url:
        yield SimpleNamespace(url=url, keys=keys, client=isolated.client, made=made, auth=isolated.auth)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def open_board(page: Any, site: SimpleNamespace, who: str, query: str = "") -> None:
    """The page at ``query``, signed in as ``who``, once the rows and the KPIs are drawn."""
    page.goto(f"{site.url}/app/wayleaves{query}", wait_until="networkidle")
    page.get_by_label("API key").fill(site.keys[who])
    page.get_by_role("button", name="Sign in").click()
    drawn(page)


def drawn(page: Any) -> None:
    until(
        page,
        """() => /shown|no wayleaves|could not/i.test(document.querySelector('[data-count]').textContent)
              && /^Overall|could not/.test(document.querySelector('[data-kpi-overall]').textContent)""",
    )


def shown_ids(page: Any) -> list[int]:
    return sorted(
        int(v)
        for v in page.eval_on_selector_all("tr[data-wayleave]", "rs => rs.map(r => r.dataset.wayleave)")
    )


def api_rows(site: SimpleNamespace, who: str, query: str = "") -> list[dict[str, Any]]:
    response = site.client.get(f"/wayleaves{query}", headers=bearer(site.keys[who]))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_without_a_key_the_page_says_one_is_needed(page, site):
    page.goto(f"{site.url}/app/wayleaves", wait_until="networkidle")
    assert page.title() == "Wayleaves – Connectivity for London"
    assert page.get_by_role("heading", name="You need an API key to see wayleaves").is_visible()
    assert page.locator("[data-signed-in]").is_hidden() and page.locator("tr[data-wayleave]").count() == 0
    nav = page.get_by_role("navigation", name="Pages")
    assert nav.get_by_role("link", name="Wayleaves").get_attribute("aria-current") == "page"
    assert axe_violations(page) == []
    screenshot(page, "wayleaves-no-key")


@pytest.mark.parametrize("who", ["admin", "camden", "hackney", "operator", "unbound"])
def test_each_role_sees_what_it_may_and_moves_what_it_may(page, site, who):
    open_board(page, site, who)
    rows = api_rows(site, who)
    assert shown_ids(page) == sorted(r["id"] for r in rows)
    text = page.locator("main").inner_text()
    sees = {"admin": (True, True), "camden": (True, False), "hackney": (False, True)}.get(who, (False, False))
    assert (CAMDEN_CONTACT in text, HACKNEY_CONTACT in text) == sees
    assert SECRET not in text or who in ("admin", "camden")
    headers = page.locator(".app-wl-table thead").first.inner_text() if rows else ""
    assert ("Contact" in headers) == (who in ("admin", "camden", "hackney"))
    # The status can be changed where the API allows it: admins everywhere, boroughs their own.
    movable = sorted(
        r["id"] for r in rows
        if r["allowed_next"] and (who == "admin" or (who, r["borough_code"]) in (("camden", CAMDEN), ("hackney", HACKNEY)))
    )  # fmt: skip
    assert (
        sorted(
            int(i.removeprefix("move-"))
            for i in page.eval_on_selector_all("select[id^=move-]", "s => s.map(x => x.id)")
        )
        == movable
    )
    if who == "operator":
        assert {r["operator"] for r in rows} == {ALPHA} and "you see only Alpha Fibre's wayleaves" in text
    if who == "unbound":
        assert rows == [] and "bound to none, so it sees no wayleaves" in text
    # Every row shows its days in status and its due date; the overdue ones say so in words and an icon.
    for r in rows:
        line = page.locator(f"tr[data-wayleave='{r['id']}']").inner_text()
        assert f"{r['days_in_status']} day" in line
        assert ("Overdue by" in line) == r["overdue"]
    overdue = page.locator(".app-wl-overdue")
    assert overdue.count() == sum(r["overdue"] for r in rows)
    if rows:
        assert overdue.first.locator("svg").count() == 1
    assert axe_violations(page) == []
    screenshot(page, f"wayleaves-{who}")
    if who == "admin":  # signing out leaves nothing of what the key saw in the page
        page.get_by_role("button", name="Sign out").click()
        assert page.get_by_role("heading", name="You need an API key to see wayleaves").is_visible()
        assert CAMDEN_CONTACT not in page.content() and page.locator("tr[data-wayleave]").count() == 0


@pytest.mark.parametrize("who", ["camden", "operator"])
def test_the_details_panel_shows_history_and_edits_as_the_key_may_see_them(page, site, who):
    wayleave = site.made["Camden Town Hall annexe" if who == "camden" else "Hackney estate block"]
    open_board(page, site, who)
    page.get_by_role("button", name=f"Details and history of wayleave {wayleave['id']}").click()
    panel = page.locator(f"#details-{wayleave['id']}")
    until(page, f"() => document.querySelectorAll('#details-{wayleave['id']} table').length >= 1")
    page.wait_for_load_state("networkidle")
    events = site.client.get(f"/wayleaves/{wayleave['id']}/history", headers=bearer(site.keys[who])).json()
    changes = site.client.get(f"/wayleaves/{wayleave['id']}/changes", headers=bearer(site.keys[who])).json()
    tables = panel.locator("table")
    assert tables.nth(0).locator("tbody tr").count() == len(events)
    body = panel.inner_text()
    if who == "camden":
        assert len(changes) == 1 and "Borough reference: – → CAM-WL-1" in body
        assert SECRET in body  # its own borough's notes
        assert page.get_by_role("group", name="Move it from Identified to").is_visible()
    else:
        assert "to requested" not in body and "By" not in tables.nth(0).locator("thead").inner_text()
        assert page.get_by_role("group", name="Move it from").count() == 0
    assert page.evaluate("document.activeElement.tagName") == "H4"
    assert axe_violations(page) == []
    screenshot(page, f"wayleaves-details-{who}")


def test_a_status_change_with_a_note_from_the_details_panel(page, site):
    wayleave = site.made["Camden library roof"]
    assert wayleave["status"] == "on_hold"
    open_board(page, site, "camden")
    page.get_by_role("button", name=f"Details and history of wayleave {wayleave['id']}").click()
    panel = page.locator(f"#details-{wayleave['id']}")
    panel.get_by_role("button", name="Change status").click()  # nothing chosen: the error says so
    assert "Choose the status to move it to" in panel.inner_text()
    link = page.locator("[data-error-summary] a")
    assert link.inner_text() == f"Choose the status to move wayleave {wayleave['id']} to"
    assert link.get_attribute("href") == f"#panel-{wayleave['id']}-to-requested"
    assert axe_violations(page) == []
    panel.get_by_label("Requested").check()  # on hold returns to the status it left
    panel.get_by_label("Note (optional)").fill("The landlord is back from leave")
    panel.get_by_role("button", name="Change status").click()
    until(page, "() => !document.querySelector('[data-done]').hidden")
    events = site.client.get(f"/wayleaves/{wayleave['id']}/history", headers=site.auth("camden")).json()
    assert (events[-1]["from_status"], events[-1]["to_status"]) == ("on_hold", "requested")
    assert events[-1]["note"] == "The landlord is back from leave"


def test_filters_change_the_rows_and_stay_in_the_url(page, site):
    open_board(page, site, "admin")
    page.get_by_label("Borough").select_option(label="Camden")
    page.get_by_role("button", name="Show wayleaves").click()
    until(page, "() => location.search === '?borough=E09000007'")
    drawn(page)
    assert shown_ids(page) == sorted(r["id"] for r in api_rows(site, "admin", "?borough=E09000007"))
    page.get_by_label("Operator").select_option(ALPHA)
    page.get_by_label("Only overdue").check()
    page.get_by_role("button", name="Show wayleaves").click()
    until(page, "() => location.search.includes('overdue=true')")
    drawn(page)
    query = "?borough=E09000007&operator=Alpha+Fibre&overdue=true"
    assert page.evaluate("location.search") == query
    expected = sorted(r["id"] for r in api_rows(site, "admin", query))
    assert expected and shown_ids(page) == expected
    assert axe_violations(page) == []
    screenshot(page, "wayleaves-filtered")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download these wayleaves (CSV)").click()
    listed = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(int(r["id"]) for r in listed) == expected and CAMDEN_CONTACT in {
        r["contact_name"] for r in listed
    }
    # The link shows a colleague the same board; Back goes to the previous one.
    page.goto(page.url, wait_until="networkidle")
    drawn(page)
    assert (
        page.get_by_label("Operator").input_value() == ALPHA
        and page.get_by_label("Only overdue").is_checked()
    )
    assert shown_ids(page) == expected
    page.go_back()
    until(page, "() => location.search === '?borough=E09000007'")
    drawn(page)
    assert page.get_by_label("Operator").input_value() == ""
    assert shown_ids(page) == sorted(r["id"] for r in api_rows(site, "admin", "?borough=E09000007"))


def test_a_status_change_from_the_board_by_keyboard_only(page, site):
    wayleave = site.made["Camden Road flats"]
    assert wayleave["status"] == "code_notice_served"
    open_board(page, site, "camden")
    target = f"move-{wayleave['id']}"
    page.locator("body").focus()
    for _ in range(200):  # from the top of the page, Tab by Tab, to the row's status control
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == target:
            break
    assert page.evaluate("document.activeElement.id") == target
    page.keyboard.press("ArrowDown")  # Choose… → Tribunal (the first status allowed next)
    assert page.evaluate("document.activeElement.value") == "tribunal"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == f"Move wayleave {wayleave['id']}"
    page.keyboard.press("Enter")
    until(page, "() => !document.querySelector('[data-done]').hidden")
    drawn(page)
    message = page.locator("[data-done]").inner_text()
    assert (
        f"Wayleave {wayleave['id']} “Camden Road flats” moved from Code notice served to Tribunal" in message
    )
    now = site.client.get(f"/wayleaves/{wayleave['id']}", headers=site.auth("admin")).json()
    assert now["status"] == "tribunal" and now["version"] == wayleave["version"] + 1
    assert page.locator(f"[data-group='tribunal'] tr[data-wayleave='{wayleave['id']}']").count() == 1
    assert page.evaluate("document.activeElement.dataset.done") == ""  # focus on the message
    assert axe_violations(page) == []
    screenshot(page, "wayleaves-moved")


def test_a_change_made_meanwhile_is_a_409_shown_with_what_changed(page, site):
    wayleave = site.made["Kentish Town lamp columns"]
    open_board(page, site, "admin")
    row = page.locator(f"tr[data-wayleave='{wayleave['id']}']")
    assert "Requested" in page.locator("[data-group='requested']").inner_text()
    # Someone else moves it through the API after the page read it.
    current = site.client.get(f"/wayleaves/{wayleave['id']}", headers=site.auth("camden")).json()
    moved = site.client.post(
        f"/wayleaves/{wayleave['id']}/transitions",
        json={"to": "survey_scheduled", "expected_version": current["version"]},
        headers=site.auth("camden"),
    )
    assert moved.status_code == 200, moved.text
    row.get_by_label("Move to").select_option(label="Refused")
    row.get_by_role("button", name=f"Move wayleave {wayleave['id']}").click()
    summary = page.locator("[data-error-summary]")
    until(page, "() => !document.querySelector('[data-error-summary]').hidden")
    text = summary.inner_text()
    assert f"changed since you loaded the board: it is now at version {current['version'] + 1}" in text
    assert "your change to Refused was not made" in text
    assert "Status: Requested → Survey scheduled" in text
    assert page.evaluate("document.activeElement.dataset.errorSummary") == ""
    assert "Not moved: it changed since you loaded the board" in row.inner_text()
    assert (
        site.client.get(f"/wayleaves/{wayleave['id']}", headers=site.auth("admin")).json()["status"]
        == "survey_scheduled"
    )
    assert axe_violations(page) == []
    screenshot(page, "wayleaves-stale-409")
    # Reload: the row is where it is now, and can be moved from there.
    page.get_by_role("button", name="Reload the board").click()
    until(
        page,
        f"() => document.querySelector(\"[data-group='survey_scheduled'] tr[data-wayleave='{wayleave['id']}']\")",
    )
    assert summary.is_hidden()


def test_the_kpi_charts_have_labelled_bars_and_the_csv_downloads(page, site):
    open_board(page, site, "admin")
    kpis = site.client.get("/wayleaves/kpis", headers=site.auth("admin")).json()
    names = {CAMDEN: "Camden", HACKNEY: "Hackney"}
    for scope, groups, name in (
        ("borough", kpis["by_borough"], lambda g: names[g["borough_code"]]),
        ("operator", kpis["by_operator"], lambda g: g["operator"]),
    ):
        bars = page.eval_on_selector_all(
            f"svg[data-chart='{scope}'] g.app-wl-bar",
            """gs => gs.map(g => ({name: g.dataset.name, total: +g.dataset.total, overdue: +g.dataset.overdue,
                    label: g.querySelector('.app-wl-bar-name').textContent,
                    value: g.querySelector('.app-wl-bar-value').textContent,
                    width: +g.querySelector('.app-wl-bar-on-time').getAttribute('width')
                         + +g.querySelector('.app-wl-bar-overdue').getAttribute('width')}))""",
        )
        assert sorted((b["name"], b["total"], b["overdue"]) for b in bars) == sorted(
            (name(g), g["total"], g["overdue"]) for g in groups
        )
        assert all(b["label"] == b["name"] and b["value"].startswith(str(b["total"])) for b in bars)
        widest = max(bars, key=lambda b: b["total"])
        assert all(b["width"] <= widest["width"] and b["width"] > 0 for b in bars)
        table = page.locator(f"[data-kpi-table='{scope}'] tbody tr")
        assert table.count() == len(groups)
        for g in groups:
            cells = table.filter(has_text=name(g)).first.locator("td").all_inner_texts()
            assert cells[:3] == [str(g["total"]), str(g["overdue"]), str(g["signed"])]
    overall = kpis["overall"]
    assert (
        page.locator("[data-kpi-overall]")
        .inner_text()
        .startswith(f"Overall: {overall['total']} wayleaves, {overall['overdue']} overdue")
    )
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the KPIs (CSV)").click()
    assert download.value.suggested_filename.startswith("wayleave-kpis-")
    got = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    expected = site.client.get("/wayleaves/kpis?format=csv", headers=site.auth("admin")).text
    assert got == list(csv.reader(io.StringIO(expected)))
    assert got[0][:3] == ["scope", "key", "total"]
    assert len(got) == 2 + len(kpis["by_borough"]) + len(kpis["by_operator"])  # header, overall, groups
    page.locator("#kpi-heading").scroll_into_view_if_needed()
    screenshot(page, "wayleaves-kpis", full_page=False)


def statuses_shown(page: Any) -> set[str]:
    return set(page.eval_on_selector_all("[data-group]", "gs => gs.map(g => g.dataset.group)"))


def test_several_statuses_at_once_by_ticking_them(page, site):
    open_board(page, site, "admin")
    page.locator("#filter-status-requested").check()
    page.locator("#filter-status-signed").focus()
    page.keyboard.press("Space")  # the checkboxes work from the keyboard
    page.get_by_role("button", name="Show wayleaves").click()
    until(page, "() => location.search === '?status=requested%2Csigned'")
    drawn(page)
    expected = api_rows(site, "admin", "?status=requested,signed")
    assert {r["status"] for r in expected} == {"requested", "signed"}
    assert shown_ids(page) == sorted(r["id"] for r in expected)
    assert statuses_shown(page) == {"requested", "signed"}
    counts = site.client.get("/wayleaves/counts?status=requested,signed", headers=site.auth("admin"))
    assert f"{counts.json()['total']} wayleave" in page.locator("[data-count]").inner_text()
    assert axe_violations(page) == []
    screenshot(page, "wayleaves-two-statuses")
    page.goto(page.url, wait_until="networkidle")  # the link keeps both ticked
    drawn(page)
    ticked = page.eval_on_selector_all("[data-status-filter] input:checked", "bs => bs.map(b => b.value)")
    assert ticked == ["requested", "signed"]


def test_show_more_loads_the_next_page_of_a_status(page, site):
    """Seven wayleaves of one operator in one status, pages of three: 3, then 6, then all 7."""
    admin = site.auth("admin")
    site_id = site.made["Kentish Town lamp columns"]["site_id"]
    made = []
    for i in range(7):
        body = {"operator": "Gamma Paging", "site_id": site_id, "reference": f"GAM-{i}", "at": ago(10 + i)}
        sent = site.client.post("/wayleaves", json=body, headers=admin)
        assert sent.status_code == 201, sent.text
        made.append(sent.json()["id"])
    open_board(page, site, "admin", "?operator=Gamma+Paging&per_page=3")
    group = page.locator('[data-group="identified"]')
    assert group.locator("h3").inner_text() == "Identified: 7 wayleaves"
    assert shown_ids(page) == made[:3]
    assert group.locator("[data-shown]").inner_text() == "Showing 3 of 7 wayleaves: 4 more to load."
    assert page.locator('[data-status-card="identified"] .app-wl-card-count').inner_text() == "7"
    assert "7 wayleaves match, 0 overdue: 3 shown" in page.locator("[data-count]").inner_text()
    button = group.get_by_role("button", name="Show 3 more Identified wayleaves")
    button.focus()
    page.keyboard.press("Enter")
    until(page, "() => document.querySelectorAll('tr[data-wayleave]').length === 6")
    assert shown_ids(page) == made[:6]
    # Focus moves to the first row added, so a keyboard user carries on from there.
    assert page.evaluate("document.activeElement.closest('tr').dataset.wayleave") == str(made[3])
    group.get_by_role("button", name="Show 1 more Identified wayleaves").click()
    until(page, "() => document.querySelectorAll('tr[data-wayleave]').length === 7")
    assert shown_ids(page) == made
    assert group.locator("[data-shown]").inner_text() == "Showing 7 of 7 wayleaves."
    assert group.get_by_role("button", name="Show").count() == 0
    assert axe_violations(page) == []
    screenshot(page, "wayleaves-show-more")
