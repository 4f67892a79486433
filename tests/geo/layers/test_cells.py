"""Place keys: the Python ranges of a box hold the database's key of every geometry that touches it."""

import random
from itertools import pairwise

import psycopg
import pytest
import shapely
import shapely.affinity

from geo.layers import cells

# (xmin, ymin, xmax, ymax) in British National Grid: points, short and long lines, and beyond the square.
ENVELOPES = [
    (529_100.4, 182_300.9, 529_100.4, 182_300.9),
    (529_100.0, 182_300.0, 529_101.0, 182_300.0),
    (535_535.5, 185_535.5, 535_537.5, 185_537.5),  # across the root's centre lines
    (503_000.0, 155_000.0, 562_000.0, 201_000.0),
    (469_999.5, 180_000.0, 470_000.5, 180_000.0),  # half outside
    (601_072.0, 180_000.0, 601_072.0, 180_000.0),  # just outside
]


def random_envelopes(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, y = rng.uniform(495_000, 570_000), rng.uniform(150_000, 206_000)
        w, h = (
            rng.choice([0, 0, rng.uniform(0, 30), rng.uniform(0, 3000)]),
            rng.choice([0, rng.uniform(0, 3000)]),
        )
        out.append((x, y, x + w, y + h))
    return out


def test_the_key_of_python_and_of_the_database_agree(db_url):
    envelopes = ENVELOPES + random_envelopes(500, 1)
    with psycopg.connect(db_url) as conn:
        keys = [
            conn.execute("SELECT asset_cell_key(ST_MakeEnvelope(%s, %s, %s, %s, 27700))", list(e)).fetchone()[
                0
            ]
            for e in envelopes
        ]
    assert keys == [cells.geometry_key(*e) for e in envelopes]
    assert keys[0] & 31 == cells.DEPTH and keys[2] & 31 < 4 and keys[4] == keys[5] == 0


def rotated_box(x, y, w, h, degrees):
    """A box turned about its lower-left corner: what a longitude/latitude bbox is in British National Grid."""
    return shapely.affinity.rotate(shapely.box(x, y, x + w, y + h), degrees, origin=(x, y))


def random_geometry(rng, area):
    """A point, a line or a small polygon somewhere about ``area``."""
    xmin, ymin, xmax, ymax = area.bounds
    x, y = rng.uniform(xmin - 60, xmax + 60), rng.uniform(ymin - 60, ymax + 60)
    kind = rng.choice(["point", "point", "line", "polygon"])
    if kind == "point":
        return shapely.Point(x, y)
    dx, dy = rng.uniform(-40, 40) * rng.choice([1, 30]), rng.uniform(-40, 40)
    return (
        shapely.LineString([(x, y), (x + dx, y + dy)])
        if kind == "line"
        else shapely.box(x, y, x + abs(dx), y + abs(dy))
    )


@pytest.mark.parametrize("seed", [2, 3])
def test_every_geometry_that_touches_a_box_has_its_key_in_one_range_or_single_key_of_the_box(seed):
    rng = random.Random(seed)
    for x, y, _, _ in random_envelopes(150, seed):
        area = rotated_box(x, y, 10 ** rng.uniform(0, 4.3), 10 ** rng.uniform(0, 4.3), rng.uniform(-3, 3))
        ranges, singles = cells.segments(area)
        assert all(a[1] < b[0] for a, b in pairwise(ranges)) and singles == sorted(set(singles))
        assert not any(lo <= key <= hi for key in singles for lo, hi in ranges)
        assert len(ranges) <= cells.MAX_CELLS
        for _ in range(60):
            geometry = random_geometry(rng, area)
            key = cells.geometry_key(*geometry.bounds)
            found = sum(lo <= key <= hi for lo, hi in ranges) + singles.count(key)
            assert found <= 1 and (found == 1 or not geometry.intersects(area)), (area.wkt, geometry.wkt)


def test_the_cover_of_a_turned_box_holds_it_and_little_else():
    area = rotated_box(524_874, 173_871, 14_197, 12_592, 1.5)  # 14 by 12.6 km, as a bbox of Camden and around
    cover = cells.cover(area)
    boxes = [shapely.box(x, y, x + side, y + side) for x, y, side in (cells._extent(*c) for c in cover)]
    held = shapely.union_all(boxes)
    assert held.contains(area) and held.area < (cells.MAX_WASTE + 0.05) * area.area
    assert len(cover) <= cells.MAX_CELLS


def test_a_box_beyond_the_square_reads_only_the_root():
    assert cells.segments(shapely.box(400_000, 100_000, 401_000, 101_000)) == ([], [0])
