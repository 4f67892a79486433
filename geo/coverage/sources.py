"""What a coverage report reads from the database: its area's boroughs, the assets, the data versions.

The assets are read over two connections in parallel that share one snapshot; the union of a
list of boroughs and the borough polygons are kept in the process, per boroughs version.
"""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from psycopg import sql

from geo.coverage.area import CRS
from geo.coverage.errors import InvalidArea, WayleavesUnavailable
from geo.coverage.nearest import POLYGONAL
from geo.coverage.request import ReportRequest

#: Statuses never offered as candidates for prioritisation: the asset is gone for good.
NEVER_CANDIDATES = ("removed", "decommissioned", "abandoned")


# Boroughs ---------------------------------------------------------------------------------------
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
    return dataclasses.replace(request, geometry=geometry)


@functools.lru_cache(maxsize=16)
def _borough_union(url: str, database: Any, codes: tuple[str, ...], version: int) -> shapely.Geometry | None:
    """The union of some boroughs (33 boroughs: about 0.2 s in PostGIS, so kept)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ST_AsBinary(ST_Union(geom)) FROM boroughs WHERE code = ANY(%s)", [list(codes)]
        ).fetchone()
    return None if row is None or row[0] is None else shapely.from_wkb(bytes(row[0]))


def resolve_boroughs(url: str, request: ReportRequest, database: Any, version: int) -> ReportRequest:
    """:func:`resolve_area`, with the union of the boroughs cached per database and boroughs version."""
    geometry = _borough_union(url, database, tuple(request.area["boroughs"]), version)
    if geometry is None:
        raise InvalidArea(f"area.boroughs: {request.area['boroughs']} are not loaded in the database")
    return dataclasses.replace(request, geometry=geometry)


@functools.lru_cache(maxsize=2)
def borough_frame(url: str, version: int) -> gpd.GeoDataFrame:
    """The borough polygons (``GSS_CODE``, geometry), kept per database and boroughs version."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT code, ST_AsBinary(geom) FROM boroughs ORDER BY code").fetchall()
    return gpd.GeoDataFrame(
        {"GSS_CODE": [r[0] for r in rows]}, geometry=shapely.from_wkb([bytes(r[1]) for r in rows]), crs=CRS
    )


# Versions and assets ------------------------------------------------------------------------------
#: The data versions an asset set depends on: ``assets`` always, ``wayleaves`` with ``ready_now``.
VERSIONS_SQL = """SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), layer, version,
                         changed_at FROM data_versions"""


def read_versions(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """``data_versions`` as ``{layer: (version, changed_at)}``, and the database's OID as ``database``."""
    rows = conn.execute(VERSIONS_SQL).fetchall()
    versions: dict[str, Any] = {layer: (int(version), changed) for _, layer, version, changed in rows}
    versions["database"] = rows[0][0] if rows else None
    return versions


def wayleave_view_exists(conn: psycopg.Connection[Any]) -> bool:
    """Whether the ``asset_wayleave_status`` view is there (migration 0004)."""
    row = conn.execute("SELECT to_regclass('asset_wayleave_status') IS NOT NULL").fetchone()
    return bool(row and row[0])


def check_wayleaves(conn: psycopg.Connection[Any], request: ReportRequest) -> None:
    """Raise :class:`WayleavesUnavailable` when ``ready_now`` is asked of a database without wayleaves."""
    if request.ready_now and not wayleave_view_exists(conn):
        raise WayleavesUnavailable(
            "ready_now: this database does not track wayleaves (no asset_wayleave_status)"
        )


# One row, one bytea: id (int8), x, y (float8) and a flag byte (1 qualifying, 2 candidate) per
# point asset, read straight into a numpy structured array. Lines and polygons (building
# footprints) come as WKB, measured as what they are (geo.coverage.nearest).
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
SELECT coalesce(string_agg(int8send(a.id) || float8send(ST_X(a.geom)) || float8send(ST_Y(a.geom))
         || CASE WHEN {qualifies} THEN '\\x01'::bytea ELSE '\\x02'::bytea END, ''::bytea), ''::bytea)
"""
LINES_SQL = "SELECT a.id, ST_AsBinary(a.geom), {qualifies}"
POINTS = "GeometryType(a.geom) = 'POINT'"
SHAPES = "GeometryType(a.geom) <> 'POINT'"  # ducts' lines and buildings' polygons
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
        """How many of each: points and polygons (buildings, street furniture), and lines (ducts)."""
        polygon = np.isin(shapely.get_type_id(self.lines), POLYGONAL)
        line = ~polygon
        return {
            "qualifying_points": int(self.point_ok.sum() + (self.line_ok & polygon).sum()),
            "qualifying_lines": int((self.line_ok & line).sum()),
            "candidate_points": int((~self.point_ok).sum() + (~self.line_ok & polygon).sum()),
            "candidate_lines": int((~self.line_ok & line).sum()),
        }


def _asset_sql(template: str, ready_now: bool, geometry_kind: str) -> sql.SQL:
    qualifies = QUALIFIES + (READY if ready_now else "")
    head = template.format(qualifies=qualifies)
    tail = ASSET_FILTER.format(
        join=WAYLEAVE_JOIN if ready_now else "", geometry_kind=geometry_kind, qualifies=qualifies
    )
    return sql.SQL(head + tail)  # type: ignore[arg-type]  # constant text: no user input


def asset_box(request: ReportRequest) -> tuple[float, float, float, float]:
    """The box whose assets a report reads: the area's box widened by the reach (and 1 m)."""
    x0, y0, x1, y1 = request.geometry.bounds
    r = request.reach + 1.0
    return x0 - r, y0 - r, x1 + r, y1 + r


def read_assets(
    url: str, request: ReportRequest, box: tuple[float, float, float, float] | None = None
) -> Assets:
    """Read the qualifying and candidate assets near the area, on two connections in parallel.

    Parameters
    ----------
    url : str
        Database URL.
    request : ReportRequest
        With its geometry resolved; assets within ``request.reach`` of the area's box are read.
    box : tuple of float, optional
        Read the assets in this box instead (a partition and its halo, :mod:`geo.coverage.distributed`).

    Returns
    -------
    Assets
        Points (point assets) and shapes: lines (ducts) and polygons (building footprints).

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
    x0, y0, x1, y1 = asset_box(request) if box is None else box
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
        check_wayleaves(first, request)
        row = first.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = row[0]
        snapshot_versions = read_versions(first)
        versions = {k: v[0] for k, v in snapshot_versions.items() if k != "database"}

        def lines() -> list[tuple[Any, ...]]:
            with psycopg.connect(url) as second:
                second.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                second.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                query = _asset_sql(LINES_SQL, request.ready_now, SHAPES)
                return second.cursor(binary=True).execute(query, params).fetchall()

        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(lines) if request.kinds else None
            if set(request.kinds) - {"duct"}:
                query = _asset_sql(POINTS_SQL, request.ready_now, POINTS)
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


# What a partitioned report reads on the client: the counts and candidate ids of the whole box.
_LINEAR = "GeometryType(a.geom) IN ('LINESTRING', 'MULTILINESTRING')"
COUNTS_SQL = (
    "SELECT count(*) FILTER (WHERE ({qualifies}) AND NOT " + _LINEAR + "), "
    "count(*) FILTER (WHERE ({qualifies}) AND " + _LINEAR + "), "
    "count(*) FILTER (WHERE NOT ({qualifies}) AND NOT " + _LINEAR + "), "
    "count(*) FILTER (WHERE NOT ({qualifies}) AND " + _LINEAR + "), "
    "coalesce(array_agg(a.id ORDER BY a.id) FILTER (WHERE NOT ({qualifies})), '{{}}')"
)


def asset_counts(conn: psycopg.Connection[Any], request: ReportRequest) -> tuple[dict[str, int], np.ndarray]:
    """The counts of :meth:`Assets.counts` and the sorted candidate ids, without reading geometries."""
    x0, y0, x1, y1 = asset_box(request)
    params = {
        "kinds": list(request.kinds),
        "subtypes": None if request.subtypes is None else list(request.subtypes),
        "boroughs": None if request.asset_boroughs is None else list(request.asset_boroughs),
        "statuses": list(request.statuses),
        "never": list(NEVER_CANDIDATES),
        "x0": x0, "y0": y0, "x1": x1, "y1": y1,
    }  # fmt: skip
    row = conn.execute(_asset_sql(COUNTS_SQL, request.ready_now, "true"), params).fetchone()
    assert row is not None
    names = ("qualifying_points", "qualifying_lines", "candidate_points", "candidate_lines")
    return dict(zip(names, map(int, row[:4]), strict=True)), np.asarray(row[4], dtype=np.int64)
