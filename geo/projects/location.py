"""A project's explicit location (its site): GeoJSON, WKT or coordinate columns, in British National Grid, in London."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.projects.model import InvalidLocation
from geo.projects.values import text_or_none

if TYPE_CHECKING:
    from pyproj import Transformer

# A generous box around London in British National Grid: explicit locations must fall in it.
LONDON_BNG = (480_000.0, 140_000.0, 580_000.0, 220_000.0)


@functools.cache
def _transformer(source: int, target: int) -> Transformer:
    # Made on first use: building one costs 0.1-0.2 s, paid otherwise by every CLI command.
    from pyproj import Transformer

    return Transformer.from_crs(source, target, always_xy=True)


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
        if -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90:
            srid = 4326
        else:
            srid = 27700
    if srid == 4326:
        if 49 <= x0 <= 53 and -1 <= y0 <= 1:
            raise InvalidLocation(
                f"the location ({x0:g}, {y0:g}) has latitude first: give longitude, latitude"
            )
        geom = shapely.transform(
            geom, lambda c: np.column_stack(_transformer(4326, 27700).transform(c[:, 0], c[:, 1]))
        )
    elif srid != 27700:
        raise InvalidLocation(
            f"EPSG:{srid} is not supported; give WGS84 (4326) or British National Grid (27700)"
        )
    geom = _round(geom)
    if not geom.is_valid:
        raise InvalidLocation(f"the location is not a valid geometry: {shapely.is_valid_reason(geom)}")
    bx0, by0, bx1, by1 = geom.bounds
    if not (LONDON_BNG[0] <= bx0 and bx1 <= LONDON_BNG[2] and LONDON_BNG[1] <= by0 and by1 <= LONDON_BNG[3]):
        raise InvalidLocation(f"the location ({bx0:.0f}, {by0:.0f} in EPSG:27700) is not in London")
    return geom


def to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    """A 27700 geometry in WGS84 lon/lat (for tests and maps)."""
    return shapely.transform(
        geom, lambda c: np.column_stack(_transformer(27700, 4326).transform(c[:, 0], c[:, 1]))
    )


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
