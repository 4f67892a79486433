"""Place keys: the ranges of ``asset_cell_key`` a bbox needs, so a bbox page reads only its rows.

``asset_cell_key(geom)`` (migration 0021) is the key of the smallest cell of a quadtree over
London that holds the geometry's bounding box: the cell's Z-order start (its lower-left 1 m
cell's Morton code) shifted left :data:`LEVEL_BITS` bits, or'ed with its level. A geometry
that touches a box is then either inside one of the cells the box overlaps at some level, so
its key lies in that cell's range, or in a larger cell that contains one of them, an ancestor,
whose one key is known. :func:`segments` gives both, in key order, so reading them one after the
other reads the box's assets in ``(key, id)`` order: the order of a bbox page, and its cursor.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
import shapely

#: Levels below the root: the smallest cells are 1 m.
DEPTH = 17
SIDE = 2**DEPTH
#: Lower-left corner of the square, British National Grid metres (London: 503,000-562,000 E,
#: 155,000-201,000 N).
ORIGIN = (470_000, 120_000)
LEVEL_BITS = 5
#: The most cells across each axis of a box at the level its cover starts at.
MAX_SPAN = 4
#: How far beyond a cell a geometry is still taken to touch it, m (floating-point slack).
EPSILON = 0.01
#: The most cells of a box's cover, and how much larger than the box its area may stay.
MAX_WASTE = 1.05
MAX_CELLS = 512


def _spread(value: int) -> int:
    """The bits of ``value`` (below 2**32) moved to the even positions (bit i to bit 2i)."""
    value = (value | (value << 16)) & 0x0000FFFF0000FFFF
    value = (value | (value << 8)) & 0x00FF00FF00FF00FF
    value = (value | (value << 4)) & 0x0F0F0F0F0F0F0F0F
    value = (value | (value << 2)) & 0x3333333333333333
    return (value | (value << 1)) & 0x5555555555555555


def morton(x: int, y: int) -> int:
    """The Z-order code of the 1 m cell (x, y): x's bits at even positions, y's at odd."""
    return _spread(x) | (_spread(y) << 1)


def cell_key(level: int, cx: int, cy: int) -> int:
    """The key of the cell (cx, cy) of ``level`` (as ``asset_cell_key`` gives the geometries it holds)."""
    shift = DEPTH - level
    return (morton(cx << shift, cy << shift) << LEVEL_BITS) | level


def geometry_key(xmin: float, ymin: float, xmax: float, ymax: float) -> int:
    """``asset_cell_key`` of a geometry with this bounding box (British National Grid metres)."""
    x0, y0 = math.floor(xmin) - ORIGIN[0], math.floor(ymin) - ORIGIN[1]
    x1, y1 = math.floor(xmax) - ORIGIN[0], math.floor(ymax) - ORIGIN[1]
    if min(x0, y0) < 0 or max(x1, y1) >= SIDE:
        return 0
    shift = ((x0 ^ x1) | (y0 ^ y1)).bit_length()
    level = DEPTH - shift
    return cell_key(level, x0 >> shift, y0 >> shift)


def _extent(level: int, cx: int, cy: int) -> tuple[float, float, float]:
    """The cell's lower-left corner (British National Grid) and side, m."""
    shift = DEPTH - level
    return ORIGIN[0] + (cx << shift), ORIGIN[1] + (cy << shift), float(1 << shift)


def _cells(cells: list[tuple[int, int, int]], area: shapely.Geometry) -> tuple[list[Any], list[Any]]:
    """The cells that lie inside ``area``, and those that only overlap it.

    A cell's extent is closed at its top and right: a geometry whose bounding box starts in
    its last 1 m cell may reach up to its edge. A cell is dropped only when its extent, grown
    by :data:`EPSILON`, misses the area, so nothing that touches the area is ever left out.
    """
    corners = np.array([_extent(*cell) for cell in cells])
    x, y, side = corners[:, 0], corners[:, 1], corners[:, 2]
    meets = shapely.intersects(
        area, shapely.box(x - EPSILON, y - EPSILON, x + side + EPSILON, y + side + EPSILON)
    )
    inside = shapely.contains(area, shapely.box(x, y, x + side, y + side))
    done = [cell for cell, m, i in zip(cells, meets, inside, strict=True) if m and i]
    partial = [cell for cell, m, i in zip(cells, meets, inside, strict=True) if m and not i]
    return done, partial


def cover(area: shapely.Geometry) -> list[tuple[int, int, int]]:
    """Disjoint cells ``(level, cx, cy)`` that together hold every 1 m cell that meets ``area``.

    First the cells of the deepest level where the area's envelope spans at most
    :data:`MAX_SPAN` across each axis; then, largest first, the cells the area only overlaps
    (along its edges) are replaced by their children that meet it, a level at a time, until the
    cells' area is at most :data:`MAX_WASTE` times the area's or there would be more than
    :data:`MAX_CELLS`: less of each cell lies outside, so fewer rows are read and dropped, and
    few cells are few reads.
    """
    xmin, ymin, xmax, ymax = area.bounds

    def clamp(value: float, origin: int) -> int:
        return min(max(math.floor(value) - origin, 0), SIDE - 1)

    x0, y0, x1, y1 = (
        clamp(xmin, ORIGIN[0]),
        clamp(ymin, ORIGIN[1]),
        clamp(xmax, ORIGIN[0]),
        clamp(ymax, ORIGIN[1]),
    )
    level = DEPTH
    while level > 0:
        shift = DEPTH - level
        if (x1 >> shift) - (x0 >> shift) < MAX_SPAN and (y1 >> shift) - (y0 >> shift) < MAX_SPAN:
            break
        level -= 1
    shift = DEPTH - level
    first = [
        (level, cx, cy)
        for cx in range(x0 >> shift, (x1 >> shift) + 1)
        for cy in range(y0 >> shift, (y1 >> shift) + 1)
    ]
    shapely.prepare(area)
    done, partial = _cells(first, area)

    def held() -> int:
        return sum(4 ** (DEPTH - level) for level, _, _ in done + partial)

    while partial and held() > MAX_WASTE * area.area:
        largest = min(level for level, _, _ in partial)
        split = [cell for cell in partial if cell[0] == largest]
        if largest == DEPTH or len(done) + len(partial) + 3 * len(split) > MAX_CELLS:
            break
        children = [
            (level + 1, 2 * cx + i, 2 * cy + j) for level, cx, cy in split for i in (0, 1) for j in (0, 1)
        ]
        more_done, more_partial = _cells(children, area)
        done += more_done
        partial = [cell for cell in partial if cell[0] != largest] + more_partial
    return done + partial


def segments(area: shapely.Geometry) -> tuple[list[tuple[int, int]], list[int]]:
    """The key ranges (inclusive, disjoint, in order) and the single keys that hold every geometry
    that may touch ``area`` (a polygon in British National Grid).

    Each cell of :func:`cover` is one range: its own key up to the last key of its smallest
    descendant. Ranges next to each other in key order are merged when the keys between them
    all have one start: those are the keys of the larger cells that start where the second
    range's cell starts (its ancestors) or keys no cell has, and the merged range reads them in
    their place. The single keys are the ancestors of the cover's cells that no range holds: a
    range starts at its cell's own key, above the keys of the larger cells that share its start.
    A geometry beyond the square has the root's key, 0, always a single key or in a range.
    """
    xmin, ymin, xmax, ymax = area.bounds
    if xmax < ORIGIN[0] or ymax < ORIGIN[1] or xmin >= ORIGIN[0] + SIDE or ymin >= ORIGIN[1] + SIDE:
        return [], [0]  # only geometries beyond the square (the root's) can touch it
    ranges: list[tuple[int, int]] = []
    ancestors: set[int] = {0}
    for level, cx, cy in cover(area):
        shift = DEPTH - level
        start = morton(cx << shift, cy << shift)
        ranges.append(((start << LEVEL_BITS) | level, ((start + 4**shift) << LEVEL_BITS) - 1))
        for up in range(1, level + 1):
            key = cell_key(level - up, cx >> up, cy >> up)
            if key in ancestors:
                break  # and so are its own ancestors
            ancestors.add(key)
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and (merged[-1][1] + 1) >> LEVEL_BITS == lo >> LEVEL_BITS:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    starts = [lo for lo, _ in merged]
    singles = sorted(
        key for key in ancestors if not (i := bisect.bisect_right(starts, key)) or merged[i - 1][1] < key
    )
    return merged, singles
