"""Pages under their Content-Security-Policy, in Chromium: nothing blocked, nothing fetched from outside."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def visit(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    messages: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200
    return page, messages, requests


def test_the_api_docs_render_offline_under_a_strict_policy(browser, live_server, tmp_path):
    page, messages, requests = visit(browser, f"{live_server}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "connectivity" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() >= 45  # every operation listed
    assert [u for u in requests if not u.startswith(live_server)] == []  # no CDN
    assert not [m for m in messages if "Content Security Policy" in m or "pageerror" in m], messages
    policy = page.evaluate("() => fetch('/docs').then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self' 'nonce-" in policy and "frame-ancestors 'none'" in policy
    shot = tmp_path / "docs.png"
    page.screenshot(path=str(shot))
    shutil.copyfile(shot, Path("/tmp/connectivity-docs.png"))
    page.close()


def test_the_web_map_runs_under_its_policy(browser, live_server):
    page, messages, requests = visit(browser, f"{live_server}/map")
    assert page.evaluate("() => typeof window.connectivityMap") == "object"
    assert not [m for m in messages if "Content Security Policy" in m or "pageerror" in m], messages
    assert [u for u in requests if not (u.startswith(live_server) or u.startswith("data:"))] == []
    # An injected inline script (what a stored XSS would be) does not run.
    ran = page.evaluate(
        """() => new Promise((done) => {
            window.__injected = false;
            const el = document.createElement('div');
            el.innerHTML = '<img src="x" onerror="window.__injected = true">';
            document.body.appendChild(el);
            setTimeout(() => done(window.__injected), 500);
        })"""
    )
    assert ran is False
    page.close()
