"""The web app's shell in Chromium: the home page, the navigation and the sign-in, for every role."""

from __future__ import annotations

from typing import Any

import pytest
from browser import axe_violations, screenshot, until

pytestmark = pytest.mark.browser


def sign_in(page: Any, key: str) -> str:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    return until(page, "() => document.querySelector('.app-signin--in [data-signin-who]')?.textContent")


def test_home_lists_the_pages_and_is_accessible(page, live_server):
    page.goto(f"{live_server}/app/", wait_until="networkidle")
    assert page.title() == "Home – Connectivity for London"
    assert page.get_by_role("heading", level=1).inner_text() == "Connectivity for London"
    nav = page.get_by_role("navigation", name="Pages")
    assert nav.get_by_role("link", name="Map").get_attribute("href") == "/map"
    assert "Not signed in" in page.locator("[data-signin-who]").inner_text()
    # The GOV.UK font and crown are not used: every text is in Arial.
    family = page.evaluate("getComputedStyle(document.querySelector('h1')).fontFamily")
    assert "GDS Transport" not in family and "arial" in family.lower()
    assert axe_violations(page) == []
    screenshot(page, "app-home")
    assert page.errors == []


def test_the_skip_link_is_the_first_stop_of_the_keyboard(page, live_server):
    page.goto(f"{live_server}/app/", wait_until="networkidle")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main-content"


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("admin", "Signed in as admin (GLA), key “test admin”: sees and changes everything"),
        ("camden", "Signed in as borough Camden, key “test camden”: uploads and applies asset files"),
        ("operator", "Signed in as operator (key bound to no operator), key “test operator”: sees its own"),
    ],
)
def test_each_role_sees_who_it_is_and_what_it_may_do(page, live_server, keys, who, expected):
    page.goto(f"{live_server}/app/", wait_until="networkidle")
    assert sign_in(page, keys[who]).startswith(expected)
    assert page.evaluate("sessionStorage.getItem('connectivity.apiKey')") == keys[who]
    # Another page of the app in the same tab is still signed in; signing out forgets the key.
    page.goto(f"{live_server}/app/", wait_until="networkidle")
    assert until(page, "() => document.querySelector('.app-signin--in')") is not None
    assert axe_violations(page) == []
    if who == "camden":
        screenshot(page, "app-home-signed-in")
    page.get_by_role("button", name="Sign out").click()
    assert "Not signed in" in page.locator("[data-signin-who]").inner_text()
    assert page.evaluate("sessionStorage.getItem('connectivity.apiKey')") is None


def test_a_bad_key_is_refused_with_a_reason(page, live_server):
    page.goto(f"{live_server}/app/", wait_until="networkidle")
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("[data-signin-error]")
    until(page, "() => !document.querySelector('[data-signin-error]').hidden")
    assert "that key is not valid" in error.inner_text()
    assert page.evaluate("sessionStorage.getItem('connectivity.apiKey')") is None
    assert axe_violations(page) == []
    screenshot(page, "app-home-bad-key")
