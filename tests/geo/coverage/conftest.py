"""Fixtures of the coverage tests: the settings, and requests built and resolved with them."""

from __future__ import annotations

import pytest

from geo.core.settings import CoverageSettings
from geo.coverage.request import parse_request
from geo.coverage.sources import resolve_area


@pytest.fixture(scope="session")
def coverage_settings():
    return CoverageSettings()


@pytest.fixture
def ask(coverage_settings):
    """``ask(conn, body)``: the request of a JSON body, its boroughs read on ``conn``."""

    def build(conn, body):
        return resolve_area(conn, parse_request(body, coverage_settings))

    return build
