"""The browser of the page tests: one Chromium per module, a fresh tab (and context) per test.

``page`` is 1200 × 900, takes downloads, waits up to 60 s and records the page's script errors
in ``page.errors``; a test fails if any were thrown. A module narrows it by defining its own
``page`` fixture that asks for this one (to open its URL first, for example).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser import launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.errors = []  # type: ignore[attr-defined]
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))  # type: ignore[attr-defined]
    yield tab
    assert tab.errors == [], f"the page threw: {tab.errors}"  # type: ignore[attr-defined]
    context.close()
