"""The coverage engine against brute force and hand-built fixtures."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.coverage.demand import grid_demand
from geo.coverage.engine import coverage_summary, find_gaps, prioritise
from geo.coverage.nearest import nearest_assets

CRS = "EPSG:27700"


def brute_distances(demand, points_xy, lines):
    """(n, m + l) matrix of exact distances: numpy for points, shapely for lines."""
    cols = []
    if len(points_xy):
        cols.append(
            np.hypot(demand[:, None, 0] - points_xy[None, :, 0], demand[:, None, 1] - points_xy[None, :, 1])
        )
    if len(lines):
        pts = shapely.points(demand)
        cols.append(shapely.distance(pts[:, None], np.asarray(lines, dtype=object)[None, :]))
    if not cols:
        return np.full((len(demand), 0), np.inf)
    return np.hstack(cols)


def brute_nearest(demand, points_xy, point_ids, lines, line_ids, max_distance=None):
    matrix = brute_distances(demand, points_xy, lines)
    ids = np.concatenate([point_ids, line_ids]).astype(np.int64)
    if matrix.shape[1] == 0:
        return np.full(len(demand), np.inf), np.full(len(demand), -1), matrix, ids
    best = matrix.min(axis=1)
    if max_distance is not None:
        best = np.where(best <= max_distance, best, np.inf)
    return best, ids[matrix.argmin(axis=1)], matrix, ids


def check_against_brute(demand, points_xy, point_ids, lines, line_ids, max_distance=None, **kw):
    d, ids = nearest_assets(demand, points_xy, point_ids, lines, line_ids, max_distance, **kw)
    best, _, matrix, all_ids = brute_nearest(demand, points_xy, point_ids, lines, line_ids, max_distance)
    finite = np.isfinite(best)
    assert np.array_equal(np.isfinite(d), finite)
    np.testing.assert_allclose(d[finite], best[finite], rtol=0, atol=1e-6)
    assert np.all(ids[~finite] == -1)
    # The id named is at that distance (ties may name any of the tied assets).
    for row in np.flatnonzero(finite):
        assert ids[row] in all_ids
        assert np.min(matrix[row, all_ids == ids[row]]) == pytest.approx(best[row], abs=1e-6)


# Millimetres, as surveyed data has at best: a segment 1e-221 m long (which Hypothesis finds) has
# a squared length that underflows to 0, and GEOS's distance to it, the reference here, is NaN.
coord = st.floats(0, 1000, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))
xy = st.tuples(coord, coord)


@st.composite
def scenes(draw):
    demand = np.array(draw(st.lists(xy, min_size=1, max_size=40)), dtype=float)
    points = np.array(draw(st.lists(xy, max_size=15)), dtype=float).reshape(-1, 2)
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        vertices = draw(st.lists(xy, min_size=2, max_size=5))
        if draw(st.booleans()):
            lines.append(shapely.LineString(vertices))
        else:
            second = draw(st.lists(xy, min_size=2, max_size=3))
            lines.append(shapely.MultiLineString([vertices, second]))
    max_distance = draw(st.none() | st.floats(0, 500))
    return demand, points, lines, max_distance


@settings(max_examples=150, deadline=None)
@given(scenes())
def test_nearest_assets_equals_brute_force(scene):
    demand, points, lines, max_distance = scene
    point_ids = np.arange(len(points)) + 100
    line_ids = np.arange(len(lines)) + 1000
    check_against_brute(demand, points, point_ids, np.array(lines, dtype=object), line_ids, max_distance)


lattice = st.tuples(st.integers(0, 60), st.integers(0, 60))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(lattice, min_size=1, max_size=40),
    st.lists(lattice, max_size=8),
    st.lists(st.lists(lattice, min_size=2, max_size=4), max_size=4),
    st.integers(0, 40),
)
def test_nearest_assets_on_a_lattice(demand, points, lines, max_distance):
    """Integer coordinates: exact ties, points on lines, distances exactly on the threshold."""
    demand = np.array(demand, dtype=float)
    points = np.array(points, dtype=float).reshape(-1, 2)
    lines = np.array([shapely.LineString(v) for v in lines], dtype=object)
    ids = np.arange(len(points)), np.arange(len(lines)) + 100
    check_against_brute(demand, points, ids[0], lines, ids[1], float(max_distance), k=1)
    check_against_brute(demand, points, ids[0], lines, ids[1], None, spacing=3.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5), st.floats(0, 1000)), min_size=1, max_size=30),
    st.floats(0.5, 40),
)
def test_long_segment_passing_between_vertices(offsets, point_distance):
    """A duct with 1 km segments passes closer than a point, between its vertices."""
    duct = shapely.LineString([(-1000, 0), (0, 0), (1000, 0), (1000, 1000)])
    demand = np.array([(x, dy) for dy, x in offsets], dtype=float)
    # a point asset a little farther than the duct from each demand point
    points = demand + [0.0, point_distance]
    check_against_brute(demand, points, np.arange(len(points)), np.array([duct]), np.array([99]))
    d, ids = nearest_assets(demand, points, np.arange(len(points)), np.array([duct]), np.array([99]))
    to_points = np.hypot(*(demand[:, None, :] - points[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    closer = np.abs(demand[:, 1]) < to_points
    assert np.all(ids[closer] == 99)


@settings(max_examples=40, deadline=None)
@given(scenes(), st.floats(0.5, 200))
def test_spacing_changes_speed_not_answer(scene, spacing):
    demand, points, lines, _ = scene
    lines = np.array(lines, dtype=object)
    args = (demand, points, np.arange(len(points)), lines, np.arange(len(lines)) + 50)
    d1, _ = nearest_assets(*args, spacing=spacing, k=1)
    d2, _ = nearest_assets(*args)
    np.testing.assert_allclose(d1, d2, atol=1e-6)


def test_known_answers():
    demand = np.array([[0.0, 0.0], [100.0, 0.0], [50.0, 500.0]])
    duct = shapely.LineString([(90, -500), (90, 400)])
    d, ids = nearest_assets(demand, np.array([[0.0, 30.0]]), np.array([7]), np.array([duct]), np.array([8]))
    np.testing.assert_allclose(d, [30.0, 10.0, np.hypot(40, 100)])
    assert ids.tolist() == [7, 8, 8]
    d, ids = nearest_assets(
        demand, np.array([[0.0, 30.0]]), np.array([7]), np.array([duct]), np.array([8]), max_distance=50
    )
    assert d[:2].tolist() == [30.0, 10.0] and d[2] == np.inf and ids.tolist() == [7, 8, -1]


def test_no_qualifying_assets():
    demand = np.array([[0.0, 0.0], [1.0, 1.0]])
    for lines in (None, np.array([], dtype=object)):
        d, ids = nearest_assets(demand, np.empty((0, 2)), np.empty(0, dtype=np.int64), lines, None)
        assert np.all(np.isinf(d)) and ids.tolist() == [-1, -1]
    summary = coverage_summary(d, households=np.array([3.0, 4.0]), area_m2=np.array([1.0, 1.0]))
    assert summary["covered_households"].tolist() == [0.0, 0.0, 0.0]
    assert summary["household_share"].tolist() == [0.0, 0.0, 0.0]
    # nothing within reach of the search either
    d, ids = nearest_assets(demand, np.array([[1000.0, 0.0]]), np.array([1]), max_distance=200)
    assert np.all(np.isinf(d)) and ids.tolist() == [-1, -1]


def test_empty_demand():
    d, ids = nearest_assets(np.empty((0, 2)), np.array([[0.0, 0.0]]), np.array([1]))
    assert d.shape == (0,) and ids.shape == (0,)


def test_asset_exactly_on_threshold_is_covered():
    demand = np.array([[0.0, 0.0], [0.0, 1000.0], [0.0, 2000.0]])
    points = np.array([[0.0, 50.0], [0.0, 1100.0]])  # exactly 50 m and 100 m
    duct = shapely.LineString([(-10, 2200), (10, 2200)])  # exactly 200 m, between its vertices
    d, _ = nearest_assets(demand, points, np.array([1, 2]), np.array([duct]), np.array([3]), max_distance=200)
    assert d.tolist() == [50.0, 100.0, 200.0]
    summary = coverage_summary(d, households=np.ones(3))
    assert summary["covered_points"].tolist() == [1, 2, 3]


def test_coverage_summary_per_borough():
    distance = np.array([10.0, 60.0, 150.0, np.inf, 40.0, 250.0])
    households = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    area = np.array([10.0, 10.0, 10.0, 10.0, 20.0, 20.0])
    boroughs = np.array(["E09000002", "E09000002", "E09000002", "E09000002", "E09000001", "E09000001"])
    s = coverage_summary(distance, households, area, boroughs, thresholds=(50, 100, 200))
    assert s["borough_code"].tolist() == ["all"] * 3 + ["E09000001"] * 3 + ["E09000002"] * 3
    assert s["threshold_m"].tolist() == [50.0, 100.0, 200.0] * 3
    assert s["covered_households"].tolist() == [6.0, 8.0, 11.0, 5.0, 5.0, 5.0, 1.0, 3.0, 6.0]
    assert s["households"].tolist() == [21.0] * 3 + [11.0] * 3 + [10.0] * 3
    assert s["household_share"].iloc[2] == 11 / 21
    assert s["covered_area_m2"].tolist() == [30.0, 40.0, 50.0, 20.0, 20.0, 20.0, 10.0, 20.0, 30.0]
    assert s["area_share"].iloc[5] == 0.5
    assert s["demand_points"].tolist() == [6] * 3 + [2] * 3 + [4] * 3
    # per-borough rows add up to the whole
    for t in (50, 100, 200):
        rows = s[s["threshold_m"] == t]
        assert rows["covered_households"].iloc[1:].sum() == rows["covered_households"].iloc[0]


def test_coverage_summary_without_weights():
    s = coverage_summary(np.array([1.0, 99.0]), thresholds=(50,))
    assert s["covered_points"].tolist() == [1]
    assert s["household_share"].isna().all() and s["area_share"].isna().all()


def test_area_across_borough_boundary():
    """Cells on both sides of a borough boundary are split by the borough holding the centroid."""
    boroughs = gpd.GeoDataFrame(
        {"GSS_CODE": ["E09000001", "E09000002"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 300, 100)],
        crs=CRS,
    )
    area = shapely.box(50, 0, 200, 100)  # crosses the boundary at x = 100
    cells = grid_demand(area, 50, boroughs=boroughs)
    assert sorted(cells["cell_id"]) == ["100_0", "100_50", "150_0", "150_50", "50_0", "50_50"]
    d, _ = nearest_assets(cells[["x", "y"]].to_numpy(), np.array([[75.0, 0.0]]), np.array([1]))
    s = coverage_summary(d, None, cells["area_m2"].to_numpy(), cells["borough_code"].to_numpy(), (50, 100))
    by = s.set_index(["borough_code", "threshold_m"])
    # (75, 25): 25 m; (75, 75): 75 m; (125, 25): 55.9 m; (125, 75): 90.1 m; (175, *): > 100 m
    assert by.loc[("E09000001", 50.0), "covered_points"] == 1
    assert by.loc[("E09000002", 50.0), "covered_points"] == 0
    assert by.loc[("E09000001", 100.0), "covered_area_m2"] == 5000.0
    assert by.loc[("E09000002", 100.0), "covered_area_m2"] == 5000.0
    assert by.loc[("E09000002", 100.0), "area_m2"] == 10000.0
    assert by.loc[("E09000002", 100.0), "area_share"] == 0.5
    assert by.loc[("all", 100.0), "area_share"] == 10000.0 / 15000.0


def test_find_gaps_hand_built_grid():
    # 5 x 4 grid of 10 m cells; U marks uncovered
    layout = [
        "UU.U.",
        "UU.U.",
        "....U",
        "U.UU.",
    ]  # row 0 is the southernmost
    x, y, distance = [], [], []
    for row, line in enumerate(layout):
        for col, ch in enumerate(line):
            x.append(col * 10 + 5.0)
            y.append(row * 10 + 5.0)
            distance.append(500.0 if ch == "U" else 5.0)
    x, y = np.array(x), np.array(y)
    cells = gpd.GeoDataFrame(
        {"x": x, "y": y, "area_m2": 100.0}, geometry=shapely.box(x - 5, y - 5, x + 5, y + 5), crs=CRS
    )
    households = np.arange(len(x), dtype=float)
    gaps = find_gaps(cells, np.array(distance), households, threshold=100)
    # components: the 2x2 block, the 2-cell column at x=3, the single (4,2), the single (0,3),
    # the pair (2,3)-(3,3); (4,2) and (3,3) touch only at a corner: separate gaps.
    index = {(int(a // 10), int(b // 10)): i for i, (a, b) in enumerate(zip(x, y, strict=True))}

    def hh(*cs):
        return float(sum(index[c] for c in cs))

    expected = sorted(
        [
            (hh((0, 0), (1, 0), (0, 1), (1, 1)), 400.0),
            (hh((3, 0), (3, 1)), 200.0),
            (hh((4, 2)), 100.0),
            (hh((0, 3)), 100.0),
            (hh((2, 3), (3, 3)), 200.0),
        ],
        reverse=True,
    )
    assert list(zip(gaps["households"], gaps["area_m2"], strict=True)) == expected
    assert gaps["gap_id"].tolist() == [1, 2, 3, 4, 5]
    assert (gaps.geom_type == "Polygon").all()
    np.testing.assert_allclose(gaps.area, gaps["area_m2"])
    block = gaps[gaps["area_m2"] == 400.0].geometry.iloc[0]
    assert block.equals(shapely.box(0, 0, 20, 20))
    # the same gaps from the columns alone, without cell squares
    bare = cells.copy()
    bare["geometry"] = None
    again = find_gaps(bare, np.array(distance), households, threshold=100)
    assert again.geometry.geom_equals(gaps.geometry).all()
    # nothing uncovered
    assert len(find_gaps(cells, np.zeros(len(x)), households, 100)) == 0


def test_find_gaps_with_hole_and_threshold_inclusive():
    x, y = np.meshgrid(np.arange(3) * 50 + 25.0, np.arange(3) * 50 + 25.0)
    x, y = x.ravel(), y.ravel()
    distance = np.full(9, 300.0)
    distance[4] = 100.0  # the centre is covered at exactly the threshold
    cells = gpd.GeoDataFrame(geometry=shapely.box(x - 25, y - 25, x + 25, y + 25), crs=CRS)
    gaps = find_gaps(cells, distance, None, threshold=100)
    assert len(gaps) == 1 and gaps["cells"].iloc[0] == 8
    ring = gaps.geometry.iloc[0]
    assert ring.area == 8 * 2500 and len(ring.interiors) == 1


def brute_greedy(demand, households, covered, cand_xy, cand_ids, lines, line_ids, radius, k):
    matrix = brute_distances(demand, cand_xy, lines) <= radius  # demand x candidates
    ids = np.concatenate([cand_ids, line_ids]).astype(np.int64)
    assets = np.unique(ids)
    reach = np.stack([matrix[:, ids == a].any(axis=1) for a in assets]) if len(assets) else np.zeros((0, 0))
    weight = np.where(covered, 0.0, households)
    out = []
    for _ in range(k):
        if not len(assets):
            break
        gains = reach.astype(float) @ weight
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        out.append((int(assets[best]), float(gains[best])))
        weight[reach[best]] = 0.0
    return out


@settings(max_examples=100, deadline=None)
@given(
    scenes(),
    st.lists(xy, max_size=12),
    st.floats(10, 300),
    st.integers(1, 6),
    st.data(),
)
def test_prioritise_equals_brute_force_greedy(scene, candidates, radius, k, data):
    demand, _, lines, _ = scene
    n = len(demand)
    households = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=float)
    covered = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    cand_xy = np.array(candidates, dtype=float).reshape(-1, 2)
    # ids drawn from a small range so that ties and shared ids happen
    cand_ids = np.array(data.draw(st.lists(st.integers(0, 8), min_size=len(cand_xy), max_size=len(cand_xy))))
    line_ids = np.array(data.draw(st.lists(st.integers(0, 8), min_size=len(lines), max_size=len(lines))))
    lines = np.array(lines, dtype=object)
    got = prioritise(demand, households, covered, cand_xy, cand_ids, lines, line_ids, radius=radius, k=k)
    expected = brute_greedy(demand, households, covered, cand_xy, cand_ids, lines, line_ids, radius, k)
    assert list(zip(got["asset_id"].tolist(), got["gain"].tolist(), strict=True)) == expected
    np.testing.assert_allclose(got["cumulative"], np.cumsum([g for _, g in expected]))


def test_prioritise_with_distances_and_shares():
    demand = np.array([[0.0, 0.0], [10.0, 0.0], [500.0, 0.0], [1000.0, 0.0]])
    households = np.array([1.0, 1.0, 5.0, 3.0])
    distance = np.array([np.inf, 300.0, 400.0, 20.0])  # only the last is covered at 100 m
    duct = shapely.LineString([(400, -60), (600, -60)])  # reaches (500, 0) between vertices
    got = prioritise(
        demand,
        households,
        distance,
        np.array([[5.0, 0.0], [5.0, 1.0]]),
        np.array([4, 2]),
        np.array([duct]),
        np.array([9]),
        radius=100,
        k=5,
    )
    assert got["asset_id"].tolist() == [9, 2]  # 2 and 4 tie; the smaller id wins
    assert got["gain"].tolist() == [5.0, 2.0]
    assert got["covered_households"].tolist() == [8.0, 10.0]
    assert got["household_share"].tolist() == [0.8, 1.0]
    assert got["rank"].tolist() == [1, 2]


def test_prioritise_no_candidates():
    got = prioritise(
        np.array([[0.0, 0.0]]), np.array([1.0]), np.array([False]), np.empty((0, 2)), np.empty(0)
    )
    assert len(got) == 0


# Polygon assets (buildings as footprints): measured to their rings, 0 inside ------------------------
@st.composite
def polygons(draw):
    """A box, a concave L, a box with a courtyard (a hole) or two boxes as one MultiPolygon."""
    x, y = draw(coord), draw(coord)
    w, h = draw(st.floats(5, 200)), draw(st.floats(5, 200))
    box = shapely.box(x, y, x + w, y + h)
    shape = draw(st.sampled_from(["box", "l", "courtyard", "multi"]))
    if shape == "l":
        return box.difference(shapely.box(x + w / 3, y + h / 3, x + w + 1, y + h + 1))
    if shape == "courtyard":
        return box.difference(shapely.box(x + w / 4, y + h / 4, x + 3 * w / 4, y + 3 * h / 4))
    if shape == "multi":
        return shapely.MultiPolygon([box, shapely.box(x + w + 10, y, x + w + 30, y + 20)])
    return box


@st.composite
def polygon_scenes(draw):
    shapes = draw(st.lists(polygons(), min_size=1, max_size=6))
    demand = draw(st.lists(xy, min_size=1, max_size=30))
    # Points inside each building and on its walls, where a single interior point would be wrong.
    demand += [tuple(shapely.get_coordinates(shapely.point_on_surface(s))[0]) for s in shapes]
    demand += [tuple(c) for s in shapes for c in shapely.get_coordinates(s)[:2]]
    points = np.array(draw(st.lists(xy, max_size=5)), dtype=float).reshape(-1, 2)
    duct = [shapely.LineString(draw(st.lists(xy, min_size=2, max_size=3)))] if draw(st.booleans()) else []
    return np.array(demand, dtype=float), points, duct + shapes, draw(st.none() | st.floats(0, 300))


@settings(max_examples=150, deadline=None)
@given(polygon_scenes())
def test_polygons_are_measured_to_their_walls_and_zero_inside(scene):
    demand, points, assets, max_distance = scene
    ids = np.arange(len(points)) + 100, np.arange(len(assets)) + 1000
    check_against_brute(demand, points, ids[0], np.array(assets, dtype=object), ids[1], max_distance)
    check_against_brute(demand, points, ids[0], np.array(assets, dtype=object), ids[1], None, spacing=3.0)


def test_the_door_of_a_long_school_is_two_metres_away_not_sixty():
    school = shapely.box(0, 0, 120, 40)  # 120 m long: its point on the surface is ~60 m from the ends
    at_the_door = np.array([[118.0, -2.0], [60.0, 20.0], [-30.0, 20.0]])  # outside, inside, beyond
    d, ids = nearest_assets(
        at_the_door, np.zeros((0, 2)), np.array([], dtype=int), np.array([school]), np.array([7])
    )
    assert d.tolist() == [2.0, 0.0, 30.0] and ids.tolist() == [7, 7, 7]
    inside_only, _ = nearest_assets(at_the_door[1:2], np.zeros((0, 2)), np.array([], dtype=int),
                                    np.array([school]), np.array([7]), max_distance=5.0)  # fmt: skip
    assert inside_only.tolist() == [0.0]  # 20 m from every wall, but inside: within any threshold


@settings(max_examples=80, deadline=None)
@given(polygon_scenes(), st.floats(1, 150), st.integers(1, 4), st.data())
def test_prioritise_counts_what_a_building_holds(scene, radius, k, data):
    demand, cand_xy, shapes, _ = scene
    n = len(demand)
    households = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=float)
    covered = np.zeros(n, dtype=bool)
    cand_ids = np.arange(len(cand_xy))
    shape_ids = np.arange(len(shapes)) + 50
    shapes = np.array(shapes, dtype=object)
    got = prioritise(demand, households, covered, cand_xy, cand_ids, shapes, shape_ids, radius=radius, k=k)
    expected = brute_greedy(demand, households, covered, cand_xy, cand_ids, shapes, shape_ids, radius, k)
    assert list(zip(got["asset_id"].tolist(), got["gain"].tolist(), strict=True)) == expected
