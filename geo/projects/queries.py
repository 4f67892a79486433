"""Reading projects: list filters, one project, the unplaced list, projects in an area, and their CSV and GeoJSON.

Every row leaves through :func:`~geo.projects.model.redact`, and an admin shown owners is
recorded in the audit trail (:func:`record_owner_reads`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row
from shapely.geometry.base import BaseGeometry

from geo.access.audit import record_reads
from geo.access.principals import Principal
from geo.core.csv_out import write_records
from geo.core.errors import InvalidParameter
from geo.core.query import ENVELOPE_SQL, Bbox
from geo.projects.model import PERSONAL, PLACEMENTS, ProjectNotFound, redact
from geo.projects.values import parse_day, parse_phase, parse_status
from geo.reference.boroughs import UnknownBorough, check_code


@dataclass(frozen=True)
class ProjectQuery:
    """Filters of a project list, parsed and checked (see :func:`parse_query`)."""

    status: tuple[str, ...] = ()
    phase: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    start: dt.date | None = None
    end: dt.date | None = None
    bbox: Bbox | None = None
    borough: tuple[str, ...] = ()
    placement: tuple[str, ...] = ()
    include_london_wide: bool = False
    limit: int = 1000
    after: int | None = None


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def parse_query(
    *,
    status: str | None = None,
    phase: str | None = None,
    tag: str | None = None,
    start: str | None = None,
    end: str | None = None,
    bbox: Bbox | None = None,
    borough: str | None = None,
    placement: str | None = None,
    include_london_wide: bool = False,
    limit: int = 1000,
    after: int | None = None,
) -> ProjectQuery:
    """Check the filters of a project list; raises :class:`~geo.core.errors.InvalidParameter` naming the bad one.

    ``start``/``end`` select projects whose [project start, project end] overlaps them (open ends
    overlap everything); ``bbox`` comes parsed (:func:`geo.core.query.read_bbox`).
    """
    checked: dict[str, tuple[str, ...]] = {}
    for name, value, parse in (("status", status, parse_status), ("phase", phase, parse_phase)):
        try:
            checked[name] = tuple(parse(v) or "" for v in _split(value))
        except ValueError as exc:
            raise InvalidParameter(f"{name}: {exc}") from None
    days: dict[str, dt.date | None] = {}
    for name, value in (("start", start), ("end", end)):
        try:
            days[name] = parse_day(value)
        except ValueError as exc:
            raise InvalidParameter(f"{name}: {exc}") from None
    if days["start"] and days["end"] and days["end"] < days["start"]:
        raise InvalidParameter(f"end: {end!r} is before start {start!r}")
    try:
        boroughs = tuple(check_code(b) for b in _split(borough))
    except UnknownBorough as exc:
        raise InvalidParameter(f"borough: {exc}") from None
    placements = _split(placement)
    for p in placements:
        if p not in PLACEMENTS:
            raise InvalidParameter(f"placement: {p!r} is not exact, borough, london or unplaced")
    return ProjectQuery(
        checked["status"], checked["phase"], _split(tag), days["start"], days["end"], bbox, boroughs, placements,
        include_london_wide, min(max(limit, 1), 10_000), after,
    )  # fmt: skip


SELECT_SQL = """
SELECT p.id, p.pipeline_id, p.title, p.tags, p.content, p.status, p.phase, p.project_start, p.project_end,
       p.estimated_time, p.organisation, p.organisation_id, p.organisation_url, p.organisation_email,
       p.organisation_twitter, p.department, p.owner, p.owner_email, p.created_by, p.created_on, p.modified_by,
       p.modified_on, p.allow_external_collaboration, p.funding_band, p.collaboration_level, p.last_updated,
       p.borough_code, p.london_wide, p.placement, p.unplaced_reason, p.source, p.version, p.valid_from,
       p.changed_by,
       ST_AsGeoJSON(ST_Transform(p.location, 4326), 7)::json AS location,
       ST_AsGeoJSON(ST_Transform(p.geom, 4326), 7)::json AS geometry
FROM pipeline_projects p
"""

# Which projects are in an area: a site when it meets the area's interior, a borough-wide
# project when its borough's interior meets the area's, a London-wide one (when asked for)
# when the area reaches into London at all. Interiors, not closures: boroughs share their
# boundary lines exactly, so ST_Intersects alone put the City's borough-wide projects in
# every Camden report (a shared edge is not "in the area"). A site exactly on the line
# between two boroughs is in neither alone, and in their union. ST_Relate 'T********' (the
# interiors intersect) is that test; for two polygons it is ST_Intersects AND NOT ST_Touches.
# ST_Relate uses no index and no prepared geometry, so the && probe (GiST) and the cheap
# ST_Intersects go first and it only runs on the few that pass (London-wide: 33 boroughs
# against their union, 80 ms).
AREA_CONDITION = """(
    (p.location IS NOT NULL AND p.location && a.area AND ST_Intersects(p.location, a.area)
        AND ST_Relate(p.location, a.area, 'T********'))
    OR (p.placement = 'borough' AND p.borough_code IN
        (SELECT b.code FROM boroughs b WHERE b.geom && a.area AND ST_Intersects(b.geom, a.area)
            AND ST_Relate(b.geom, a.area, 'T********')))
    OR (%(wide)s AND p.placement = 'london' AND EXISTS
        (SELECT 1 FROM boroughs b WHERE b.geom && a.area AND ST_Intersects(b.geom, a.area)
            AND ST_Relate(b.geom, a.area, 'T********'))))"""
BBOX_AREA = f"(SELECT {ENVELOPE_SQL} AS area) a"


def _where(query: ProjectQuery) -> tuple[sql.Composable, dict[str, Any], sql.Composable]:
    conds: list[str] = ["true"]
    params: dict[str, Any] = {"wide": query.include_london_wide}
    area = sql.SQL("")
    if query.status:
        conds.append("p.status = ANY(%(status)s)")
        params["status"] = list(query.status)
    if query.phase:
        conds.append("p.phase = ANY(%(phase)s)")
        params["phase"] = list(query.phase)
    if query.tag:
        # Case-insensitive, any of the tags: a GIN index would need exact case, and Pipeline's tags are few.
        conds.append("EXISTS (SELECT 1 FROM unnest(p.tags) t WHERE lower(t) = ANY(%(tag)s))")
        params["tag"] = [t.lower() for t in query.tag]
    if query.start:
        conds.append("(p.project_end IS NULL OR p.project_end >= %(start)s)")
        params["start"] = query.start
    if query.end:
        conds.append("(p.project_start IS NULL OR p.project_start <= %(end)s)")
        params["end"] = query.end
    if query.borough:
        conds.append("p.borough_code = ANY(%(borough)s)")
        params["borough"] = list(query.borough)
    if query.placement:
        conds.append("p.placement = ANY(%(placement)s)")
        params["placement"] = list(query.placement)
    if query.after is not None:
        conds.append("p.id > %(after)s")
        params["after"] = query.after
    if query.bbox is not None:
        area = sql.SQL(", " + BBOX_AREA)  # type: ignore[arg-type]
        conds.append(AREA_CONDITION)
        params.update(query.bbox.params())
    return sql.SQL(" AND ".join(conds)), params, area  # type: ignore[arg-type]


async def record_owner_reads(
    conn: psycopg.AsyncConnection[Any], principal: Principal, rows: list[dict[str, Any]]
) -> None:
    """Record in the audit trail that ``principal`` was shown the owners (personal data) of these projects."""
    ids = [r["id"] for r in rows if principal.is_admin and (r.get("owner") or r.get("owner_email"))]
    await record_reads(conn, principal, "pipeline_project", ids, "project owners")


async def list_projects(
    conn: psycopg.AsyncConnection[Any], query: ProjectQuery, principal: Principal
) -> tuple[list[dict[str, Any]], int | None]:
    """Projects matching ``query`` in id order, redacted for ``principal``, and the next page's cursor."""
    where, params, area = _where(query)
    statement = sql.SQL("{select} {area} WHERE {where} ORDER BY p.id LIMIT %(limit)s").format(
        select=sql.SQL(SELECT_SQL),
        area=area,
        where=where,  # type: ignore[arg-type]
    )
    params["limit"] = query.limit + 1
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        rows = await cur.fetchall()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    await record_owner_reads(conn, principal, rows)
    return [redact(r, principal) for r in rows], (rows[-1]["id"] if more else None)


async def project_row(conn: psycopg.AsyncConnection[Any], project_id: int) -> dict[str, Any]:
    """One project as stored, not redacted (for checks before a write); :class:`ProjectNotFound` when none."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_SQL + " WHERE p.id = %s", [project_id])
        row = await cur.fetchone()
    if row is None:
        raise ProjectNotFound(f"no Pipeline project {project_id}")
    return row


async def get_project(
    conn: psycopg.AsyncConnection[Any], project_id: int, principal: Principal
) -> dict[str, Any]:
    """One project, redacted for ``principal``; :class:`ProjectNotFound` when there is none."""
    row = await project_row(conn, project_id)
    await record_owner_reads(conn, principal, [row])
    return redact(row, principal)


async def unplaced(conn: psycopg.AsyncConnection[Any], principal: Principal) -> list[dict[str, Any]]:
    """The projects the gazetteer could not place (and that have no site), with the reason, by organisation."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_SQL + " WHERE p.placement = 'unplaced' ORDER BY lower(p.organisation), p.id")
        rows = await cur.fetchall()
    await record_owner_reads(conn, principal, rows)
    return [redact(r, principal) for r in rows]


def projects_in_area(
    conn: psycopg.Connection[Any], area: BaseGeometry, *, include_london_wide: bool = True
) -> list[dict[str, Any]]:
    """The Pipeline projects in an area, for coverage reports (no personal data).

    A project is in the area when it meets the area's interior (:data:`AREA_CONDITION`): a
    borough or site that only touches the area along its boundary is not (the City of London
    touches Camden; a Camden report does not list the City's borough-wide projects).

    Parameters
    ----------
    conn
        A synchronous connection.
    area
        The area in EPSG:27700 (any geometry: a polygon, a borough, a buffer).
    include_london_wide
        Also list the London-wide projects (GLA, TfL, London Councils...) when the area touches London.

    Returns
    -------
    list of dict
        One dict per project, sites first, then borough-wide, then London-wide, each by title:
        ``id, pipeline_id, title, status, phase, tags, organisation, department, borough_code,
        london_wide, placement, project_start, project_end, last_updated`` plus ``match`` (how it
        is in the area: ``exact`` its site, ``borough`` its borough, ``london`` London-wide),
        ``geometry`` (the drawn point or site as a GeoJSON dict in WGS84, None for London-wide)
        and ``geom`` (the same as a shapely geometry in EPSG:27700).

    Examples
    --------
    >>> camden = shapely.box(525000, 180000, 532000, 186000)
    >>> [p["title"] for p in projects_in_area(conn, camden)]  # doctest: +SKIP
    ['Smart lamp columns', 'Camden Wi-Fi', ...]

    Performance: one query; the borough test probes the 33 boundaries through their GiST index,
    and relates the interiors of the few it finds (London-wide: 80 ms).
    """
    statement = f"""
        SELECT p.id, p.pipeline_id, p.title, p.status, p.phase, p.tags, p.organisation, p.department,
               p.borough_code, p.london_wide, p.placement, p.project_start, p.project_end, p.last_updated,
               CASE WHEN p.location IS NOT NULL THEN 'exact' ELSE p.placement END AS match,
               ST_AsGeoJSON(ST_Transform(p.geom, 4326), 7)::json AS geometry, ST_AsBinary(p.geom) AS geom
        FROM pipeline_projects p, (SELECT ST_GeomFromWKB(%(area)s, 27700) AS area) a
        WHERE {AREA_CONDITION}
        ORDER BY array_position(ARRAY['exact', 'borough', 'london'],
                                CASE WHEN p.location IS NOT NULL THEN 'exact' ELSE p.placement END),
                 lower(p.title), p.id"""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(statement, {"area": shapely.to_wkb(area), "wide": include_london_wide})
        rows = cur.fetchall()
    for r in rows:
        r["geom"] = shapely.from_wkb(bytes(r["geom"])) if r["geom"] is not None else None
    return [redact(r, Principal(role=None)) for r in rows]


# Outputs -----------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "id", "pipeline_id", "title", "status", "phase", "tags", "organisation", "department", "owner", "owner_email",
    "project_start", "project_end", "estimated_time", "funding_band", "collaboration_level", "last_updated",
    "borough_code", "london_wide", "placement", "unplaced_reason", "longitude", "latitude",
)  # fmt: skip


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Projects as CSV (already redacted rows: absent columns are left out), with the drawn point's lon/lat."""
    present = set().union(*(r.keys() for r in rows)) if rows else set(CSV_COLUMNS) - PERSONAL
    columns = [c for c in CSV_COLUMNS if c in present or c in ("longitude", "latitude")]
    lines = []
    for r in rows:
        line = dict(r)
        line["tags"] = "; ".join(r.get("tags") or [])
        point = r.get("geometry")
        if point and point.get("type") == "Point":
            line["longitude"], line["latitude"] = point["coordinates"]
        lines.append(line)
    return write_records(columns, lines)


def to_feature(row: dict[str, Any]) -> dict[str, Any]:
    """A project as a GeoJSON feature (geometry: the drawn site or point, null when not drawn)."""
    properties = {k: v for k, v in row.items() if k not in ("geometry", "location")}
    return {"type": "Feature", "id": row["id"], "geometry": row.get("geometry"), "properties": properties}
