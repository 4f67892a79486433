"""Computing a coverage report: demand and cells measured against the assets, summarised, gaps and priorities.

Pipeline of :func:`compute_report`, everything in EPSG:27700 metres:

1. area: borough codes, a GeoJSON polygon (WGS84 or EPSG:27700) or a bbox, as one geometry;
2. assets: the qualifying assets (the filters, usable statuses, optionally a signed or live
   wayleave) and the candidates (not yet usable) inside the area's box widened by the largest
   distance asked, over two connections in parallel that share one snapshot;
3. demand: postcode households (default), a British National Grid grid (households of the
   postcodes inside each cell) or premises sent with the request; plus the grid of gap cells;
4. nearest: one exact nearest-asset search for demand points and cells together;
5. summary at the thresholds for the whole area and per borough; gaps; greedy priorities.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg

from geo.core.progress import Progress, silent
from geo.core.settings import DaskSettings
from geo.coverage import distributed
from geo.coverage.area import CRS
from geo.coverage.cache import IndexedAssets, indexed_assets, pipeline_projects
from geo.coverage.costs import candidate_costs, certificate_of
from geo.coverage.demand_layers import Layer, demand_layers
from geo.coverage.engine import find_gaps, prioritise, summary_columns
from geo.coverage.errors import InvalidCoverageRequest
from geo.coverage.nearest import AssetIndex
from geo.coverage.request import ReportRequest
from geo.coverage.sources import read_versions, resolve_boroughs

STEPS = ("area", "assets", "demand", "nearest", "summary", "gaps", "priorities", "pipeline", "store")


@dataclass
class ReportResult:
    """Everything a report stores."""

    request: ReportRequest
    demand: Layer
    cells: Layer | None
    summary: dict[str, Any]
    #: The gaps without their polygons (``geometry`` None): what the summary needs.
    gap_table: gpd.GeoDataFrame
    priorities: pd.DataFrame
    timings: dict[str, float]
    data_version: dict[str, Any]

    @property
    def grid(self) -> Layer:
        """The grid cells (the demand itself for a grid demand)."""
        return self.cells if self.cells is not None else self.demand

    @functools.cached_property
    def gaps(self) -> gpd.GeoDataFrame:
        """The gaps with their polygons, the rows of :attr:`gap_table`; built on first use.

        Merging the cells into polygons is most of the cost of the gaps (0.5-1.5 s London-wide),
        and only the stored report (the downloads and the map) needs it.
        """
        return find_gaps(
            _grid_frame(self.grid), self.grid.distance, self.grid.households, self.request.gap_threshold
        )


def _grid_frame(grid: Layer) -> gpd.GeoDataFrame:
    """The cells of a layer as :func:`geo.coverage.engine.find_gaps` takes them (no squares built)."""
    return gpd.GeoDataFrame(
        {"x": grid.xy[:, 0], "y": grid.xy[:, 1], "area_m2": grid.area_m2},
        geometry=gpd.GeoSeries(np.full(len(grid.xy), None, dtype=object), crs=CRS),
        crs=CRS,
    )


def _records(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows of numpy columns as JSON-ready dicts: Python numbers, None for NaN."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, float | np.floating):
            return None if np.isnan(v) else float(v)
        return v

    names = list(columns)
    return [
        {name: plain(value) for name, value in zip(names, row, strict=True)}
        for row in zip(*(columns[n] for n in names), strict=True)
    ]


def _profile(
    distance: np.ndarray, weight: np.ndarray, reach: float, steps: int = 40
) -> list[list[float | None]]:
    """Share of the weight within each distance from 0 to ``reach``: the coverage curve of the chart.

    Binned rather than sorted (a sort of 600,000 distances costs ten times more): each point
    adds its weight from the first step that reaches it.
    """
    total = float(weight.sum())
    at = np.linspace(0, reach, steps + 1)
    # The first step at or beyond each distance (searchsorted, but arithmetic: 5x faster), moved
    # by one where rounding put it next to the right step; beyond reach (or inf): step + 1.
    with np.errstate(invalid="ignore"):
        first = np.clip(np.ceil(distance * (steps / reach)), 0, steps + 1)
    first = np.where(np.isnan(first), steps + 1, first).astype(np.intp)
    inside = first <= steps
    first[inside & (at[np.minimum(first, steps)] < distance)] += 1
    lower = first - 1
    first[(lower >= 0) & (lower <= steps) & (at[np.clip(lower, 0, steps)] >= distance)] -= 1
    within = np.cumsum(np.bincount(first, weights=weight, minlength=steps + 2))[: steps + 1]
    return [[float(a), float(w / total) if total > 0 else None] for a, w in zip(at, within, strict=True)]


def _by_demand_and_area(request: ReportRequest, demand: Layer, cells: Layer) -> dict[str, np.ndarray]:
    """Summary columns with the demand's counts and households and the cells' area.

    A borough missing from one side gets zero demand or no area.
    """
    thresholds = request.thresholds
    main = summary_columns(demand.distance, demand.households, demand.area_m2, demand.borough, thresholds)
    by_area = summary_columns(cells.distance, cells.households, cells.area_m2, cells.borough, thresholds)
    keys = list(zip(main["borough_code"], main["threshold_m"], strict=True))
    area_keys = list(zip(by_area["borough_code"], by_area["threshold_m"], strict=True))
    codes = sorted({k[0] for k in keys + area_keys} - {"all"})
    rows_of = {k: i for i, k in enumerate(keys)}
    area_of = {k: i for i, k in enumerate(area_keys)}
    merged = [(c, t) for c in ["all", *codes] for t in sorted({k[1] for k in keys + area_keys})]
    take = np.array([rows_of.get(k, -1) for k in merged])
    take_area = np.array([area_of.get(k, -1) for k in merged])
    table = {"borough_code": np.array([k[0] for k in merged], dtype=object)}
    table["threshold_m"] = np.array([k[1] for k in merged], dtype=float)
    for col in ("demand_points", "covered_points", "households", "covered_households", "household_share"):
        values = main[col][np.maximum(take, 0)] if len(take) else np.empty(0)
        missing = 0 if col != "household_share" else np.nan
        table[col] = np.where(take >= 0, values, missing)
    for col in ("area_m2", "covered_area_m2", "area_share"):
        values = by_area[col][np.maximum(take_area, 0)] if len(take_area) else np.empty(0)
        table[col] = np.where(take_area >= 0, values, np.nan)
    return table


def _summary(
    request: ReportRequest, demand: Layer, cells: Layer | None, counts: dict[str, int]
) -> dict[str, Any]:
    """The summary of a report, before its gaps and Pipeline projects are added."""
    if cells is None:
        table = summary_columns(
            demand.distance, demand.households, demand.area_m2, demand.borough, request.thresholds
        )
    else:
        table = _by_demand_and_area(request, demand, cells)
    rows = _records(table)
    grid = cells if cells is not None else demand
    finite = np.isfinite(demand.distance)
    return {
        "thresholds": list(request.thresholds),
        "whole_area": [r for r in rows if r["borough_code"] == "all"],
        "boroughs": [r for r in rows if r["borough_code"] != "all"],
        "demand_points": len(demand.xy),
        "cells": len(grid.xy),
        "households": float(demand.households.sum()),
        "area_m2": float(grid.area_m2.sum()) if grid.area_m2 is not None else None,
        "mean_distance_m": float(np.mean(demand.distance[finite])) if finite.any() else None,
        "beyond_reach_points": int((~finite).sum()),
        "reach_m": request.reach,
        "assets": counts,
        "profile": {
            "households": _profile(demand.distance, demand.households, request.reach),
            "area": _profile(
                grid.distance,
                grid.area_m2 if grid.area_m2 is not None else np.ones(len(grid.xy)),
                request.reach,
            ),
        },
    }


def _measure(index: AssetIndex, reach: float, layers: list[Layer]) -> None:
    """Set each layer's nearest distance and asset: one search for all their points together."""
    xy = np.vstack([layer.xy for layer in layers]) if len(layers) > 1 else layers[0].xy
    distance, asset_id = index.nearest(xy, reach)
    start = 0
    for layer in layers:
        layer.distance = distance[start : start + len(layer.xy)]
        layer.asset_id = asset_id[start : start + len(layer.xy)]
        start += len(layer.xy)


def _gaps(request: ReportRequest, grid: Layer) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """The gaps without their polygons, and their summary."""
    table = find_gaps(
        _grid_frame(grid), grid.distance, grid.households, request.gap_threshold, polygons=False
    )
    return table, {
        "threshold_m": request.gap_threshold,
        "count": len(table),
        "households": float(table["households"].sum()) if len(table) else 0.0,
        "area_m2": float(table["area_m2"].sum()) if len(table) else 0.0,
    }


def _priorities(
    request: ReportRequest,
    demand: Layer,
    entry: IndexedAssets,
    spacing: float,
    conn: psycopg.Connection[Any] | None = None,
    summary: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The candidate assets that add the most households, in the order chosen.

    With a ``summary``, its ``priorities`` is the certificate: the LP bound and the proven gap
    (:mod:`geo.coverage.optimality`). A budget reads the candidates' costs through ``conn``.
    """
    if request.k == 0:
        empty = np.empty((0, 2))
        return prioritise(empty, np.empty(0), np.empty(0), empty, np.empty(0, np.int64), k=0)
    cpts, cids, clines, clids = entry.assets.candidates()
    costs = None
    if request.budget is not None:
        assert conn is not None, "a budgeted prioritisation reads the candidates' costs"
        costs = candidate_costs(conn, np.concatenate([cids, clids]), request)
    try:
        table = prioritise(
            demand.xy, demand.households, demand.distance, cpts, cids, clines, clids,
            radius=request.radius, k=request.k, spacing=spacing, index=entry.candidate_index(spacing),
            method=request.priorities_method, costs=costs, budget=request.budget,  # type: ignore[arg-type]
            certify=summary is not None, time_limit=request.time_limit,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidCoverageRequest(str(exc)) from exc
    if summary is not None:
        summary["priorities"] = certificate_of(table)
    return table


class _Laps:
    """The time of each step, told to ``progress`` as each ends."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()
        progress(STEPS[0], 0, len(STEPS))

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = round(now - self._clock, 4)
        self._clock = now
        self.progress(step, STEPS.index(step) + 1, len(STEPS))


def compute_report(
    url: str,
    request: ReportRequest,
    spacing: float,
    progress: Progress = silent,
    conn: psycopg.Connection[Any] | None = None,
) -> ReportResult:
    """Compute a coverage report from the database, without storing it.

    Parameters
    ----------
    url : str
        Database URL (two connections are opened to read the assets in parallel).
    request : ReportRequest
        From :func:`~geo.coverage.request.build_request`.
    spacing : float
        Duct spacing of the asset index (the settings' ``spacing_m``): speed only, never the answer.
    progress : callable, optional
        Called with ``(step, done, total)`` after each of the :data:`STEPS`.
    conn : psycopg.Connection, optional
        A connection to the same database to read through (one is opened otherwise).

    Returns
    -------
    ReportResult
        Demand points and cells with their nearest distance (exact up to ``request.reach``,
        ``inf`` beyond) and asset, the summary, the gaps at ``gap_threshold`` (largest first),
        the priorities and the time of each stage in seconds.

    Notes
    -----
    Performance (``bench/bench_coverage.py``): the process keeps, between reports, the
    indexed assets of the last :data:`~geo.coverage.cache.ASSET_INDEX_CACHE_SIZE` filters and boxes
    at their data version (:mod:`geo.coverage.cache`: one versions query tells whether they still hold),
    the union of borough lists, the grid of an area with its boroughs and postcode
    households, and the postcode layer. A warm report is then dominated by the exact nearest
    search (:meth:`geo.coverage.nearest.AssetIndex.nearest`); a cold one by reading the assets. The
    gap polygons are left to :attr:`ReportResult.gaps`, built when the report is stored.
    """
    lap = _Laps(progress)
    with psycopg.connect(url) if conn is None else contextlib.nullcontext(conn) as conn:
        # The versions first (one small query): they say whether the cached asset index holds.
        current = read_versions(conn)
        if request.geometry is None:
            boroughs_version = current.get("boroughs", (0, None))[0]
            request = resolve_boroughs(url, request, current.get("database"), boroughs_version)
        lap("area")
        scheduler = distributed.scheduler_for(request)
        if scheduler is not None:
            return _partitioned(url, request, spacing, lap, conn, current, scheduler)
        entry = indexed_assets(url, request, spacing, current)
        lap("assets")
        # The assets' versions from the index's key; the other layers' as read just now (a
        # cached index may be older than a change to the boroughs or the Pipeline).
        data = {layer: v[0] for layer, v in current.items() if layer != "database"}
        data.update({layer: entry.assets.versions.get(layer) for layer in ("assets", "wayleaves")})
        demand, cells, source = demand_layers(url, request, data.get("boroughs") or 0)
        lap("demand")
        _measure(entry.index, request.reach, [demand] if cells is None else [demand, cells])
        lap("nearest")
        summary = _summary(request, demand, cells, entry.assets.counts())
        lap("summary")
        gap_table, summary["gaps"] = _gaps(request, cells if cells is not None else demand)
        lap("gaps")
        priorities = _priorities(request, demand, entry, spacing, conn, summary)
        lap("priorities")
        return _finish(
            url, conn, current, data, source, lap, request, demand, cells, summary, gap_table, priorities
        )


def _partitioned(
    url: str,
    request: ReportRequest,
    spacing: float,
    lap: _Laps,
    conn: psycopg.Connection[Any],
    current: dict[str, Any],
    scheduler: str,
) -> ReportResult:
    """:func:`compute_report` on a Dask cluster (:mod:`geo.coverage.distributed`): the same result.

    The client reads only the asset counts and candidate ids (one query); the workers read and
    measure the assets of their partitions. The summary, gaps and priorities are the
    single-process functions over the combined distances and reach pairs. ``summary["ran_on"]``
    says where it ran (the scheduler, partitions, workers).
    """
    snapshot = read_versions(conn)
    counts, candidate_ids = distributed.client_counts(conn, request)
    if read_versions(conn) != snapshot:
        raise distributed.DataChanged("the assets changed while the report was read")
    data = {layer: v[0] for layer, v in snapshot.items() if layer != "database"}
    lap("assets")
    demand, cells, source = demand_layers(url, request, data.get("boroughs") or 0)
    lap("demand")
    client = distributed.client_for(scheduler)
    size = DaskSettings().partition_m
    pairs = distributed.measure_partitioned(client, url, request, demand, cells, data, spacing, size)
    lap("nearest")
    summary = _summary(request, demand, cells, counts)
    summary["ran_on"] = pairs[2]
    lap("summary")
    gap_table, summary["gaps"] = _gaps(request, cells if cells is not None else demand)
    lap("gaps")
    priorities = distributed.prioritise_pairs(request, demand, candidate_ids, pairs[0], pairs[1], conn)
    if request.k > 0:  # as in process: a report without priorities has no certificate key
        summary["priorities"] = certificate_of(priorities)
    lap("priorities")
    return _finish(
        url, conn, current, data, source, lap, request, demand, cells, summary, gap_table, priorities
    )


def _finish(
    url: str,
    conn: psycopg.Connection[Any],
    current: dict[str, Any],
    data: dict[str, Any],
    source: Any,
    lap: _Laps,
    request: ReportRequest,
    demand: Layer,
    cells: Layer | None,
    summary: dict[str, Any],
    gap_table: gpd.GeoDataFrame,
    priorities: pd.DataFrame,
) -> ReportResult:
    """The last step of both ways of computing a report: the Pipeline projects in or touching the
    area (no personal data), listed and drawn by the report, and the data versions it was made from."""
    summary["pipeline_projects"] = pipeline_projects(
        conn, url, current.get("database"), request.geometry, data
    )
    lap("pipeline")
    versions = {
        "assets": data.get("assets"),
        "boroughs": data.get("boroughs"),
        "pipeline": data.get("pipeline"),
    }
    if request.ready_now:
        versions["wayleaves"] = data.get("wayleaves")
    versions["demand"] = source
    return ReportResult(request, demand, cells, summary, gap_table, priorities, lap.timings, versions)
