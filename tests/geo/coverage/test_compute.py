"""Computing coverage reports: reproducible, exact, and right at the edges."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import shapely

from geo.coverage.compute import compute_report
from geo.coverage.sources import read_assets, wayleave_view_exists

CAMDEN_BOX = [528000.0, 181000.0, 530000.0, 183000.0]


def test_reports_are_reproducible(db_url, conn, ask, coverage_settings):
    request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 50, "k": 5})
    first = compute_report(db_url, request, coverage_settings.spacing_m)
    second = compute_report(db_url, request, coverage_settings.spacing_m)
    assert first.summary == second.summary
    assert first.data_version == second.data_version
    np.testing.assert_array_equal(first.demand.distance, second.demand.distance)
    np.testing.assert_array_equal(first.demand.asset_id, second.demand.asset_id)
    assert first.priorities.equals(second.priorities)
    assert first.gaps.drop(columns="geometry").equals(second.gaps.drop(columns="geometry"))


def test_distances_match_brute_force(db_url, conn, ask, coverage_settings):
    request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 250})
    result = compute_report(db_url, request, coverage_settings.spacing_m)
    assets = read_assets(db_url, request)
    pts, _, lines, _ = assets.qualifying()
    geoms = np.concatenate([shapely.points(pts), lines])
    brute = shapely.distance(shapely.points(result.demand.xy)[:, None], geoms[None, :]).min(axis=1)
    brute[brute > request.reach] = np.inf
    np.testing.assert_allclose(result.demand.distance, brute, atol=1e-6)


def test_an_area_with_no_qualifying_assets(db_url, conn, ask, coverage_settings):
    request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "statuses": ["decommissioned"], "k": 3})
    result = compute_report(db_url, request, coverage_settings.spacing_m)
    assert result.summary["assets"]["qualifying_points"] == 0
    for row in result.summary["whole_area"]:
        assert row["covered_households"] == 0 and row["household_share"] == 0
    assert result.summary["gaps"]["households"] == pytest.approx(result.grid.households.sum())
    assert len(result.priorities) == 3 and (np.diff(result.priorities["gain"]) <= 0).all()


def test_an_area_across_borough_boundaries(db_url, conn, ask, coverage_settings):
    # Around the Camden / Islington / City corner.
    request = ask(conn, {"area": {"bbox": [530000, 181000, 533000, 183000]}, "demand": "grid"})
    result = compute_report(db_url, request, coverage_settings.spacing_m)
    rows = result.summary["boroughs"]
    codes = {r["borough_code"] for r in rows}
    assert {"E09000007", "E09000019"} <= codes
    for threshold in request.thresholds:
        parts = [r for r in rows if r["threshold_m"] == threshold]
        whole = next(r for r in result.summary["whole_area"] if r["threshold_m"] == threshold)
        assert sum(r["households"] for r in parts) == pytest.approx(whole["households"])
        assert sum(r["covered_area_m2"] for r in parts) == pytest.approx(whole["covered_area_m2"])


def test_borough_areas_take_the_boroughs_postcodes(db_url, conn, ask, coverage_settings):
    request = ask(conn, {"area": {"boroughs": ["E09000007", "E09000001"]}})
    result = compute_report(db_url, request, coverage_settings.spacing_m)
    assert set(result.demand.borough) == {"E09000007", "E09000001"}
    assert {r["borough_code"] for r in result.summary["boroughs"]} >= {"E09000007", "E09000001"}


def test_ready_now_counts_only_assets_with_a_signed_wayleave(isolated, ask, coverage_settings):
    with psycopg.connect(isolated.url) as conn:
        if not wayleave_view_exists(conn):
            pytest.skip("no wayleave status view")
        request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "ready_now": True, "k": 0})
        none = compute_report(isolated.url, request, coverage_settings.spacing_m)
        assert none.summary["assets"]["qualifying_points"] == 0
        assert none.data_version["wayleaves"] is not None
        asset_id = conn.execute(
            "SELECT id FROM assets WHERE kind = 'street_furniture' AND status = 'in_service' "
            "AND geom && ST_MakeEnvelope(529000, 182000, 529500, 182500, 27700) ORDER BY id LIMIT 1"
        ).fetchone()[0]
        try:
            site = conn.execute(
                "INSERT INTO wayleave_sites (borough_code, name) VALUES ('E09000007', 'test') RETURNING id"
            ).fetchone()[0]
            conn.execute("INSERT INTO wayleave_site_assets VALUES (%s, %s)", [site, asset_id])
            wayleave = conn.execute(
                """INSERT INTO wayleaves (site_id, borough_code, operator, template, status, status_since)
                   VALUES (%s, 'E09000007', 'TestNet', 'standardised', 'signed', now()) RETURNING id""",
                [site],
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO wayleave_events (wayleave_id, seq, at, by, to_status) VALUES (%s, 1, now(), 'test', 'signed')",
                [wayleave],
            )
            conn.commit()
        except psycopg.Error as exc:
            pytest.skip(f"cannot make a signed wayleave directly: {exc}")
        some = compute_report(isolated.url, request, coverage_settings.spacing_m)
        assert some.summary["assets"]["qualifying_points"] == 1
        assert set(some.demand.asset_id[some.demand.asset_id >= 0]) == {asset_id}


def test_report_gaps_without_polygons_match_the_stored_ones(db_url, conn, ask, coverage_settings):
    request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 50, "k": 0})
    result = compute_report(db_url, request, coverage_settings.spacing_m)
    assert result.gap_table.geometry.isna().all()
    assert result.gaps.drop(columns="geometry").equals(result.gap_table.drop(columns="geometry"))
    assert (result.gaps.geom_type == "Polygon").sum() + (
        result.gaps.geom_type == "MultiPolygon"
    ).sum() == len(result.gaps)
    np.testing.assert_allclose(result.gaps.area, result.gaps["area_m2"])
