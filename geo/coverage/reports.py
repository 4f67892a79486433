"""Coverage reports: parse a request, read assets and demand, run the engine, store the results.

The orchestration around the pure engine of :mod:`geo.coverage.engine` and the demand layers of
:mod:`geo.coverage.demand`. A report is one row of ``coverage_reports`` (normalised parameters, the
data versions it was computed from, state, progress, summary, timings) plus its results in
``coverage_report_points`` (demand points and grid cells), ``coverage_report_gaps`` and
``coverage_report_priorities``, so every download is served again without recomputing and
the same parameters on the same data versions give the same numbers.

Everything is computed in EPSG:27700 metres; only the downloads turn into WGS84.

Pipeline of :func:`compute_report`:

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
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from numpy.typing import ArrayLike
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pyproj import Transformer

from geo.access.audit import record
from geo.access.principals import Principal
from geo.core.errors import Conflict, Gone, InvalidInput, NotFound
from geo.core.jobs import ACTIVE, JobStatus, owner
from geo.core.progress import Progress, silent
from geo.core.settings import CoverageSettings
from geo.coverage.demand import assign_boroughs, grid_centroids, points_demand, postcode_demand
from geo.coverage.engine import AssetIndex, find_gaps, prioritise, summary_columns
from geo.projects.store import projects_in_area
from geo.reference.boroughs import GSS_CODES, UnknownBorough, check_code
from geo.reference.model import KINDS, load_model

CRS = "EPSG:27700"
WGS84 = "EPSG:4326"
CELL_SIZES = (50.0, 100.0, 250.0)
DEMANDS = ("postcodes", "grid", "premises")
#: Statuses never offered as candidates for prioritisation: the asset is gone for good.
NEVER_CANDIDATES = ("removed", "decommissioned", "abandoned")
#: Where London is, with a margin (EPSG:27700): an area outside it is almost surely a CRS mistake.
LONDON_BOX = shapely.box(490_000, 145_000, 575_000, 210_000)
OUTSIDE = "outside"
STEPS = ("area", "assets", "demand", "nearest", "summary", "gaps", "priorities", "pipeline", "store")
POSTCODE_SOURCE = "postcodes: Code-Point Open 2014, LSOA 2011 households"
_TO_WGS84 = Transformer.from_crs(CRS, WGS84, always_xy=True)
_TO_BNG = Transformer.from_crs(WGS84, CRS, always_xy=True)


class InvalidCoverageRequest(InvalidInput):
    """A parameter of a coverage request is not acceptable (422); the message names it and its value."""


class InvalidArea(InvalidCoverageRequest):
    """The area is not a usable polygon, bbox or list of boroughs (422)."""


class ReportNotFound(NotFound):
    """No report has that id, or the caller may not see it (404)."""


class ReportNotReady(Conflict):
    """The report is still queued or running, or failed: its results cannot be read (409)."""


class ReportPurged(Gone):
    """The report's premises points were deleted at the end of their retention period (410)."""


class WayleavesUnavailable(Conflict):
    """``ready_now`` was asked but the database has no wayleave status view (409)."""


# Request ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportRequest:
    """A validated coverage request. :meth:`parameters` is its normalised JSON form."""

    area: dict[str, Any]
    geometry: shapely.Geometry = field(compare=False, repr=False)
    thresholds: tuple[float, ...]
    demand: str
    cell_size: float
    gap_threshold: float
    kinds: tuple[str, ...]
    subtypes: tuple[str, ...] | None
    statuses: tuple[str, ...]
    asset_boroughs: tuple[str, ...] | None
    ready_now: bool
    k: int
    radius: float
    premises: gpd.GeoDataFrame | None = field(default=None, compare=False, repr=False)
    premises_digest: str | None = None

    @property
    def reach(self) -> float:
        """The largest distance any result needs: nearest distances are exact up to it."""
        return max(*self.thresholds, self.gap_threshold, self.radius)

    def parameters(self) -> dict[str, Any]:
        """The request as normalised JSON: equal requests give equal dictionaries."""
        out: dict[str, Any] = {
            "area": self.area,
            "demand": self.demand,
            "cell_size": self.cell_size,
            "thresholds": list(self.thresholds),
            "gap_threshold": self.gap_threshold,
            "kinds": list(self.kinds),
            "subtypes": None if self.subtypes is None else list(self.subtypes),
            "statuses": list(self.statuses),
            "asset_boroughs": None if self.asset_boroughs is None else list(self.asset_boroughs),
            "ready_now": self.ready_now,
            "k": self.k,
            "radius": self.radius,
        }
        if self.premises is not None:
            out["premises"] = {"count": len(self.premises), "sha256": self.premises_digest}
        return out

    def estimated_size(self, area_m2: float | None = None) -> int:
        """Demand points plus grid cells, roughly: decides between computing now and in the background.

        ``area_m2``: the area's size when the geometry is not resolved yet (an area of boroughs).
        """
        area = self.geometry.area if area_m2 is None else area_m2
        cells = int(area / self.cell_size**2)
        if self.demand == "premises" and self.premises is not None:
            return cells + len(self.premises)
        if self.demand == "postcodes":
            return cells + int(area / 1e6 * 115)  # London: ~115 postcodes per km²
        return cells


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCoverageRequest(f"{name}: {value!r} is not a number")
    if not low <= value <= high:
        raise InvalidCoverageRequest(f"{name}: {value!r} is outside {low:g} to {high:g}")
    return float(value)


def _codes(name: str, value: Any, allowed: Sequence[str] | set[str] | None = None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidCoverageRequest(f"{name}: {value!r} is not a list of codes")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise InvalidCoverageRequest(
                f"{name}: {', '.join(map(repr, bad))} not one of {', '.join(sorted(allowed))}"
            )
    return tuple(sorted(set(value)))


def _crs(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in ("4326", "EPSG:4326", "OGC:CRS84", "CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "WGS84"):
        return WGS84
    if text in ("27700", "EPSG:27700", "URN:OGC:DEF:CRS:EPSG::27700", "BNG"):
        return CRS
    if text.startswith("HTTP") and text.endswith(("/4326", "/CRS84")):
        return WGS84
    if text.startswith("HTTP") and text.endswith("/27700"):
        return CRS
    raise InvalidArea(f"{name}: {value!r} is not EPSG:4326 (WGS84) or EPSG:27700 (British National Grid)")


def _guess_crs(name: str, xy: np.ndarray) -> str:
    """WGS84 or British National Grid, from the coordinates' ranges."""
    if xy.size == 0:
        raise InvalidArea(f"{name}: has no coordinates")
    x, y = xy[:, 0], xy[:, 1]
    if (np.abs(x) <= 180).all() and (np.abs(y) <= 90).all():
        return WGS84
    if (x >= 0).all() and (x <= 700_000).all() and (y >= 0).all() and (y <= 1_300_000).all():
        return CRS
    raise InvalidArea(
        f"{name}: coordinates such as ({x[0]:g}, {y[0]:g}) are neither longitude/latitude (WGS84) "
        "nor British National Grid metres; give 'crs'"
    )


def _to_bng(geometry: shapely.Geometry, crs: str) -> shapely.Geometry:
    if crs == CRS:
        return geometry
    return shapely.transform(geometry, lambda xy: np.column_stack(_TO_BNG.transform(xy[:, 0], xy[:, 1])))


def _polygonal(name: str, geometry: shapely.Geometry) -> shapely.Geometry:
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if geometry.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
        geometry = shapely.union_all(parts) if parts else shapely.Polygon()
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty or geometry.area <= 0:
        raise InvalidArea(f"{name}: is not a polygon with an area")
    if not geometry.intersects(LONDON_BOX):
        raise InvalidArea(
            f"{name}: lies outside London (bounds {', '.join(f'{b:.0f}' for b in geometry.bounds)} in "
            "EPSG:27700); check the coordinate order (longitude first) and 'crs'"
        )
    return geometry


def parse_area(area: Any) -> tuple[dict[str, Any], shapely.Geometry | None]:
    """Validate an area and return its normalised form and, unless it is boroughs, its geometry.

    Parameters
    ----------
    area : dict
        Exactly one of ``{"boroughs": ["E09000007", ...]}``, ``{"geometry": <GeoJSON Polygon or
        MultiPolygon>, "crs": ...}`` or ``{"bbox": [minx, miny, maxx, maxy], "crs": ...}``. A
        bare GeoJSON Polygon/MultiPolygon (or a Feature holding one) is taken as ``geometry``.
        ``crs`` is ``EPSG:4326`` or ``EPSG:27700``; without it the coordinates' ranges decide.

    Returns
    -------
    normalised : dict
        The area as stored in the report's parameters (boroughs sorted, the CRS resolved).
    geometry : shapely.Geometry or None
        The area in EPSG:27700 (None for boroughs: they are read from the database).

    Raises
    ------
    InvalidArea
        Naming the field and the value that is wrong.

    Examples
    --------
    >>> parse_area({"bbox": [528000, 181000, 529000, 182000]})[1].area
    1000000.0
    """
    if not isinstance(area, dict):
        raise InvalidArea(f"area: {area!r} is not an object with boroughs, geometry or bbox")
    if area.get("type") in ("Polygon", "MultiPolygon"):
        area = {"geometry": area}
    elif area.get("type") == "Feature":
        area = {"geometry": area.get("geometry"), "crs": area.get("crs")}
    given = [k for k in ("boroughs", "geometry", "bbox") if area.get(k) is not None]
    if len(given) != 1:
        raise InvalidArea("area: give exactly one of boroughs, geometry or bbox")
    unknown = set(area) - {"boroughs", "geometry", "bbox", "crs"}
    if unknown:
        raise InvalidArea(f"area: unknown field(s) {', '.join(sorted(unknown))}")
    crs = _crs("area.crs", area.get("crs"))
    if given[0] == "boroughs":
        value = area["boroughs"]
        codes = [value] if isinstance(value, str) else value
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            raise InvalidArea(f"area.boroughs: {value!r} is not a list of GSS codes")
        try:
            boroughs = sorted({check_code(c) for c in codes})
        except UnknownBorough as exc:
            raise InvalidArea(f"area.boroughs: {exc}") from exc
        return {"boroughs": boroughs}, None
    if given[0] == "bbox":
        bbox = area["bbox"]
        if (
            not isinstance(bbox, list | tuple)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        ):
            raise InvalidArea(f"area.bbox: {bbox!r} is not [minx, miny, maxx, maxy]")
        x0, y0, x1, y1 = (float(v) for v in bbox)
        if not (x0 < x1 and y0 < y1):
            raise InvalidArea(f"area.bbox: {bbox!r} needs minx < maxx and miny < maxy")
        crs = crs or _guess_crs("area.bbox", np.array([[x0, y0], [x1, y1]]))
        box = shapely.box(x0, y0, x1, y1)
        if crs == WGS84:  # the box's edges follow parallels and meridians: densify before projecting
            box = shapely.segmentize(box, max(x1 - x0, y1 - y0) / 32)
        geometry = _polygonal("area.bbox", _to_bng(box, crs))
        return {"bbox": [x0, y0, x1, y1], "crs": crs}, geometry
    raw = area["geometry"]
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        kind = raw.get("type") if isinstance(raw, dict) else raw
        raise InvalidArea(f"area.geometry: {kind!r} is not a GeoJSON Polygon or MultiPolygon")
    try:
        geometry = shapely.from_geojson(
            json.dumps({"type": raw["type"], "coordinates": raw.get("coordinates")})
        )
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise InvalidArea(f"area.geometry: not valid GeoJSON coordinates ({exc})") from exc
    crs = crs or _guess_crs("area.geometry", shapely.get_coordinates(geometry))
    geometry = _polygonal("area.geometry", _to_bng(geometry, crs))
    normalised = {
        "geometry": json.loads(shapely.to_geojson(shapely.from_geojson(json.dumps(raw)))),
        "crs": crs,
    }
    return normalised, geometry


def _premises(value: Any, crs: Any, limit: int) -> tuple[gpd.GeoDataFrame, str]:
    if not isinstance(value, dict) or value.get("type") != "FeatureCollection":
        raise InvalidCoverageRequest("premises: is not a GeoJSON FeatureCollection")
    features = value.get("features")
    if not isinstance(features, list) or not features:
        raise InvalidCoverageRequest("premises: the FeatureCollection has no features")
    if len(features) > limit:
        raise InvalidCoverageRequest(f"premises: {len(features):,} points, more than the limit of {limit:,}")
    try:
        frame = gpd.GeoDataFrame.from_features(features)
    except Exception as exc:
        raise InvalidCoverageRequest(f"premises: features not readable ({exc})") from exc
    if frame.geometry.isna().any() or not frame.geom_type.eq("Point").all():
        raise InvalidCoverageRequest("premises: every feature must be a Point")
    crs = _crs("premises_crs", crs) or _guess_crs("premises", shapely.get_coordinates(frame.geometry.values))
    frame = frame.set_crs(crs)
    try:
        frame = points_demand(frame)
    except ValueError as exc:
        raise InvalidCoverageRequest(f"premises: {exc}") from exc
    xy = shapely.get_coordinates(frame.geometry.values)
    payload = np.column_stack([xy, frame["households"].to_numpy(float)]).round(3)
    return frame, hashlib.sha256(payload.tobytes()).hexdigest()


FIELDS = {
    "area", "thresholds", "demand", "cell_size", "gap_threshold", "kinds", "subtypes", "statuses",
    "asset_boroughs", "ready_now", "k", "radius", "premises", "premises_crs",
}  # fmt: skip


def parse_request(body: Any, settings: CoverageSettings | None = None) -> ReportRequest:
    """Validate a coverage request (the JSON body of ``POST /coverage/reports``).

    Parameters
    ----------
    body : dict
        ``area`` (see :func:`parse_area`; required), ``thresholds`` (metres, default the
        settings'), ``demand`` (``postcodes``, ``grid`` or ``premises``), ``cell_size`` (50, 100
        or 250: the grid of the demand and of the gaps), ``premises`` (a GeoJSON FeatureCollection
        of points with an optional ``households`` property) and ``premises_crs``,
        ``gap_threshold`` (default the middle threshold), asset filters ``kinds``, ``subtypes``,
        ``statuses`` (default the usable ones), ``asset_boroughs`` and ``ready_now`` (only
        assets with a signed or live wayleave), and the prioritisation's ``k`` and ``radius``.
    settings : CoverageSettings, optional
        Defaults and limits.

    Returns
    -------
    ReportRequest
        With the area's geometry in EPSG:27700 (None for boroughs until :func:`resolve_area`).

    Raises
    ------
    InvalidCoverageRequest
        Naming the field and the value that is wrong (:class:`InvalidArea` for the area).
    """
    settings = settings or CoverageSettings()
    if not isinstance(body, dict):
        raise InvalidCoverageRequest("the request body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise InvalidCoverageRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "area" not in body:
        raise InvalidArea("area: missing; give boroughs, geometry or bbox")
    area, geometry = parse_area(body["area"])
    raw_thresholds = body.get("thresholds", list(settings.thresholds))
    if not isinstance(raw_thresholds, list | tuple) or not raw_thresholds or len(raw_thresholds) > 12:
        raise InvalidCoverageRequest(f"thresholds: {raw_thresholds!r} is not a list of 1 to 12 distances")
    thresholds = tuple(sorted({_number("thresholds", t, 1, 5000) for t in raw_thresholds}))
    demand = body.get("demand", "postcodes")
    if demand not in DEMANDS:
        raise InvalidCoverageRequest(f"demand: {demand!r} is not one of {', '.join(DEMANDS)}")
    cell_size = _number("cell_size", body.get("cell_size", settings.grid_cell_m), 1, 10_000)
    if cell_size not in CELL_SIZES:
        raise InvalidCoverageRequest(f"cell_size: {body.get('cell_size')!r} is not 50, 100 or 250")
    gap = _number("gap_threshold", body.get("gap_threshold", thresholds[len(thresholds) // 2]), 1, 5000)
    model = load_model()
    kinds = _codes("kinds", body.get("kinds"), KINDS) or KINDS
    all_subtypes = {s for kind in kinds for s in model.subtypes[kind]}
    subtypes = _codes("subtypes", body.get("subtypes"), all_subtypes)
    statuses = _codes("statuses", body.get("statuses"), set(model.statuses)) or tuple(
        sorted(model.usable_statuses)
    )
    boroughs = _codes("asset_boroughs", body.get("asset_boroughs"), GSS_CODES)
    ready_now = body.get("ready_now", False)
    if not isinstance(ready_now, bool):
        raise InvalidCoverageRequest(f"ready_now: {ready_now!r} is not true or false")
    k = body.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= settings.max_k:
        raise InvalidCoverageRequest(f"k: {k!r} is not a whole number from 0 to {settings.max_k}")
    radius = _number("radius", body.get("radius", 100.0), 1, 5000)
    premises, digest = None, None
    if demand == "premises":
        if body.get("premises") is None:
            raise InvalidCoverageRequest("premises: demand 'premises' needs a FeatureCollection of points")
        premises, digest = _premises(body["premises"], body.get("premises_crs"), settings.max_premises)
    elif body.get("premises") is not None:
        raise InvalidCoverageRequest(f"premises: given, but demand is {demand!r}; set demand to 'premises'")
    request = ReportRequest(
        area=area, geometry=geometry, thresholds=thresholds, demand=demand, cell_size=cell_size,
        gap_threshold=gap, kinds=tuple(sorted(kinds)), subtypes=subtypes, statuses=statuses,
        asset_boroughs=boroughs, ready_now=ready_now, k=int(k), radius=radius, premises=premises,
        premises_digest=digest,
    )  # fmt: skip
    if geometry is not None:
        _check_size(request, settings)
    return request


async def area_m2(conn: psycopg.AsyncConnection[Any], request: ReportRequest) -> float:
    """The size of a request's area in m², its boroughs' when it names boroughs."""
    if request.geometry is not None:
        return float(request.geometry.area)
    cur = await conn.execute(
        "SELECT coalesce(sum(ST_Area(geom)), 0) FROM boroughs WHERE code = ANY(%s)",
        [request.area["boroughs"]],
    )
    row = await cur.fetchone()
    return float(row[0]) if row else 0.0


def _check_size(request: ReportRequest, settings: CoverageSettings) -> None:
    cells = request.geometry.area / request.cell_size**2
    if cells > settings.max_cells:
        raise InvalidArea(
            f"area: {request.geometry.area / 1e6:,.0f} km² makes {cells:,.0f} cells of {request.cell_size:g} m, "
            f"more than the limit of {settings.max_cells:,}; use a larger cell_size or a smaller area"
        )


def resolve_area(conn: psycopg.Connection[Any], request: ReportRequest) -> ReportRequest:
    """The request with the geometry of its boroughs read from the database (others unchanged)."""
    if request.geometry is not None:
        return request
    row = conn.execute(
        "SELECT ST_AsBinary(ST_Union(geom)) FROM boroughs WHERE code = ANY(%s)", [request.area["boroughs"]]
    ).fetchone()
    if row is None or row[0] is None:
        raise InvalidArea(f"area.boroughs: {request.area['boroughs']} are not loaded in the database")
    geometry = shapely.from_wkb(bytes(row[0]))
    return ReportRequest(**{**_fields(request), "geometry": geometry})


@functools.lru_cache(maxsize=16)
def _borough_union(url: str, database: Any, codes: tuple[str, ...], version: int) -> shapely.Geometry | None:
    """The union of some boroughs (33 boroughs: about 0.2 s in PostGIS, so kept)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ST_AsBinary(ST_Union(geom)) FROM boroughs WHERE code = ANY(%s)", [list(codes)]
        ).fetchone()
    return None if row is None or row[0] is None else shapely.from_wkb(bytes(row[0]))


def _resolve_boroughs(url: str, request: ReportRequest, database: Any, version: int) -> ReportRequest:
    """:func:`resolve_area`, with the union of the boroughs cached per database and boroughs version."""
    geometry = _borough_union(url, database, tuple(request.area["boroughs"]), version)
    if geometry is None:
        raise InvalidArea(f"area.boroughs: {request.area['boroughs']} are not loaded in the database")
    return ReportRequest(**{**_fields(request), "geometry": geometry})


def _fields(request: ReportRequest) -> dict[str, Any]:
    return {f: getattr(request, f) for f in request.__dataclass_fields__}


# Reading -------------------------------------------------------------------------------------------
def wayleave_view_exists(conn: psycopg.Connection[Any]) -> bool:
    """Whether the ``asset_wayleave_status`` view is there (migration 0004)."""
    row = conn.execute("SELECT to_regclass('asset_wayleave_status') IS NOT NULL").fetchone()
    return bool(row and row[0])


# One row, one bytea: id (int8), x, y (float8) and a flag byte (1 qualifying, 2 candidate) per
# asset, read straight into a numpy structured array. Polygons count by a point on their surface.
ASSET_FILTER = """
FROM assets a {join}
WHERE a.retired_at IS NULL AND a.kind = ANY(%(kinds)s) AND {geometry_kind}
  AND (%(subtypes)s::text[] IS NULL OR a.subtype = ANY(%(subtypes)s))
  AND (%(boroughs)s::text[] IS NULL OR a.borough_code = ANY(%(boroughs)s))
  AND a.geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 27700)
  AND (({qualifies}) OR a.status <> ALL(%(never)s))
"""
QUALIFIES = "a.status = ANY(%(statuses)s)"
READY = " AND coalesce(w.ready_now, false)"
WAYLEAVE_JOIN = "LEFT JOIN asset_wayleave_status w ON w.asset_id = a.id"
POINTS_SQL = """
SELECT coalesce(string_agg(int8send(a.id)
         || float8send(ST_X(CASE WHEN GeometryType(a.geom) = 'POINT' THEN a.geom ELSE ST_PointOnSurface(a.geom) END))
         || float8send(ST_Y(CASE WHEN GeometryType(a.geom) = 'POINT' THEN a.geom ELSE ST_PointOnSurface(a.geom) END))
         || CASE WHEN {qualifies} THEN '\\x01'::bytea ELSE '\\x02'::bytea END, ''::bytea), ''::bytea)
"""
LINES_SQL = "SELECT a.id, ST_AsBinary(a.geom), {qualifies}"
POINT_DTYPE = np.dtype([("id", ">i8"), ("x", ">f8"), ("y", ">f8"), ("flag", "u1")])


@dataclass
class Assets:
    """Qualifying assets and candidates, sorted by id (so results never depend on row order)."""

    point_ids: np.ndarray
    points_xy: np.ndarray
    point_ok: np.ndarray
    line_ids: np.ndarray
    lines: np.ndarray
    line_ok: np.ndarray
    versions: dict[str, int]
    #: The versions with the database OID and change times: the key of the asset index cache.
    snapshot_versions: dict[str, Any] = field(default_factory=dict, repr=False)

    def qualifying(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Point xy, point ids, lines, line ids of the assets that count."""
        p, ln = self.point_ok, self.line_ok
        return self.points_xy[p], self.point_ids[p], self.lines[ln], self.line_ids[ln]

    def candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The same for the assets not yet usable (the candidates of the prioritisation)."""
        p, ln = ~self.point_ok, ~self.line_ok
        return self.points_xy[p], self.point_ids[p], self.lines[ln], self.line_ids[ln]

    def counts(self) -> dict[str, int]:
        """How many of each."""
        return {
            "qualifying_points": int(self.point_ok.sum()),
            "qualifying_lines": int(self.line_ok.sum()),
            "candidate_points": int((~self.point_ok).sum()),
            "candidate_lines": int((~self.line_ok).sum()),
        }


def _asset_sql(template: str, ready_now: bool, geometry_kind: str) -> sql.SQL:
    qualifies = QUALIFIES + (READY if ready_now else "")
    head = template.format(qualifies=qualifies)
    tail = ASSET_FILTER.format(
        join=WAYLEAVE_JOIN if ready_now else "", geometry_kind=geometry_kind, qualifies=qualifies
    )
    return sql.SQL(head + tail)  # type: ignore[arg-type]  # constant text: no user input


def _asset_box(request: ReportRequest) -> tuple[float, float, float, float]:
    """The box whose assets a report reads: the area's box widened by the reach (and 1 m)."""
    x0, y0, x1, y1 = request.geometry.bounds
    r = request.reach + 1.0
    return x0 - r, y0 - r, x1 + r, y1 + r


def read_assets(url: str, request: ReportRequest) -> Assets:
    """Read the qualifying and candidate assets near the area, on two connections in parallel.

    Parameters
    ----------
    url : str
        Database URL.
    request : ReportRequest
        With its geometry resolved; assets within ``request.reach`` of the area's box are read.

    Returns
    -------
    Assets
        Points (point assets, and polygons by a point on their surface) and lines (ducts).

    Raises
    ------
    WayleavesUnavailable
        With ``ready_now`` when the database has no ``asset_wayleave_status`` view.

    Notes
    -----
    Both connections read one snapshot (``pg_export_snapshot``), so points, lines and the
    data versions recorded with the report agree. Points come back as one ``bytea`` decoded
    with a numpy structured dtype, without a Python object per asset.
    """
    x0, y0, x1, y1 = _asset_box(request)
    params = {
        "kinds": list(request.kinds),
        "subtypes": None if request.subtypes is None else list(request.subtypes),
        "boroughs": None if request.asset_boroughs is None else list(request.asset_boroughs),
        "statuses": list(request.statuses),
        "never": list(NEVER_CANDIDATES),
        "x0": x0, "y0": y0, "x1": x1, "y1": y1,
    }  # fmt: skip
    with psycopg.connect(url) as first:
        first.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if request.ready_now and not wayleave_view_exists(first):
            raise WayleavesUnavailable(
                "ready_now: this database does not track wayleaves (no asset_wayleave_status)"
            )
        row = first.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = row[0]
        snapshot_versions = _read_versions(first)
        versions = {k: v[0] for k, v in snapshot_versions.items() if k != "database"}

        def lines() -> list[tuple[Any, ...]]:
            with psycopg.connect(url) as second:
                second.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                second.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                query = _asset_sql(LINES_SQL, request.ready_now, "a.kind = 'duct'")
                return second.cursor(binary=True).execute(query, params).fetchall()

        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(lines) if "duct" in request.kinds else None
            if set(request.kinds) - {"duct"}:
                query = _asset_sql(POINTS_SQL, request.ready_now, "a.kind <> 'duct'")
                blob = first.cursor(binary=True).execute(query, params).fetchone()
                raw = np.frombuffer(bytes(blob[0]) if blob else b"", dtype=POINT_DTYPE)
            else:
                raw = np.zeros(0, dtype=POINT_DTYPE)
            line_rows = future.result() if future is not None else []
        first.rollback()
    raw = raw[np.argsort(raw["id"], kind="stable")]
    line_rows.sort(key=lambda t: t[0])
    return Assets(
        point_ids=raw["id"].astype(np.int64),
        points_xy=np.column_stack([raw["x"], raw["y"]]).astype(float),
        point_ok=raw["flag"] == 1,
        line_ids=np.array([t[0] for t in line_rows], dtype=np.int64),
        lines=shapely.from_wkb([bytes(t[1]) for t in line_rows]) if line_rows else np.empty(0, dtype=object),
        line_ok=np.array([bool(t[2]) for t in line_rows], dtype=bool),
        versions={k: int(v) for k, v in versions.items()},
        snapshot_versions=snapshot_versions,
    )


# The asset index cache ------------------------------------------------------------------------------
#: How many indexed asset sets the process keeps (least recently used first out). London's
#: (550,000 points and ducts densified into 470,000 vertices) takes about 150 MB.
ASSET_INDEX_CACHE_SIZE = 4
V = TypeVar("V")
#: The data versions an asset set depends on: ``assets`` always, ``wayleaves`` with ``ready_now``.
VERSIONS_SQL = """SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), layer, version,
                         changed_at FROM data_versions"""


@dataclass
class IndexedAssets:
    """The assets of one filter, box and data version, with their nearest-asset indexes built."""

    assets: Assets
    index: AssetIndex
    _candidates: AssetIndex | None = field(default=None, repr=False)

    def candidate_index(self, spacing: float) -> AssetIndex:
        """The index of the candidates (built on first use: only prioritisation needs it)."""
        if self._candidates is None:
            cpts, cids, clines, clids = self.assets.candidates()
            self._candidates = AssetIndex(cpts, cids, clines, clids, spacing)
        return self._candidates


class ProcessCache(Generic[V]):
    """A bounded, thread-safe, least-recently-used map: what the process keeps between reports.

    The asset indexes (:data:`ASSET_INDEXES`) are keyed by the database (URL and OID), the
    data versions their assets depend on (``data_versions``: the ``assets`` layer, and
    ``wayleaves`` for ``ready_now``; every statement that changes those tables bumps them, in
    its own transaction), the asset filters, the box read and the index spacing. A warm report
    reads the versions (one small query) and, when nothing changed, reuses the index instead
    of reading the assets again; any change to the assets makes a new key, so a stale entry is
    never used (it just ages out). Entries are immutable once stored, apart from the candidate
    index built on demand.
    """

    def __init__(self, maxsize: int = ASSET_INDEX_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The entry for ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: Hashable, entry: V) -> None:
        """Store an entry, dropping the least recently used beyond :attr:`maxsize`."""
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the counters too)."""
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


#: The process-wide cache of the reports (the service is long running: warm reports reuse it).
ASSET_INDEXES: ProcessCache[IndexedAssets] = ProcessCache()


def _asset_key(url: str, request: ReportRequest, versions: dict[str, Any], spacing: float) -> Hashable:
    layers = ("assets", "wayleaves") if request.ready_now else ("assets",)
    return (
        url, versions.get("database"), tuple((layer, versions.get(layer)) for layer in layers),
        request.kinds, request.subtypes, request.statuses, request.asset_boroughs, request.ready_now,
        _asset_box(request), spacing,
    )  # fmt: skip


def _read_versions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = conn.execute(VERSIONS_SQL).fetchall()
    versions: dict[str, Any] = {layer: (int(version), changed) for _, layer, version, changed in rows}
    versions["database"] = rows[0][0] if rows else None
    return versions


def indexed_assets(
    url: str, request: ReportRequest, versions: dict[str, Any] | None = None, spacing: float | None = None
) -> IndexedAssets:
    """The request's assets and their index: from :data:`ASSET_INDEXES` when the data is unchanged.

    Parameters
    ----------
    url : str
        Database URL.
    request : ReportRequest
        With its geometry resolved.
    versions : dict, optional
        ``data_versions`` as just read (``_read_versions``); read here when not given.
    spacing : float, optional
        Duct spacing of the index (default the settings').

    Returns
    -------
    IndexedAssets
        ``assets.versions`` are the versions the assets were read at.

    Notes
    -----
    Performance: a hit costs the versions query (a millisecond); a miss reads the assets
    (:func:`read_assets`, about 1-1.5 s for London) and builds the index (about 0.3 s).
    """
    spacing = CoverageSettings().spacing_m if spacing is None else spacing
    if versions is None:
        with psycopg.connect(url) as conn:
            versions = _read_versions(conn)
    entry = ASSET_INDEXES.get(_asset_key(url, request, versions, spacing))
    if entry is not None:
        return entry
    assets = read_assets(url, request)
    pts, pids, lines, lids = assets.qualifying()
    entry = IndexedAssets(assets, AssetIndex(pts, pids, lines, lids, spacing))
    # Keyed by the versions of the snapshot the assets were read in (they may be newer than
    # ``versions``): the same data, whoever asks next.
    ASSET_INDEXES.put(_asset_key(url, request, assets.snapshot_versions, spacing), entry)
    return entry


#: The Pipeline projects of recent areas, as the summaries list them.
_PROJECTS: ProcessCache[list[dict[str, Any]]] = ProcessCache(maxsize=8)


def _pipeline_projects(
    conn: psycopg.Connection[Any], url: str, database: Any, area: shapely.Geometry, versions: dict[str, Any]
) -> list[dict[str, Any]]:
    """The area's Pipeline projects as a summary lists them (JSON values), kept per area and data
    version: London-wide, the query tests the union of 33 boroughs (40 ms a report)."""
    key = (url, database, shapely.to_wkb(area), versions.get("pipeline"), versions.get("boroughs"))
    found = _PROJECTS.get(key)
    if found is None:
        projects = projects_in_area(conn, area)
        found = json.loads(
            json.dumps([{k: v for k, v in p.items() if k != "geom"} for p in projects], default=str)
        )
        _PROJECTS.put(key, found)
    return list(found)


@functools.lru_cache(maxsize=2)
def _borough_frame(url: str, version: int) -> gpd.GeoDataFrame:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT code, ST_AsBinary(geom) FROM boroughs ORDER BY code").fetchall()
    return gpd.GeoDataFrame(
        {"GSS_CODE": [r[0] for r in rows]}, geometry=shapely.from_wkb([bytes(r[1]) for r in rows]), crs=CRS
    )


@functools.lru_cache(maxsize=8)
def _grid(
    area_wkb: bytes, cell_size: float, url: str, boroughs_version: int
) -> tuple[np.ndarray, pd.Categorical]:
    """Grid centroids in an area and their boroughs; cached, as a service asks for the same grids again.

    The boroughs are a :class:`pandas.Categorical`, so that summaries group the cells by its
    codes instead of hashing their strings on every report.
    """
    xy = grid_centroids(shapely.from_wkb(area_wkb), cell_size)
    codes = assign_boroughs(xy, _borough_frame(url, boroughs_version))
    codes[pd.isna(codes)] = OUTSIDE
    xy.setflags(write=False)
    return xy, pd.Categorical(codes)


@functools.cache
def _postcodes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = postcode_demand()
    xy = shapely.get_coordinates(frame.geometry.values)
    codes = frame["borough_code"].fillna(OUTSIDE).to_numpy(dtype=object)
    return frame["postcode"].to_numpy(dtype=object), xy, codes, frame["households"].to_numpy(float)


def _bin_households(cell_xy: np.ndarray, cell_size: float, xy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Households of the points falling in each cell (cells given by their centroids)."""
    out = np.zeros(len(cell_xy))
    if not len(cell_xy) or not len(xy):
        return out

    def key(p: np.ndarray) -> np.ndarray:
        return (np.floor(p[:, 0] / cell_size).astype(np.int64) << 32) + np.floor(p[:, 1] / cell_size).astype(
            np.int64
        )

    cells = key(cell_xy)
    order = np.argsort(cells)
    sorted_cells = cells[order]
    points = key(xy)
    at = np.searchsorted(sorted_cells, points)
    at = np.minimum(at, len(cells) - 1)
    hit = sorted_cells[at] == points
    np.add.at(out, order[at[hit]], weight[hit])
    return out


@dataclass
class Layer:
    """Demand points or grid cells: labels, coordinates, boroughs, weights."""

    label: np.ndarray | None
    xy: np.ndarray
    borough: np.ndarray | pd.Categorical
    households: np.ndarray
    area_m2: np.ndarray | None
    distance: np.ndarray = field(default_factory=lambda: np.empty(0))
    asset_id: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@functools.lru_cache(maxsize=8)
def _postcodes_in(area_wkb: bytes, boroughs: tuple[str, ...] | None) -> np.ndarray:
    """Which postcodes an area holds: by borough code for a list of boroughs, by position otherwise."""
    _, pc_xy, pc_borough, _ = _postcodes()
    if boroughs is not None:
        inside = np.isin(pc_borough, boroughs)
    else:
        area = shapely.from_wkb(area_wkb)
        shapely.prepare(area)
        inside = shapely.contains_xy(area, pc_xy[:, 0], pc_xy[:, 1])
    inside.setflags(write=False)
    return inside


@functools.lru_cache(maxsize=8)
def _cell_households(
    area_wkb: bytes, cell_size: float, url: str, boroughs_version: int, boroughs: tuple[str, ...] | None
) -> np.ndarray:
    """Households of the area's postcodes binned into its grid cells; cached like the grid."""
    cell_xy, _ = _grid(area_wkb, cell_size, url, boroughs_version)
    _, pc_xy, _, pc_hh = _postcodes()
    inside = _postcodes_in(area_wkb, boroughs)
    hh = _bin_households(cell_xy, cell_size, pc_xy[inside], pc_hh[inside])
    hh.setflags(write=False)
    return hh


def demand_layers(url: str, request: ReportRequest, boroughs_version: int) -> tuple[Layer, Layer | None, str]:
    """The demand layer, the gap grid (None when the demand is that grid) and the demand's source.

    The grid of an area, its boroughs and the postcode households in each cell are cached in
    the process (as read-only arrays), as a service sees the same areas again.
    """
    area = request.geometry
    area_wkb = shapely.to_wkb(area)
    cell_xy, cell_borough = _grid(area_wkb, request.cell_size, url, boroughs_version)
    cell_area = np.full(len(cell_xy), request.cell_size**2)
    if request.demand == "grid":
        hh = _cell_households(area_wkb, request.cell_size, url, boroughs_version, None)
        grid = Layer(None, cell_xy, cell_borough, hh, cell_area)
        return grid, None, f"grid {request.cell_size:g} m; households from {POSTCODE_SOURCE}"
    if request.demand == "postcodes":
        pc_label, pc_xy, pc_borough, pc_hh = _postcodes()
        boroughs = tuple(request.area["boroughs"]) if "boroughs" in request.area else None
        inside = _postcodes_in(area_wkb, boroughs)
        demand = Layer(pc_label[inside], pc_xy[inside], pc_borough[inside], pc_hh[inside], None)
        hh = _cell_households(area_wkb, request.cell_size, url, boroughs_version, boroughs)
        return demand, Layer(None, cell_xy, cell_borough, hh, cell_area), POSTCODE_SOURCE
    assert request.premises is not None
    frame = request.premises
    xy = shapely.get_coordinates(frame.geometry.values)
    codes = assign_boroughs(xy, _borough_frame(url, boroughs_version))
    codes[pd.isna(codes)] = OUTSIDE
    labels = (
        frame["id"].astype(str).to_numpy(dtype=object)
        if "id" in frame
        else np.array([str(i + 1) for i in range(len(frame))], dtype=object)
    )
    demand = Layer(labels, xy, codes, frame["households"].to_numpy(float), None)
    source = f"premises sha256:{request.premises_digest}"
    hh = _bin_households(cell_xy, request.cell_size, demand.xy, demand.households)
    return demand, Layer(None, cell_xy, cell_borough, hh, cell_area), source


# Computing -----------------------------------------------------------------------------------------
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


def _summary(
    request: ReportRequest, demand: Layer, cells: Layer | None, counts: dict[str, int]
) -> dict[str, Any]:
    thresholds = request.thresholds
    main = summary_columns(demand.distance, demand.households, demand.area_m2, demand.borough, thresholds)
    if cells is not None:
        # The demand's counts and households, the cells' area; a borough missing from one side
        # gets zero demand or no area.
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
        main = table
    rows = _records(main)
    grid = cells if cells is not None else demand
    return {
        "thresholds": list(thresholds),
        "whole_area": [r for r in rows if r["borough_code"] == "all"],
        "boroughs": [r for r in rows if r["borough_code"] != "all"],
        "demand_points": len(demand.xy),
        "cells": len(grid.xy),
        "households": float(demand.households.sum()),
        "area_m2": float(grid.area_m2.sum()) if grid.area_m2 is not None else None,
        "mean_distance_m": float(np.mean(demand.distance[np.isfinite(demand.distance)]))
        if np.isfinite(demand.distance).any()
        else None,
        "beyond_reach_points": int((~np.isfinite(demand.distance)).sum()),
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


def compute_report(
    url: str,
    request: ReportRequest,
    progress: Progress = silent,
    conn: psycopg.Connection[Any] | None = None,
) -> ReportResult:
    """Compute a coverage report from the database, without storing it.

    Parameters
    ----------
    url : str
        Database URL (two connections are opened to read the assets in parallel).
    request : ReportRequest
        From :func:`parse_request`.
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
    indexed assets of the last :data:`ASSET_INDEX_CACHE_SIZE` filters and boxes at their data
    version (:class:`ProcessCache`: one versions query tells whether they still hold),
    the union of borough lists, the grid of an area with its boroughs and postcode
    households, and the postcode layer. A warm report is then dominated by the exact nearest
    search (:meth:`geo.coverage.engine.AssetIndex.nearest`); a cold one by reading the assets. The
    gap polygons are left to :attr:`ReportResult.gaps`, built when the report is stored.
    """
    timings: dict[str, float] = {}
    total = len(STEPS)
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round(now - clock, 4)
        clock = now
        progress(step, STEPS.index(step) + 1, total)

    progress("area", 0, total)
    spacing = CoverageSettings().spacing_m
    with psycopg.connect(url) if conn is None else contextlib.nullcontext(conn) as conn:
        # The versions first (one small query): they say whether the cached asset index holds.
        current = _read_versions(conn)
        if request.geometry is None:
            boroughs_version = current.get("boroughs", (0, None))[0]
            request = _resolve_boroughs(url, request, current.get("database"), boroughs_version)
        lap("area")
        entry = indexed_assets(url, request, current, spacing)
        assets = entry.assets
        lap("assets")
        # The assets' versions from the index's key; the other layers' as read just now (a
        # cached index may be older than a change to the boroughs or the Pipeline).
        data = {layer: v[0] for layer, v in current.items() if layer != "database"}
        data.update({layer: assets.versions.get(layer) for layer in ("assets", "wayleaves")})
        demand, cells, source = demand_layers(url, request, data.get("boroughs") or 0)
        lap("demand")
        layers = [demand] if cells is None else [demand, cells]
        xy = np.vstack([layer.xy for layer in layers]) if cells is not None else demand.xy
        distance, asset_id = entry.index.nearest(xy, request.reach)
        start = 0
        for layer in layers:
            layer.distance = distance[start : start + len(layer.xy)]
            layer.asset_id = asset_id[start : start + len(layer.xy)]
            start += len(layer.xy)
        lap("nearest")
        summary = _summary(request, demand, cells, assets.counts())
        lap("summary")
        grid = cells if cells is not None else demand
        gap_table = find_gaps(
            _grid_frame(grid), grid.distance, grid.households, request.gap_threshold, polygons=False
        )
        summary["gaps"] = {
            "threshold_m": request.gap_threshold,
            "count": len(gap_table),
            "households": float(gap_table["households"].sum()) if len(gap_table) else 0.0,
            "area_m2": float(gap_table["area_m2"].sum()) if len(gap_table) else 0.0,
        }
        lap("gaps")
        if request.k > 0:
            cpts, cids, clines, clids = assets.candidates()
            priorities = prioritise(
                demand.xy, demand.households, demand.distance, cpts, cids, clines, clids,
                radius=request.radius, k=request.k, spacing=spacing, index=entry.candidate_index(spacing),
            )  # fmt: skip
        else:
            empty = np.empty((0, 2))
            priorities = prioritise(empty, np.empty(0), np.empty(0), empty, np.empty(0, np.int64), k=0)
        lap("priorities")
        # The Pipeline projects in or touching the area (no personal data), listed and drawn by the report.
        summary["pipeline_projects"] = (
            _pipeline_projects(conn, url, current.get("database"), request.geometry, data)
            if request.geometry is not None
            else []
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
    return ReportResult(request, demand, cells, summary, gap_table, priorities, timings, versions)


# Storing -------------------------------------------------------------------------------------------
def create_report(conn: psycopg.Connection[Any], request: ReportRequest, principal: Principal) -> int:
    """Record a queued report; the caller must hold a key (admins, boroughs and operators may)."""
    principal.require_role("admin", "borough", "operator")
    if request.ready_now and not wayleave_view_exists(conn):
        raise WayleavesUnavailable(
            "ready_now: this database does not track wayleaves (no asset_wayleave_status)"
        )
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO coverage_reports (parameters, area, created_by, key_id, progress_total, owner, heartbeat_at)
               VALUES (%s, ST_GeomFromWKB(%s, 27700), %s, %s, %s, %s, now()) RETURNING id""",
            [
                Jsonb(request.parameters()),
                None if request.geometry is None else shapely.to_wkb(request.geometry),
                principal.name, principal.key_id, len(STEPS), owner(),
            ],
        ).fetchone()  # fmt: skip
        assert row is not None
        record(
            conn, principal, "report.create", "coverage_report", row[0], {"parameters": request.parameters()}
        )
    return int(row[0])


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # the signature, no flags, no extension


def _text_field(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte lengths (-1 for NULL) and UTF-8 bytes of a column of texts or None, by distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # None -> -1
    encoded = [str(u).encode() for u in uniques] + [b""]
    lengths = np.array([len(e) for e in encoded[:-1]] + [-1], dtype=np.int64)
    return lengths[codes], np.array(encoded, dtype=object)[codes]


def _record_block(n: int, columns: list[tuple[str, str | None, Any, int]]) -> bytes:
    """``n`` rows of the COPY binary format: the field count, then each field's length and data."""
    dtype: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind, _, size in columns:
        dtype.append((f"{name}_len", ">i4"))
        if kind is not None and size > 0:
            dtype.append((name, kind))
    records = np.empty(n, dtype=np.dtype(dtype))  # packed: no padding
    records["count"] = len(columns)
    for name, kind, values, size in columns:
        records[f"{name}_len"] = size
        if kind is not None and size > 0:
            records[name] = values
    return records.tobytes()


def _copy_points(conn: psycopg.Connection[Any], report_id: int, name: str, layer: Layer) -> None:
    """Write a layer's rows with one binary COPY built by numpy, without a Python object per row.

    The rows are grouped by their shape (text lengths and NULLs); each group is one packed
    numpy record array in the COPY binary format (big-endian, each field preceded by its
    length). The row order in the table does not matter: ``seq`` keeps it.
    """
    n = len(layer.xy)
    if n == 0:
        return
    label = layer.label if layer.label is not None else np.full(n, None, dtype=object)
    # numpy's stubs leave None out of ArrayLike, though np.where takes it (as an object array).
    borough = np.where(layer.borough == OUTSIDE, cast(ArrayLike, None), layer.borough).astype(object)
    label_len, label_bytes = _text_field(np.asarray(label, dtype=object))
    borough_len, borough_bytes = _text_field(borough)
    distance = np.asarray(layer.distance, dtype=float)
    has_distance = np.isfinite(distance)
    asset_id = np.asarray(layer.asset_id, dtype=np.int64)
    has_asset = asset_id >= 0
    has_area = layer.area_m2 is not None
    layer_name = name.encode()
    shapes, group = np.unique(
        np.column_stack([label_len, borough_len, has_distance, has_asset]), axis=0, return_inverse=True
    )
    group = group.reshape(-1)
    blocks = [COPY_SIGNATURE]
    for g, (n_label, n_borough, with_distance, with_asset) in enumerate(shapes):
        rows = np.flatnonzero(group == g)
        # (name, numpy type or None for no data, values, byte length or -1 for NULL)
        columns = [
            ("report_id", ">i8", report_id, 8),
            ("layer", f"S{len(layer_name)}", layer_name, len(layer_name)),
            ("seq", ">i4", rows, 4),
            ("label", f"S{n_label}" if n_label > 0 else None, list(label_bytes[rows]), int(n_label)),
            ("x", ">f8", layer.xy[rows, 0], 8),
            ("y", ">f8", layer.xy[rows, 1], 8),
            (
                "borough",
                f"S{n_borough}" if n_borough > 0 else None,
                list(borough_bytes[rows]),
                int(n_borough),
            ),
            ("households", ">f8", layer.households[rows], 8),
            (
                "area",
                ">f8" if has_area else None,
                layer.area_m2[rows] if layer.area_m2 is not None else None,
                8 if has_area else -1,
            ),
            ("distance", ">f8" if with_distance else None, distance[rows], 8 if with_distance else -1),
            ("asset", ">i8" if with_asset else None, asset_id[rows], 8 if with_asset else -1),
        ]
        blocks.append(_record_block(len(rows), columns))
    blocks.append(b"\xff\xff")
    statement = """COPY coverage_report_points (report_id, layer, seq, label, x, y, borough_code, households,
                   area_m2, distance_m, asset_id) FROM STDIN (FORMAT BINARY)"""
    with conn.cursor().copy(statement) as copy:  # type: ignore[arg-type]
        for block in blocks:
            copy.write(block)


def store_result(conn: psycopg.Connection[Any], report_id: int, result: ReportResult) -> None:
    """Write a report's results (in the caller's transaction), replacing any earlier ones."""
    for table in ("coverage_report_points", "coverage_report_gaps", "coverage_report_priorities"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE report_id = %s").format(sql.Identifier(table)), [report_id]
        )
    if result.cells is not None:
        _copy_points(conn, report_id, "demand", result.demand)
        _copy_points(conn, report_id, "cell", result.cells)
    else:
        _copy_points(conn, report_id, "cell", result.demand)
    gaps = result.gaps
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO coverage_report_gaps (report_id, gap_id, cells, area_m2, households, geom)
               VALUES (%s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 27700))""",
            [
                (report_id, int(g), int(c), float(a), float(h), shapely.to_wkb(geom))
                for g, c, a, h, geom in zip(
                    gaps["gap_id"],
                    gaps["cells"],
                    gaps["area_m2"],
                    gaps["households"],
                    gaps.geometry.values,
                    strict=True,
                )
            ],
        )
        p = result.priorities
        cur.executemany(
            """INSERT INTO coverage_report_priorities (report_id, rank, asset_id, kind, status, x, y, gain,
                   cumulative, covered_households, household_share)
               SELECT %s, %s, %s, a.kind, a.status, ST_X(pt), ST_Y(pt), %s, %s, %s, %s
               FROM (SELECT 1) one
               LEFT JOIN assets a ON a.id = %s
               LEFT JOIN LATERAL (SELECT CASE WHEN GeometryType(a.geom) = 'POINT' THEN a.geom
                                              ELSE ST_PointOnSurface(a.geom) END AS pt) g ON true""",
            [
                (report_id, int(r), int(a), float(g), float(c), float(ch), None if pd.isna(s) else float(s), int(a))
                for r, a, g, c, ch, s in zip(
                    p["rank"], p["asset_id"], p["gain"], p["cumulative"], p["covered_households"],
                    p["household_share"], strict=True,
                )
            ],
        )  # fmt: skip


def open_report(url: str, request: ReportRequest, principal: Principal) -> int:
    """:func:`create_report` on a connection of its own, committed; returns the report id."""
    with psycopg.connect(url) as conn:
        return create_report(conn, request, principal)


def run_new_report(url: str, request: ReportRequest, principal: Principal) -> int:
    """Record a report and compute it at once on one connection (the API's small reports); its id.

    Errors of the request itself (access, ``ready_now`` without wayleaves) are raised before
    the report exists; errors while computing end it ``failed``, as :func:`run_report` does.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        report_id = create_report(conn, request, principal)
        run_report(url, report_id, request, raise_errors=False, conn=conn)
    return report_id


def run_report(
    url: str,
    report_id: int,
    request: ReportRequest,
    progress: Progress = silent,
    *,
    raise_errors: bool = True,
    conn: psycopg.Connection[Any] | None = None,
) -> None:
    """Compute and store a queued report, recording its state, progress and timings as it goes.

    Whatever happens the report ends ``done`` or ``failed`` (with the message); the error is
    raised again unless ``raise_errors`` is false. Used for the reports computed at once and
    for the background ones alike; ``progress`` also receives every step (for the CLI's bar).
    ``conn`` is an autocommit connection to work on (one is opened otherwise).
    """
    with ACTIVE.tracking("coverage_reports", report_id):
        status = JobStatus(url, "coverage_reports", report_id, every=0.2, conn=conn)
        try:
            status.set(
                state="running", started_at=_now(), progress_done=0, progress_total=len(STEPS), message=None
            )

            def report(step: str, done: int, total: int) -> None:
                status.progress(step, done, total)
                progress(step, done, total)

            conn = status.conn  # autocommit: the results and the state 'done' in one transaction
            result = compute_report(url, request, report, conn)
            started = time.perf_counter()
            with conn.transaction():
                store_result(conn, report_id, result)
                timings = {**result.timings, "store": round(time.perf_counter() - started, 4)}
                timings["total"] = round(sum(timings.values()), 4)
                conn.execute(
                    """UPDATE coverage_reports SET state = 'done', summary = %s, timings = %s, data_version = %s,
                           area = ST_GeomFromWKB(%s, 27700), progress_done = %s, finished_at = now()
                       WHERE id = %s""",
                    [
                        Jsonb(result.summary), Jsonb(timings), Jsonb(result.data_version),
                        shapely.to_wkb(result.request.geometry), len(STEPS), report_id,
                    ],
                )  # fmt: skip
        except Exception as exc:
            status.finish(state="failed", message=f"{type(exc).__name__}: {exc}", finished_at=_now())
            if raise_errors:
                raise
        finally:
            status.close()


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


# Reading reports back ------------------------------------------------------------------------------
REPORT_COLUMNS = """id, parameters, data_version, state, progress_done, progress_total, summary, timings,
    message, created_by, created_at, started_at, finished_at"""


def _visible(
    row: dict[str, Any] | None, key_id: int | None, principal: Principal, report_id: int
) -> dict[str, Any]:
    if row is None or (not principal.is_admin and key_id != principal.key_id):
        raise ReportNotFound(f"no coverage report has id {report_id}")
    return row


async def get_report(
    conn: psycopg.AsyncConnection[Any], report_id: int, principal: Principal
) -> dict[str, Any]:
    """One report's record: admins see every report, other keys the reports they asked for."""
    principal.require_role("admin", "borough", "operator")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {REPORT_COLUMNS}, key_id FROM coverage_reports WHERE id = %s", [report_id])
        row = await cur.fetchone()
    record = _visible(row, row.pop("key_id") if row is not None else None, principal, report_id)
    return record


async def list_reports(
    conn: psycopg.AsyncConnection[Any], principal: Principal, limit: int = 100
) -> list[dict[str, Any]]:
    """Recent reports, newest first, without their per-borough rows."""
    principal.require_role("admin", "borough", "operator")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {REPORT_COLUMNS} FROM coverage_reports
                WHERE %(admin)s OR key_id IS NOT DISTINCT FROM %(key)s ORDER BY id DESC LIMIT %(limit)s""",
            {"admin": principal.is_admin, "key": principal.key_id, "limit": limit},
        )
        rows = await cur.fetchall()
    for row in rows:
        if row["summary"]:
            row["summary"] = {k: v for k, v in row["summary"].items() if k not in ("boroughs", "profile")}
    return rows


async def finished_report(
    conn: psycopg.AsyncConnection[Any], report_id: int, principal: Principal
) -> dict[str, Any]:
    """The record of a report whose results can be read; :class:`ReportNotReady` otherwise."""
    record = await get_report(conn, report_id, principal)
    if record["state"] != "done":
        raise ReportNotReady(
            f"coverage report {report_id} is {record['state']}; its results are not available"
            + (f" ({record['message']})" if record.get("message") else "")
        )
    return record


async def _demand_kept(conn: psycopg.AsyncConnection[Any], report_id: int) -> None:
    """Raise :class:`ReportPurged` when the report's premises points were deleted (retention)."""
    cur = await conn.execute("SELECT points_purged_at FROM coverage_reports WHERE id = %s", [report_id])
    row = await cur.fetchone()
    if row and row[0] is not None:
        raise ReportPurged(
            f"coverage report {report_id}: its premises points were deleted on {row[0]:%Y-%m-%d} "
            "(retention of personal data); its summary stays, request the report again for them"
        )


DEMAND_COLUMNS = ["id", "x", "y", "borough_code", "households", "area_m2", "distance_m", "asset_id"]
CELL_LABEL = "coalesce(label, (x - sqrt(area_m2) / 2)::bigint || '_' || (y - sqrt(area_m2) / 2)::bigint)"


async def demand_rows(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[tuple[Any, ...]]:
    """The demand rows of a report (:data:`DEMAND_COLUMNS`): postcodes, premises or grid cells.

    :class:`ReportPurged` once its premises points are deleted (rather than the grid cells).
    """
    await _demand_kept(conn, report_id)
    cur = await conn.execute(
        f"""SELECT {CELL_LABEL}, x, y, borough_code, households, area_m2, distance_m, asset_id
            FROM coverage_report_points
            WHERE report_id = %(id)s AND layer = CASE WHEN EXISTS (
                SELECT 1 FROM coverage_report_points WHERE report_id = %(id)s AND layer = 'demand')
                THEN 'demand' ELSE 'cell' END
            ORDER BY seq""",
        {"id": report_id},
    )
    return await cur.fetchall()


async def cell_features(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[str]:
    """The grid cells of a report as GeoJSON Feature strings, squares in WGS84."""
    cur = await conn.execute(
        f"""SELECT json_build_object(
                'type', 'Feature', 'id', {CELL_LABEL},
                'geometry', ST_AsGeoJSON(ST_Transform(ST_MakeEnvelope(
                    x - sqrt(area_m2) / 2, y - sqrt(area_m2) / 2, x + sqrt(area_m2) / 2, y + sqrt(area_m2) / 2,
                    27700), 4326), 7)::json,
                'properties', json_build_object('cell_id', {CELL_LABEL}, 'borough_code', borough_code,
                    'households', households, 'area_m2', area_m2, 'distance_m', distance_m, 'asset_id', asset_id)
            )::text
            FROM coverage_report_points WHERE report_id = %s AND layer = 'cell' ORDER BY seq""",
        [report_id],
    )
    return [r[0] for r in await cur.fetchall()]


async def gap_features(
    conn: psycopg.AsyncConnection[Any], report_id: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """The gaps of a report, largest first, as GeoJSON Features in WGS84."""
    cur = await conn.execute(
        """SELECT gap_id, cells, area_m2, households, ST_AsGeoJSON(ST_Transform(geom, 4326), 7)
           FROM coverage_report_gaps WHERE report_id = %s ORDER BY gap_id LIMIT %s""",
        [report_id, limit],
    )
    return [
        {
            "type": "Feature",
            "id": g,
            "geometry": json.loads(geom),
            "properties": {"gap_id": g, "cells": c, "area_m2": a, "households": h},
        }
        for g, c, a, h, geom in await cur.fetchall()
    ]


PRIORITY_COLUMNS = [
    "rank", "asset_id", "kind", "status", "gain", "cumulative", "covered_households", "household_share", "lon", "lat",
]  # fmt: skip


async def priority_rows(conn: psycopg.AsyncConnection[Any], report_id: int) -> list[dict[str, Any]]:
    """The chosen candidate assets of a report in order (:data:`PRIORITY_COLUMNS`)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT rank, asset_id, kind, status, gain, cumulative, covered_households, household_share,
                      ST_X(p) AS lon, ST_Y(p) AS lat
               FROM coverage_report_priorities,
                    LATERAL (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(x, y), 27700), 4326) AS p) t
               WHERE report_id = %s ORDER BY rank""",
            [report_id],
        )
        return await cur.fetchall()


async def area_feature(conn: psycopg.AsyncConnection[Any], report_id: int) -> dict[str, Any] | None:
    """The report's area as a GeoJSON geometry in WGS84 (simplified to 5 m)."""
    cur = await conn.execute(
        "SELECT ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(area, 5), 4326), 6) FROM coverage_reports WHERE id = %s",
        [report_id],
    )
    row = await cur.fetchone()
    return json.loads(row[0]) if row and row[0] else None


async def serving_assets(
    conn: psycopg.AsyncConnection[Any], report_id: int, limit: int
) -> dict[str, Any] | None:
    """The assets nearest to some demand point or cell of a report, as WGS84 GeoJSON; None if more than ``limit``."""
    cur = await conn.execute(
        """WITH ids AS (SELECT DISTINCT asset_id FROM coverage_report_points
                        WHERE report_id = %s AND asset_id IS NOT NULL)
           SELECT (SELECT count(*) FROM ids), a.id, a.kind, a.subtype, a.status,
                  ST_AsGeoJSON(ST_Transform(a.geom, 4326), 6)
           FROM ids JOIN assets a ON a.id = ids.asset_id
           WHERE (SELECT count(*) FROM ids) <= %s ORDER BY a.id""",
        [report_id, limit],
    )
    rows = await cur.fetchall()
    if not rows:
        count = await (
            await conn.execute(
                "SELECT count(DISTINCT asset_id) FROM coverage_report_points WHERE report_id = %s",
                [report_id],
            )
        ).fetchone()
        if count and count[0] > limit:
            return None
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": i,
                "geometry": json.loads(g),
                "properties": {"id": i, "kind": k, "subtype": s, "status": st},
            }
            for _, i, k, s, st, g in rows
        ],
    }
