"""Stored coverage reports: their record, state and rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest

from geo.access.principals import Principal
from geo.coverage.demand_layers import OUTSIDE, Layer
from geo.coverage.request import parse_request
from geo.coverage.store import _copy_points, open_report, run_report

CAMDEN_BOX = [528000.0, 181000.0, 530000.0, 183000.0]


def test_stored_reports_keep_their_numbers(db_url, coverage_settings):
    request = parse_request({"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "k": 2}, coverage_settings)
    admin = Principal(role="admin", label="test")
    report_id = open_report(db_url, request, admin)
    run_report(db_url, report_id, request, spacing=coverage_settings.spacing_m)
    with psycopg.connect(db_url) as conn:
        state, summary = conn.execute(
            "SELECT state, summary FROM coverage_reports WHERE id = %s", [report_id]
        ).fetchone()
        hh, n = conn.execute(
            "SELECT sum(households), count(*) FROM coverage_report_points WHERE report_id = %s AND layer = 'cell'",
            [report_id],
        ).fetchone()
    assert state == "done"
    assert n == summary["cells"] == 400
    assert hh == pytest.approx(summary["households"])


def test_points_are_copied_with_their_nulls(conn):
    """The binary COPY of a layer: labels, boroughs outside London, distances beyond reach, no asset."""
    layer = Layer(
        label=np.array(["NW1 1AA", "é ünïcode", "x" * 300], dtype=object),
        xy=np.array([[528000.5, 181000.25], [529000.0, 182000.0], [530000.0, 183000.0]]),
        borough=pd.Categorical(["E09000007", OUTSIDE, "E09000019"]),
        households=np.array([1.5, 0.0, 2.0]),
        area_m2=None,
        distance=np.array([12.5, np.inf, 0.0]),
        asset_id=np.array([7, -1, 2**40]),
    )
    cells = Layer(None, np.array([[528050.0, 181050.0]]), np.array(["E09000007"], dtype=object),
                  np.array([3.0]), np.array([10_000.0]), np.array([np.inf]), np.array([-1]))  # fmt: skip
    report_id = 2**40 + 1  # no report row needed: the points have no foreign key
    _copy_points(conn, report_id, "demand", layer)
    _copy_points(conn, report_id, "cell", cells)
    _copy_points(conn, report_id, "cell", Layer(None, np.empty((0, 2)), np.empty(0), np.empty(0), None))
    rows = conn.execute(
        """SELECT layer, seq, label, x, y, borough_code, households, area_m2, distance_m, asset_id
           FROM coverage_report_points WHERE report_id = %s ORDER BY layer DESC, seq""",
        [report_id],
    ).fetchall()
    conn.rollback()
    assert rows == [
        ("demand", 0, "NW1 1AA", 528000.5, 181000.25, "E09000007", 1.5, None, 12.5, 7),
        ("demand", 1, "é ünïcode", 529000.0, 182000.0, None, 0.0, None, None, None),
        ("demand", 2, "x" * 300, 530000.0, 183000.0, "E09000019", 2.0, None, 0.0, 2**40),
        ("cell", 0, None, 528050.0, 181050.0, "E09000007", 3.0, 10_000.0, None, None),
    ]
