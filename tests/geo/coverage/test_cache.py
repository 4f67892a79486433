"""What the process keeps between reports: reused while the data is unchanged, never stale, bounded."""

from __future__ import annotations

import numpy as np
import psycopg
import shapely

from geo.coverage.cache import ASSET_INDEXES, ProcessCache
from geo.coverage.compute import compute_report
from geo.coverage.sources import read_assets

CAMDEN_BOX = [528000.0, 181000.0, 530000.0, 183000.0]


def test_the_asset_index_cache_is_reused_and_sees_new_assets(isolated, ask, coverage_settings):
    """A warm report reuses the cached index; inserting an asset changes the key, and the next report sees it."""
    with psycopg.connect(isolated.url) as conn:
        request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "demand": "grid", "cell_size": 250, "k": 0})
    ASSET_INDEXES.clear()
    first = compute_report(isolated.url, request, coverage_settings.spacing_m)
    assert (ASSET_INDEXES.hits, ASSET_INDEXES.misses) == (0, 1)
    again = compute_report(isolated.url, request, coverage_settings.spacing_m)
    assert ASSET_INDEXES.hits == 1
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
        seen = compute_report(isolated.url, request, coverage_settings.spacing_m)
        assert ASSET_INDEXES.misses == 2
        assert seen.data_version["assets"] > first.data_version["assets"]
        assert seen.demand.distance[cell] == 0 and seen.demand.asset_id[cell] == new_id
        assert seen.summary["assets"]["qualifying_points"] == first.summary["assets"]["qualifying_points"] + 1
        # Still what a brute force over the database's assets gives.
        pts, _, lines, _ = read_assets(isolated.url, request).qualifying()
        geoms = np.concatenate([shapely.points(pts), lines])
        brute = shapely.distance(shapely.points(seen.demand.xy)[:, None], geoms[None, :]).min(axis=1)
        brute[brute > request.reach] = np.inf
        np.testing.assert_allclose(seen.demand.distance, brute, atol=1e-6)
    finally:
        with psycopg.connect(isolated.url) as conn:
            conn.execute("DELETE FROM assets WHERE id = %s", [new_id])
    gone = compute_report(isolated.url, request, coverage_settings.spacing_m)
    np.testing.assert_array_equal(gone.demand.distance, first.demand.distance)
    assert gone.summary["assets"] == first.summary["assets"]


def test_the_asset_index_cache_is_bounded():
    cache: ProcessCache[str] = ProcessCache(maxsize=2)
    for key in "abc":
        cache.put(key, key)
    assert len(cache) == 2 and cache.get("a") is None
    assert cache.get("b") == "b"
    cache.put("d", "d")
    assert cache.get("c") is None and cache.get("b") == "b"
