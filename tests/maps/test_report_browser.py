"""report.html in Chromium: opened from disk with the network cut off, printed to A4, and served.

A Camden report is made on the session database through the API, as a person would; its page is
written to a temporary folder and opened from ``file://`` with every request recorded and any
that is not ``file:`` or ``data:`` refused.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser import axe_violations, launch, screenshot, until

pytestmark = pytest.mark.browser

CAMDEN = {"area": {"boroughs": ["E09000007"]}, "k": 5}
#: The A4 page in PostScript points, as Chromium writes it.
A4 = (595.92, 842.88)
HEADINGS = (
    "Coverage of the whole area",
    "Covered share against distance",
    "By borough",
    "Map",
    "Assets to open up first",
    "Largest gaps",
    "Pipeline projects in the area",
    "What was measured",
    "How it was computed",
)


@pytest.fixture(scope="module")
def report(client: Any, auth: Any) -> dict[str, Any]:
    answer = client.post("/coverage/reports", json=CAMDEN, headers=auth("operator"))
    assert answer.status_code == 201 and answer.json()["state"] == "done", answer.text
    record = answer.json()
    priorities = client.get(f"/coverage/reports/{record['id']}/priorities.csv", headers=auth("operator"))
    record["ranks"] = [line.split(",")[0] for line in priorities.text.splitlines()[1:]]
    assert record["ranks"], "the Camden report of the small demo prioritises candidates"
    return record


@pytest.fixture(scope="module")
def report_file(client: Any, auth: Any, report: dict[str, Any], tmp_path_factory: Any) -> Path:
    page = client.get(f"/coverage/reports/{report['id']}/report.html", headers=auth("operator"))
    assert page.status_code == 200
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(page.text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as b:
        yield b


class Opened:
    """A tab on the report file: its requests (refused unless file: or data:) and page errors."""

    def __init__(self, browser: Any, path: Path, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(path.as_uri(), wait_until="load")
        until(self.page, "() => document.querySelectorAll('.leaflet-overlay-pane path').length > 0")

    def _route(self, route: Any) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(browser: Any, report_file: Path) -> Iterator[Opened]:
    tab = Opened(browser, report_file, {"width": 1200, "height": 900})
    yield tab
    tab.close()


def test_report_opened_from_disk_draws_its_map_and_loads_nothing(
    opened: Opened, report: dict[str, Any]
) -> None:
    page = opened.page
    assert page.evaluate("() => typeof window.L === 'object' && L.version") == "1.9.3"
    assert opened.errors == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:"))] == []
    assert {u for u in opened.requests if u.startswith("file:")} == {page.url}  # only the page itself
    # The area, the boroughs around it and the gaps are drawn (SVG paths in the overlay pane).
    layers = page.evaluate("() => Object.keys(window.connectivityReport.layers)")
    assert any(name.startswith("Within") for name in layers) and any(n.startswith("Gaps") for n in layers)
    assert page.locator(".leaflet-overlay-pane path").count() >= 1 + report["summary"]["gaps"]["count"]
    assert "Camden" in page.locator(".report-borough-label").all_inner_texts()
    # The priorities drawn on the map carry the numbers of the table beside it.
    assert page.locator(".report-priority-marker").all_inner_texts() == report["ranks"]
    table_ranks = page.locator("table.priorities tbody tr th").all_inner_texts()
    assert table_ranks == report["ranks"]
    box = page.locator("#report-map").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 400
    inside = page.evaluate(
        """() => { const m = document.getElementById('report-map').getBoundingClientRect();
                   return Array.from(document.querySelectorAll('.report-priority-marker')).every(p => {
                     const r = p.getBoundingClientRect();
                     return r.left >= m.left && r.right <= m.right && r.top >= m.top && r.bottom <= m.bottom; }); }"""
    )
    assert inside, "every priority is drawn within the map's view"
    assert axe_violations(page) == []
    shot = screenshot(page, "report")
    assert shot.stat().st_size > 50_000
    page.locator("#report-map").screenshot(path=str(shot.with_name("report-map.png")))


def test_report_reads_as_sentences_and_tables(opened: Opened, report: dict[str, Any]) -> None:
    text = opened.page.inner_text("body")
    for heading in HEADINGS:
        assert heading in text, heading
    assert not re.search(r"\{'\w+': ", text), "no Python dict is printed"
    assert "Timings (s)" not in text and "Assets: {" not in text
    assert "Points (street furniture, public buildings)" in text and "Lines (ducts)" in text
    rows = opened.page.locator("table.priorities tbody tr")
    assert rows.count() == len(report["ranks"])
    for i in range(rows.count()):
        cells = rows.nth(i).locator("th, td").all_inner_texts()
        assert re.search(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}", cells[5]), cells  # a postcode
        assert re.fullmatch(r"[A-Z][A-Za-z ,.&-]+", cells[4]), cells  # a borough's name
        assert cells[1].strip() and cells[2].strip() not in ("", "–") and float(cells[6].replace(",", "")) > 0
    assert re.search(r"All steps\s+\d+\.\d\d s", text), "the timings are a table in seconds"


def test_report_prints_to_clean_a4_pages(opened: Opened, tmp_path: Path) -> None:
    from pypdf import PdfReader

    pdf = opened.page.pdf(format="A4")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) > 1
    for page in reader.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert abs(width - A4[0]) < 2 and abs(height - A4[1]) < 2
    # NFKC: the PDF's text has the font's ligatures ("ﬁ" for "fi").
    text = unicodedata.normalize("NFKC", "\n".join(page.extract_text() for page in reader.pages))
    for heading in HEADINGS:
        assert heading in text, heading
    assert "Gaps, more than" in text  # the map's legend is printed with it
    (tmp_path / "report.pdf").write_bytes(pdf)


def test_printed_layout_fits_the_page(browser: Any, report_file: Path) -> None:
    # A4's printable width with the print margins (180 mm) in CSS pixels: in print media,
    # nothing is wider and the controls are gone.
    tab = Opened(browser, report_file, {"width": 1200, "height": 900})
    try:
        page = tab.page
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 680, "height": 1000})
        page.wait_for_timeout(200)
        widest = page.evaluate(
            "() => Math.max(...Array.from(document.querySelectorAll('table, svg.chart, figure, dl'))"
            ".map(e => e.getBoundingClientRect().right))"
        )
        assert widest <= 681, widest
        hidden = page.evaluate(
            "() => Array.from(document.querySelectorAll('.leaflet-control-zoom, .leaflet-control-layers'))"
            ".every(e => getComputedStyle(e).display === 'none')"
        )
        assert hidden
        map_box = page.locator("#report-map").bounding_box()
        assert map_box is not None and map_box["width"] <= 681 and 300 < map_box["height"] < 900
        screenshot(page, "report-print")
    finally:
        tab.close()


def test_served_report_runs_under_the_apps_policy(
    browser: Any, live_server: str, keys: dict[str, str], report: dict[str, Any]
) -> None:
    context = browser.new_context(
        viewport={"width": 1200, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {keys['operator']}"},
    )
    try:
        page = context.new_page()
        messages: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        response = page.goto(f"{live_server}/coverage/reports/{report['id']}/report.html", wait_until="load")
        assert response is not None and response.status == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'self' 'nonce-" in policy and "unsafe-eval" not in policy
        until(page, "() => document.querySelectorAll('.leaflet-overlay-pane path').length > 0")
        assert page.locator(".report-priority-marker").all_inner_texts() == report["ranks"]
        assert not [m for m in messages if "Content Security Policy" in m or "pageerror" in m], messages
        assert [u for u in requests if not u.startswith(("data:", f"{live_server}/coverage/reports/"))] == []
    finally:
        context.close()


def test_the_cli_report_opens_from_disk_too(browser: Any, db_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    out = tmp_path / "report.html"
    args = ["coverage", "--borough", "E09000007", "--k", "3", "--out", str(out)]
    # In a thread of its own: the CLI runs an event loop, and Playwright's sync API holds this one's.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(
            CliRunner().invoke, app, args, env={"DATABASE_URL": db_url, "COLUMNS": "200"}
        ).result()
    assert result.exit_code == 0, result.output
    tab = Opened(browser, out, {"width": 1000, "height": 800})
    try:
        assert tab.errors == [] and set(tab.requests) == {out.as_uri()}
        assert tab.page.locator(".report-priority-marker").all_inner_texts() == ["1", "2", "3"]
    finally:
        tab.close()
