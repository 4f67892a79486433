"""Pages in a real browser: Debian's Chromium driven by Playwright, axe-core for WCAG 2.2 AA.

``launch()`` starts the browser (never ``playwright install``: the system's Chromium is the one the
setup installs); ``axe_violations(page)`` runs the axe-core the setup fetched from npm inside the
page and returns the serious and critical violations; ``screenshot(page, name)`` keeps a PNG in
``SCREENSHOTS`` for a person to look at.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "maps/static/vendor/axe-core-4.14.1/axe.min.js"
#: Where the browser tests keep their screenshots (a CI artefact; look at them).
SCREENSHOTS = ROOT / "tests/artifacts/screenshots"
#: The rules of WCAG 2.0, 2.1 and 2.2 at levels A and AA.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@contextlib.contextmanager
def launch() -> Iterator[Any]:
    """A headless Chromium (the system's); fails with the fix when it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install-system-packages installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """The WCAG 2.2 AA violations axe-core finds on ``page`` with one of ``impacts``, one line each.

    axe is evaluated through the DevTools protocol, so the page's Content-Security-Policy (which
    forbids inline and injected scripts) stays as it is.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text() + "\n;true")
    found = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""",
        WCAG_AA,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['nodes'])}"
        for v in found
        if v["impact"] in impacts
    ]


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``SCREENSHOTS/<name>.png`` and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def until(page: Any, expression: str, arg: Any = None, timeout: float = 60.0) -> Any:
    """Poll ``expression`` in the page until it is truthy; its value.

    (Playwright's ``wait_for_function`` evaluates strings with ``eval``, which the pages'
    Content-Security-Policy forbids.)
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {expression[:80]}"
        page.wait_for_timeout(100)
