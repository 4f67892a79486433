"""Placing a project: by its site when it has one, else by its organisation through the gazetteer.

:func:`placement_of` is the rule (used by imports and by :func:`set_location`); an explicit
site overrides the organisation, and clearing it places the project by its organisation again.
"""

from __future__ import annotations

from typing import Any

import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from geo.access.audit import record_async
from geo.access.principals import PermissionDenied, Principal
from geo.projects.location import geometry_from_geojson
from geo.projects.model import InvalidLocation
from geo.projects.queries import get_project, project_row
from geo.reference.gazetteer import place

#: The borough a site lies in (a point on its surface, so a site on a boundary picks one borough).
BOROUGH_AT = """SELECT code FROM boroughs WHERE ST_Intersects(geom, ST_PointOnSurface(ST_GeomFromWKB(%s, 27700)))
                ORDER BY code LIMIT 1"""


def placement_of(organisation: str | None, has_location: bool, borough_at: str | None) -> dict[str, Any]:
    """The placement columns of a project: its site when it has one, else its organisation's place.

    ``borough_at`` is the borough the site lies in, used when the organisation is not a London authority.
    """
    found = place(organisation)
    if has_location:
        return {
            "borough_code": found.borough_code or borough_at,
            "london_wide": found.london_wide,
            "placement": "exact",
            "unplaced_reason": None,
        }
    if found.borough_code:
        return {
            "borough_code": found.borough_code,
            "london_wide": False,
            "placement": "borough",
            "unplaced_reason": None,
        }
    if found.london_wide:
        return {"borough_code": None, "london_wide": True, "placement": "london", "unplaced_reason": None}
    return {
        "borough_code": None,
        "london_wide": False,
        "placement": "unplaced",
        "unplaced_reason": found.reason,
    }


def require_location_write(project: dict[str, Any], principal: Principal) -> None:
    """Admins may place any project; a borough key only its own borough's projects."""
    principal.require_role("admin", "borough")
    if principal.role == "borough" and project.get("borough_code") != principal.borough_code:
        raise PermissionDenied(
            f"this key belongs to borough {principal.borough_code} and cannot place project {project['id']} "
            f"(borough {project.get('borough_code') or 'none'})"
        )


async def set_location(
    conn: psycopg.AsyncConnection[Any],
    project_id: int,
    geometry: dict[str, Any] | None,
    principal: Principal,
    srid: int | None = None,
) -> dict[str, Any]:
    """Set (or with None clear) a project's site: a GeoJSON geometry in WGS84 or EPSG:27700.

    The site overrides the organisation's placement; clearing it places the project by its
    organisation again. Admins may place any project, borough keys their own borough's. The
    change is kept in history like any other.
    """
    project = await project_row(conn, project_id)
    require_location_write(project, principal)
    location = None if geometry is None else geometry_from_geojson(geometry, srid)
    borough_at = None
    if location is not None:
        cur = await conn.execute(BOROUGH_AT, [shapely.to_wkb(location)])
        found = await cur.fetchone()
        borough_at = found[0] if found else None
        if borough_at is None:
            raise InvalidLocation("the location is not inside any London authority")
    placed = placement_of(project["organisation"], location is not None, borough_at)
    async with conn.transaction():
        await _write_location(conn, project_id, location, placed, principal)
        await record_async(
            conn, principal, "pipeline.location", "pipeline_project", project_id,
            {"placement": placed["placement"], "borough_code": placed["borough_code"], "cleared": location is None},
        )  # fmt: skip
    return await get_project(conn, project_id, principal)


async def _write_location(
    conn: psycopg.AsyncConnection[Any],
    project_id: int,
    location: BaseGeometry | None,
    placed: dict[str, Any],
    principal: Principal,
) -> None:
    await conn.execute(
        """UPDATE pipeline_projects
           SET location = ST_GeomFromWKB(%(wkb)s, 27700), borough_code = %(borough_code)s,
               london_wide = %(london_wide)s, placement = %(placement)s, unplaced_reason = %(unplaced_reason)s,
               changed_by = %(by)s
           WHERE id = %(id)s""",
        {
            **placed,
            "wkb": None if location is None else shapely.to_wkb(location),
            "by": principal.name,
            "id": project_id,
        },
    )
