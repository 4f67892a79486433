"""Coverage report orchestration: areas, asset reading, reproducibility, edge cases."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import shapely

from geo.access.principals import Principal
from geo.coverage import reports
from geo.reference.model import load_model

CAMDEN_BOX = [528000.0, 181000.0, 530000.0, 183000.0]


def test_bbox_in_wgs84_and_27700_give_the_same_place():
    _, bng = reports.parse_area({"bbox": CAMDEN_BOX})
    lon0, lat0 = reports._TO_WGS84.transform(CAMDEN_BOX[0], CAMDEN_BOX[1])
    lon1, lat1 = reports._TO_WGS84.transform(CAMDEN_BOX[2], CAMDEN_BOX[3])
    normalised, wgs = reports.parse_area({"bbox": [lon0, lat0, lon1, lat1]})
    assert normalised["crs"] == "EPSG:4326"
    assert shapely.Point(529000, 182000).within(wgs)
    # The National Grid is turned about 1.5° from the meridians here, so the boxes differ a little.
    assert wgs.intersection(bng).area / bng.area > 0.95


def test_multipolygon_in_either_crs_with_explicit_or_guessed_crs():
    squares = [shapely.box(528000, 181000, 529000, 182000), shapely.box(531000, 181000, 532000, 182000)]
    multi = shapely.MultiPolygon(squares)
    geojson = shapely.geometry.mapping(multi)
    normalised, geometry = reports.parse_area({"geometry": geojson})
    assert normalised["crs"] == "EPSG:27700" and geometry.area == pytest.approx(2e6)
    as_wgs = shapely.transform(
        multi, lambda xy: np.column_stack(reports._TO_WGS84.transform(xy[:, 0], xy[:, 1]))
    )
    for area in ({"geometry": shapely.geometry.mapping(as_wgs)}, {**shapely.geometry.mapping(as_wgs)}):
        _, back = reports.parse_area(area)
        assert back.geom_type == "MultiPolygon" and back.area == pytest.approx(2e6, rel=1e-3)
    _, explicit = reports.parse_area({"geometry": shapely.geometry.mapping(as_wgs), "crs": "OGC:CRS84"})
    assert explicit.area == pytest.approx(2e6, rel=1e-3)


@pytest.mark.parametrize(
    ("area", "field"),
    [
        ({}, "exactly one"),
        ({"bbox": [530000, 181000, 528000, 183000]}, "area.bbox"),
        ({"bbox": [5e6, 5e6, 6e6, 6e6]}, "area.bbox"),
        ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, "area.geometry"),
        ({"geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "area.geometry"),
        ({"boroughs": []}, "area.boroughs"),
        ({"boroughs": ["camden"]}, "area.boroughs"),
        ({"bbox": CAMDEN_BOX, "crs": "EPSG:3857"}, "area.crs"),
    ],
)
def test_bad_areas_name_the_field(area, field):
    with pytest.raises(reports.InvalidArea, match=field):
        reports.parse_area(area)


def test_equal_requests_normalise_equal():
    a = reports.parse_request(
        {"area": {"boroughs": ["e09000012", "E09000007"]}, "thresholds": [200, 50, 100]}
    )
    b = reports.parse_request(
        {
            "area": {"boroughs": ["E09000007", "E09000012"]},
            "kinds": ["duct", "street_furniture", "public_building"],
        }
    )
    assert a.parameters() == b.parameters()
    assert a.parameters()["statuses"] == sorted(load_model().usable_statuses)
    assert a.gap_threshold == 100.0


def _request(conn, body):
    return reports.resolve_area(conn, reports.parse_request(body))


def test_assets_read_match_sql_counts(db_url, conn):
    body = {
        "area": {"bbox": CAMDEN_BOX},
        "kinds": ["street_furniture", "duct"],
        "statuses": ["in_service"],
        "radius": 50,
    }
    request = _request(conn, body)
    assets = reports.read_assets(db_url, request)
    x0, y0, x1, y1 = CAMDEN_BOX
    r = request.reach + 1
    box = "ST_MakeEnvelope(%s, %s, %s, %s, 27700)"
    params = [x0 - r, y0 - r, x1 + r, y1 + r]
    (q,) = conn.execute(
        f"SELECT count(*) FROM assets WHERE retired_at IS NULL AND kind = 'street_furniture' AND status = 'in_service' AND geom && {box}",
        params,
    ).fetchone()
    (c,) = conn.execute(
        f"""SELECT count(*) FROM assets WHERE retired_at IS NULL AND kind = 'street_furniture'
            AND status NOT IN ('in_service', 'removed', 'decommissioned', 'abandoned') AND geom && {box}""",
        params,
    ).fetchone()
    (d,) = conn.execute(
        f"SELECT count(*) FROM assets WHERE retired_at IS NULL AND kind = 'duct' AND status = 'in_service' AND geom && {box}",
        params,
    ).fetchone()
    counts = assets.counts()
    assert q > 0 and counts["qualifying_points"] == q
    assert counts["candidate_points"] == c
    assert counts["qualifying_lines"] == d
    assert (np.diff(assets.point_ids) > 0).all()
    # The coordinates are the assets' own.
    some = int(assets.point_ids[0])
    x, y = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE id = %s", [some]).fetchone()
    assert assets.points_xy[0].tolist() == [x, y]


def test_subtype_and_borough_filters(db_url, conn):
    request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "kinds": ["street_furniture"], "subtypes": ["bus_stop"],
                              "asset_boroughs": ["E09000007"]})  # fmt: skip
    assets = reports.read_assets(db_url, request)
    ids = assets.point_ids.tolist()
    rows = conn.execute(
        "SELECT DISTINCT subtype, borough_code FROM assets WHERE id = ANY(%s)", [ids]
    ).fetchall()
    assert ids and set(rows) == {("bus_stop", "E09000007")}


def test_reports_are_reproducible(db_url, conn):
    request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 50, "k": 5})
    first = reports.compute_report(db_url, request)
    second = reports.compute_report(db_url, request)
    assert first.summary == second.summary
    assert first.data_version == second.data_version
    np.testing.assert_array_equal(first.demand.distance, second.demand.distance)
    np.testing.assert_array_equal(first.demand.asset_id, second.demand.asset_id)
    assert first.priorities.equals(second.priorities)
    assert first.gaps.drop(columns="geometry").equals(second.gaps.drop(columns="geometry"))


def test_distances_match_brute_force(db_url, conn):
    request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 250})
    result = reports.compute_report(db_url, request)
    assets = reports.read_assets(db_url, request)
    pts, _, lines, _ = assets.qualifying()
    geoms = np.concatenate([shapely.points(pts), lines])
    brute = shapely.distance(shapely.points(result.demand.xy)[:, None], geoms[None, :]).min(axis=1)
    brute[brute > request.reach] = np.inf
    np.testing.assert_allclose(result.demand.distance, brute, atol=1e-6)


def test_an_area_with_no_qualifying_assets(db_url, conn):
    request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "statuses": ["decommissioned"], "k": 3})
    result = reports.compute_report(db_url, request)
    assert result.summary["assets"]["qualifying_points"] == 0
    for row in result.summary["whole_area"]:
        assert row["covered_households"] == 0 and row["household_share"] == 0
    assert result.summary["gaps"]["households"] == pytest.approx(result.grid.households.sum())
    assert len(result.priorities) == 3 and (np.diff(result.priorities["gain"]) <= 0).all()


def test_an_area_across_borough_boundaries(db_url, conn):
    # Around the Camden / Islington / City corner.
    request = _request(conn, {"area": {"bbox": [530000, 181000, 533000, 183000]}, "demand": "grid"})
    result = reports.compute_report(db_url, request)
    rows = result.summary["boroughs"]
    codes = {r["borough_code"] for r in rows}
    assert {"E09000007", "E09000019"} <= codes
    for threshold in request.thresholds:
        parts = [r for r in rows if r["threshold_m"] == threshold]
        whole = next(r for r in result.summary["whole_area"] if r["threshold_m"] == threshold)
        assert sum(r["households"] for r in parts) == pytest.approx(whole["households"])
        assert sum(r["covered_area_m2"] for r in parts) == pytest.approx(whole["covered_area_m2"])


def test_borough_areas_take_the_boroughs_postcodes(db_url, conn):
    request = _request(conn, {"area": {"boroughs": ["E09000007", "E09000001"]}})
    result = reports.compute_report(db_url, request)
    assert set(result.demand.borough) == {"E09000007", "E09000001"}
    assert {r["borough_code"] for r in result.summary["boroughs"]} >= {"E09000007", "E09000001"}


def test_ready_now_counts_only_assets_with_a_signed_wayleave(isolated):
    with psycopg.connect(isolated.url) as conn:
        if not reports.wayleave_view_exists(conn):
            pytest.skip("no wayleave status view")
        request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "ready_now": True, "k": 0})
        none = reports.compute_report(isolated.url, request)
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
        some = reports.compute_report(isolated.url, request)
        assert some.summary["assets"]["qualifying_points"] == 1
        assert set(some.demand.asset_id[some.demand.asset_id >= 0]) == {asset_id}


def test_stored_reports_keep_their_numbers(db_url):
    request = reports.parse_request({"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "k": 2})
    admin = Principal(role="admin", label="test")
    report_id = reports.open_report(db_url, request, admin)
    reports.run_report(db_url, report_id, request)
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


def test_the_asset_index_cache_is_reused_and_sees_new_assets(isolated):
    """A warm report reuses the cached index; inserting an asset changes the key, and the next report sees it."""
    with psycopg.connect(isolated.url) as conn:
        request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 250, "k": 0})
    reports.ASSET_INDEXES.clear()
    first = reports.compute_report(isolated.url, request)
    assert (reports.ASSET_INDEXES.hits, reports.ASSET_INDEXES.misses) == (0, 1)
    again = reports.compute_report(isolated.url, request)
    assert reports.ASSET_INDEXES.hits == 1
    np.testing.assert_array_equal(first.demand.distance, again.demand.distance)
    assert first.summary == again.summary and first.data_version == again.data_version

    # A new in-service asset exactly on the cell farthest from any asset.
    cell = int(np.argmax(np.where(np.isfinite(first.demand.distance), first.demand.distance, 1e9)))
    x, y = first.demand.xy[cell]
    with psycopg.connect(isolated.url) as conn:
        (new_id,) = conn.execute(
            """INSERT INTO assets (borough_code, kind, subtype, source_id, status, geom)
               VALUES ('E09000007', 'street_furniture', 'bus_stop', 'cache-test', 'in_service',
                       ST_SetSRID(ST_MakePoint(%s, %s), 27700)) RETURNING id""",
            [float(x), float(y)],
        ).fetchone()
    try:
        seen = reports.compute_report(isolated.url, request)
        assert reports.ASSET_INDEXES.misses == 2
        assert seen.data_version["assets"] > first.data_version["assets"]
        assert seen.demand.distance[cell] == 0 and seen.demand.asset_id[cell] == new_id
        assert seen.summary["assets"]["qualifying_points"] == first.summary["assets"]["qualifying_points"] + 1
        # Still what a brute force over the database's assets gives.
        pts, _, lines, _ = reports.read_assets(isolated.url, request).qualifying()
        geoms = np.concatenate([shapely.points(pts), lines])
        brute = shapely.distance(shapely.points(seen.demand.xy)[:, None], geoms[None, :]).min(axis=1)
        brute[brute > request.reach] = np.inf
        np.testing.assert_allclose(seen.demand.distance, brute, atol=1e-6)
    finally:
        with psycopg.connect(isolated.url) as conn:
            conn.execute("DELETE FROM assets WHERE id = %s", [new_id])
    gone = reports.compute_report(isolated.url, request)
    np.testing.assert_array_equal(gone.demand.distance, first.demand.distance)
    assert gone.summary["assets"] == first.summary["assets"]


def test_the_asset_index_cache_is_bounded():
    cache: reports.ProcessCache[str] = reports.ProcessCache(maxsize=2)
    for key in "abc":
        cache.put(key, key)
    assert len(cache) == 2 and cache.get("a") is None
    assert cache.get("b") == "b"
    cache.put("d", "d")
    assert cache.get("c") is None and cache.get("b") == "b"


def test_report_gaps_without_polygons_match_the_stored_ones(db_url, conn):
    request = _request(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 50, "k": 0})
    result = reports.compute_report(db_url, request)
    assert result.gap_table.geometry.isna().all()
    assert result.gaps.drop(columns="geometry").equals(result.gap_table.drop(columns="geometry"))
    assert (result.gaps.geom_type == "Polygon").sum() + (
        result.gaps.geom_type == "MultiPolygon"
    ).sum() == len(result.gaps)
    np.testing.assert_allclose(result.gaps.area, result.gaps["area_m2"])
