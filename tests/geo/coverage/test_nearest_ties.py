"""Exactly equal distances: the nearest asset is the smallest id among them, whatever the order."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.coverage.nearest import AssetIndex

# Integer coordinates and axis-aligned ducts: distances of 0, 1, 2... are exact, so ties are real.
coord = st.integers(0, 6)
point = st.tuples(coord, coord)
duct = st.tuples(coord, coord, st.integers(1, 4), st.booleans())


def _brute(q, geoms, ids):
    d = shapely.distance(shapely.points(q)[:, None], geoms[None, :])
    best = d.min(axis=1)
    return best, np.where(d == best[:, None], ids[None, :], np.iinfo(np.int64).max).min(axis=1)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(point, min_size=1, max_size=25),
    st.lists(duct, max_size=6),
    st.randoms(use_true_random=False),
)
def test_a_tie_names_the_smallest_id(points, ducts, rnd):
    pts = np.array(points, dtype=float)
    lines = np.array(
        [shapely.LineString([(x, y), (x + n, y) if flat else (x, y + n)]) for x, y, n, flat in ducts],
        dtype=object,
    )
    ids = np.array(rnd.sample(range(1000), len(pts) + len(lines)), dtype=np.int64)
    gx, gy = np.meshgrid(np.arange(-1, 9), np.arange(-1, 9))
    q = np.column_stack([gx.ravel(), gy.ravel()]).astype(float)
    index = AssetIndex(pts, ids[: len(pts)], lines, ids[len(pts) :], spacing=1.0)
    distance, asset = index.nearest(q, k=1)  # k=1: every tie must be found by asking again
    geoms = np.concatenate([shapely.points(pts), lines])
    best, smallest = _brute(q, geoms, ids)
    np.testing.assert_allclose(distance, best, atol=1e-9)
    np.testing.assert_array_equal(asset, smallest)


def test_duplicate_points_name_the_smallest_id_in_any_order():
    pts = np.zeros((40, 2))
    ids = np.arange(100, 140)[::-1].copy()
    index = AssetIndex(pts, ids, None, None, spacing=10.0)
    distance, asset = index.nearest(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert distance.tolist() == [5.0, 0.0] and asset.tolist() == [100, 100]


def test_a_point_asset_on_a_footprint_wins_a_tie_at_zero_with_a_smaller_id():
    square = shapely.box(0, 0, 10, 10)
    index = AssetIndex(np.array([[5.0, 5.0]]), np.array([3]), np.array([square]), np.array([9]), 10.0)
    distance, asset = index.nearest(np.array([[5.0, 5.0], [6.0, 6.0]]))
    assert distance.tolist() == [0.0, 0.0] and asset.tolist() == [3, 9]
