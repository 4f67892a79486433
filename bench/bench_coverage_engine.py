"""Time geo.coverage.nearest.nearest_assets London-wide against geopandas sjoin_nearest.

Synthetic data shaped like the `--scale london` demo: a 50 m grid of 628,849 cells over
E 503000-542650, N 155000-194650; 500,000 random points and 60,000 random-walk ducts
(about 5,000 km) in the 30 km square at the centre. Compute only: data already in memory.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import geopandas as gpd
import numpy as np
import shapely

from geo.coverage.engine import coverage_summary
from geo.coverage.nearest import nearest_assets

RUNS = 3


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(793) * 50 + 503025.0, np.arange(793) * 50 + 155025.0)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    points = rng.uniform([508000, 160000], [538000, 190000], size=(500_000, 2))
    starts = rng.uniform([508000, 160000], [538000, 190000], size=(60_000, 1, 2))
    steps = rng.normal(0, 16.5, size=(60_000, 4, 2))
    walks = np.concatenate([starts, starts + np.cumsum(steps, axis=1)], axis=1)
    lines = shapely.linestrings(walks)
    return grid, points, lines


def median_time(fn, runs: int = RUNS) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    grid, points, lines = make_data()
    point_ids = np.arange(len(points))
    line_ids = np.arange(len(lines)) + len(points)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus")
    print(
        f"cells {len(grid):,}; points {len(points):,}; ducts {len(lines):,} "
        f"({shapely.length(lines).sum() / 1000:,.0f} km)"
    )

    t_bounded, (d, _) = median_time(lambda: nearest_assets(grid, points, point_ids, lines, line_ids, 200.0))
    t_unbounded, (d_all, _) = median_time(lambda: nearest_assets(grid, points, point_ids, lines, line_ids))
    t_summary, summary = median_time(lambda: coverage_summary(d, area_m2=np.full(len(d), 2500.0)))
    print(f"nearest_assets, max_distance=200: {t_bounded:.3f} s (median of {RUNS})")
    print(f"nearest_assets, unbounded:        {t_unbounded:.3f} s")
    print(f"coverage_summary:                 {t_summary:.3f} s")
    print(summary[["threshold_m", "covered_points", "area_share"]].to_string(index=False))

    cells = gpd.GeoDataFrame(geometry=shapely.points(grid), crs="EPSG:27700")
    assets = gpd.GeoDataFrame(
        {"asset_id": np.concatenate([point_ids, line_ids])},
        geometry=np.concatenate([shapely.points(points), lines]),
        crs="EPSG:27700",
    )
    t_gpd, joined = median_time(lambda: gpd.sjoin_nearest(cells, assets, distance_col="distance"), runs=1)
    joined = joined[~joined.index.duplicated()]
    worst = np.max(np.abs(joined["distance"].to_numpy() - d_all))
    print(f"geopandas sjoin_nearest:          {t_gpd:.3f} s (1 run)")
    print(
        f"ratio sjoin_nearest / nearest_assets(200 m): {t_gpd / t_bounded:.1f}x; max |difference| {worst:.2e} m"
    )


if __name__ == "__main__":
    main()
