"""Coverage analysis and reports: how far demand is from assets, what is covered, the gaps, what next.

The analysis is pure: ``nearest`` (the exact nearest-asset search), ``engine`` (coverage at
thresholds, gaps, priorities) and ``demand`` (postcode households, grids, premises points). A
report around it: ``request`` (the body of ``POST /coverage/reports`` and the report it asks
for) with ``area`` (borough codes, a polygon or a bbox as one geometry), ``sources`` (the assets
and boroughs read from the database), ``cache`` (what the process keeps between reports),
``demand_layers`` (a report's demand points and cells), ``compute`` (the report computed),
``store`` (recorded, run and stored), ``results`` (read back for the downloads and the page),
``schemas`` (the JSON of a report record) and ``errors``.

The names below are imported when first used, so that importing this package stays cheap: the
analysis loads scipy, pandas and geopandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geo.core.lazy import lazy_exports

if TYPE_CHECKING:
    from geo.coverage.area import parse_area
    from geo.coverage.cache import ASSET_INDEXES, IndexedAssets, ProcessCache, indexed_assets
    from geo.coverage.compute import STEPS, ReportResult, compute_report
    from geo.coverage.demand import (
        assign_boroughs,
        grid_centroids,
        grid_demand,
        points_demand,
        postcode_demand,
    )
    from geo.coverage.demand_layers import OUTSIDE, Layer, demand_layers
    from geo.coverage.engine import coverage_summary, find_gaps, prioritise, summary_columns
    from geo.coverage.errors import (
        InvalidArea,
        InvalidCoverageRequest,
        ReportNotFound,
        ReportNotReady,
        ReportPurged,
        WayleavesUnavailable,
    )
    from geo.coverage.nearest import AssetIndex, nearest_assets
    from geo.coverage.request import CoverageRequest, ReportRequest, build_request, check_size, parse_request
    from geo.coverage.results import (
        DEMAND_COLUMNS,
        PRIORITY_COLUMNS,
        PRIORITY_CSV_COLUMNS,
        area_feature,
        cell_features,
        demand_rows,
        finished_report,
        gap_features,
        get_report,
        list_reports,
        priority_csv_rows,
        priority_rows,
    )
    from geo.coverage.schemas import JobProgress, ReportListItem, ReportRecord
    from geo.coverage.sources import Assets, area_m2, read_assets, resolve_area, wayleave_view_exists
    from geo.coverage.store import create_report, open_report, run_new_report, run_report, store_result

#: Public name -> the module of this package that defines it.
_HOMES = {
    "ASSET_INDEXES": "cache",
    "AssetIndex": "nearest",
    "Assets": "sources",
    "CoverageRequest": "request",
    "DEMAND_COLUMNS": "results",
    "IndexedAssets": "cache",
    "InvalidArea": "errors",
    "InvalidCoverageRequest": "errors",
    "Layer": "demand_layers",
    "OUTSIDE": "demand_layers",
    "PRIORITY_COLUMNS": "results",
    "PRIORITY_CSV_COLUMNS": "results",
    "priority_csv_rows": "results",
    "ProcessCache": "cache",
    "JobProgress": "schemas",
    "ReportListItem": "schemas",
    "ReportNotFound": "errors",
    "ReportNotReady": "errors",
    "ReportPurged": "errors",
    "ReportRecord": "schemas",
    "ReportRequest": "request",
    "ReportResult": "compute",
    "STEPS": "compute",
    "WayleavesUnavailable": "errors",
    "area_feature": "results",
    "area_m2": "sources",
    "assign_boroughs": "demand",
    "build_request": "request",
    "cell_features": "results",
    "check_size": "request",
    "compute_report": "compute",
    "coverage_summary": "engine",
    "create_report": "store",
    "demand_layers": "demand_layers",
    "demand_rows": "results",
    "find_gaps": "engine",
    "finished_report": "results",
    "gap_features": "results",
    "get_report": "results",
    "grid_centroids": "demand",
    "grid_demand": "demand",
    "indexed_assets": "cache",
    "list_reports": "results",
    "nearest_assets": "nearest",
    "open_report": "store",
    "parse_area": "area",
    "parse_request": "request",
    "points_demand": "demand",
    "postcode_demand": "demand",
    "prioritise": "engine",
    "priority_rows": "results",
    "read_assets": "sources",
    "resolve_area": "sources",
    "run_new_report": "store",
    "run_report": "store",
    "store_result": "store",
    "summary_columns": "engine",
    "wayleave_view_exists": "sources",
}

__all__ = [
    "ASSET_INDEXES",
    "AssetIndex",
    "Assets",
    "CoverageRequest",
    "DEMAND_COLUMNS",
    "IndexedAssets",
    "InvalidArea",
    "InvalidCoverageRequest",
    "Layer",
    "OUTSIDE",
    "PRIORITY_COLUMNS",
    "PRIORITY_CSV_COLUMNS",
    "ProcessCache",
    "JobProgress",
    "ReportListItem",
    "ReportNotFound",
    "ReportNotReady",
    "ReportPurged",
    "ReportRecord",
    "ReportRequest",
    "ReportResult",
    "STEPS",
    "WayleavesUnavailable",
    "area_feature",
    "area_m2",
    "assign_boroughs",
    "build_request",
    "cell_features",
    "check_size",
    "compute_report",
    "coverage_summary",
    "create_report",
    "demand_layers",
    "demand_rows",
    "find_gaps",
    "finished_report",
    "gap_features",
    "get_report",
    "grid_centroids",
    "grid_demand",
    "indexed_assets",
    "list_reports",
    "nearest_assets",
    "open_report",
    "parse_area",
    "parse_request",
    "points_demand",
    "postcode_demand",
    "prioritise",
    "priority_csv_rows",
    "priority_rows",
    "read_assets",
    "resolve_area",
    "run_new_report",
    "run_report",
    "store_result",
    "summary_columns",
    "wayleave_view_exists",
]

__getattr__ = lazy_exports(__name__, _HOMES)
