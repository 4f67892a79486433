"""A project's explicit location (its site): GeoJSON, WKT or coordinate columns, in British National Grid, in London."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.core import crs
from geo.projects.model import InvalidLocation
from geo.projects.values import text_or_none


def _round(geom: BaseGeometry) -> BaseGeometry:
    # Millimetres: the same input always stores the same coordinates, so re-imports compare equal.
    return shapely.transform(geom, lambda c: np.round(c, 3))


def to_bng(geom: BaseGeometry, srid: int | None = None) -> BaseGeometry:
    """A geometry in EPSG:27700, from WGS84 lon/lat or 27700 (told, or told apart by its coordinates).

    Raises :class:`InvalidLocation` when it is empty, invalid, has lon/lat swapped or lies outside London.
    """
    if geom.is_empty:
        raise InvalidLocation("the location is empty")
    x0, y0, x1, y1 = geom.bounds
    if srid is None:
        lonlat = -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90
        srid = crs.WGS84 if lonlat else crs.BNG
    if srid == crs.WGS84:
        if 49 <= x0 <= 53 and -1 <= y0 <= 1:
            raise InvalidLocation(
                f"the location ({x0:g}, {y0:g}) has latitude first: give longitude, latitude"
            )
        geom = crs.to_bng(geom, srid)
    elif srid != crs.BNG:
        raise InvalidLocation(
            f"EPSG:{srid} is not supported; give WGS84 (4326) or British National Grid (27700)"
        )
    geom = _round(geom)
    if not geom.is_valid:
        raise InvalidLocation(f"the location is not a valid geometry: {shapely.is_valid_reason(geom)}")
    if not crs.within_london(geom.bounds):
        bx0, by0 = geom.bounds[:2]
        raise InvalidLocation(f"the location ({bx0:.0f}, {by0:.0f} in EPSG:27700) is not in London")
    return geom


def to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    """A 27700 geometry in WGS84 lon/lat (for tests and maps)."""
    move = crs.transformer(crs.BNG, crs.WGS84)
    return shapely.transform(geom, lambda c: np.column_stack(move.transform(c[:, 0], c[:, 1])))


def geometry_from_geojson(value: Any, srid: int | None = None) -> BaseGeometry:
    """A GeoJSON geometry (dict or text; a Feature's geometry is taken) in EPSG:27700."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidLocation("the location is not GeoJSON") from None
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or "type" not in value:
        raise InvalidLocation("the location must be a GeoJSON geometry (Point, Polygon...)")
    try:
        geom = shapely.geometry.shape(value)
    except Exception as exc:
        raise InvalidLocation(f"the location is not a valid GeoJSON geometry: {exc}") from None
    return to_bng(geom, srid)


def columns_location(row: dict[str, Any]) -> tuple[BaseGeometry | None, str | None, str | None]:
    """The explicit location of a row, from WKT/GeoJSON, lon/lat or easting/northing columns.

    Returns (geometry or None, the column, the value) and raises :class:`InvalidLocation`.
    """
    for name in ("location", "wkt", "geometry"):
        raw = row.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if isinstance(raw, dict) or str(raw).lstrip().startswith("{"):
            return geometry_from_geojson(raw), name, str(raw)
        try:
            geom = shapely.from_wkt(str(raw))
        except Exception:
            raise InvalidLocation(f"{str(raw)[:60]!r} is not WKT or GeoJSON") from None
        return to_bng(geom), name, str(raw)
    for xs, ys, srid in (
        (("lon", "longitude", "lng", "x"), ("lat", "latitude", "y"), 4326),
        (("easting",), ("northing",), 27700),
    ):
        x_name = next((n for n in xs if text_or_none(row.get(n)) is not None), None)
        y_name = next((n for n in ys if text_or_none(row.get(n)) is not None), None)
        if x_name is None and y_name is None:
            continue
        if x_name is None or y_name is None:
            raise InvalidLocation(f"give both {xs[0]} and {ys[0]}")
        try:
            x, y = float(row[x_name]), float(row[y_name])
        except (TypeError, ValueError):
            raise InvalidLocation(f"{row[x_name]!r}, {row[y_name]!r} are not numbers") from None
        point = shapely.Point(x, y)
        return to_bng(point, None if x_name == "x" else srid), x_name, f"{row[x_name]}, {row[y_name]}"
    return None, None, None
