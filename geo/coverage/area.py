"""The area of a coverage report: borough codes, a GeoJSON polygon or a bbox, as one EPSG:27700 geometry.

:func:`parse_area` reads it (the CRS named or guessed from the coordinates, transformed to British
National Grid, checked to be in London); the models below only describe it in ``/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field

from geo.core import crs as crs_names
from geo.core.crs import BNG, WGS84, guess_srid, to_bng, touches_london
from geo.core.errors import InvalidParameter
from geo.coverage.errors import InvalidArea
from geo.reference.boroughs import UnknownBorough, check_code

CRS = "EPSG:27700"


def crs_of(name: str, value: Any) -> int | None:
    """The EPSG code (4326 or 27700) a CRS name gives (None for none); :class:`InvalidArea` otherwise.

    Any name :func:`geo.core.crs.parse_crs` knows; coordinates stay longitude first (GeoJSON's order)
    whichever name is used.
    """
    try:
        crs = crs_names.parse_crs(value, name, (WGS84, BNG), default=None)
    except InvalidParameter as exc:  # a body field: 422, not a query parameter's 400
        raise InvalidArea(str(exc)) from None
    return None if crs is None else crs.srid


def guess_crs(name: str, xy: np.ndarray) -> int:
    """WGS84 or British National Grid, from the coordinates' ranges (:func:`geo.core.crs.guess_srid`)."""
    if xy.size == 0:
        raise InvalidArea(f"{name}: has no coordinates")
    srid = guess_srid(xy)
    if srid is None:
        raise InvalidArea(
            f"{name}: coordinates such as ({xy[0, 0]:g}, {xy[0, 1]:g}) are neither longitude/latitude (WGS84) "
            "nor British National Grid metres; give 'crs'"
        )
    return srid


def _polygonal(name: str, geometry: shapely.Geometry) -> shapely.Geometry:
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if geometry.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
        geometry = shapely.union_all(parts) if parts else shapely.Polygon()
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty or geometry.area <= 0:
        raise InvalidArea(f"{name}: is not a polygon with an area")
    if not touches_london(geometry):
        raise InvalidArea(
            f"{name}: lies outside London (bounds {', '.join(f'{b:.0f}' for b in geometry.bounds)} in "
            "EPSG:27700); check the coordinate order (longitude first) and 'crs'"
        )
    return geometry


def _boroughs_area(value: Any) -> dict[str, Any]:
    codes = [value] if isinstance(value, str) else value
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        raise InvalidArea(f"area.boroughs: {value!r} is not a list of GSS codes")
    try:
        return {"boroughs": sorted({check_code(c) for c in codes})}
    except UnknownBorough as exc:
        raise InvalidArea(f"area.boroughs: {exc}") from exc


def _bbox_area(bbox: Any, crs: int | None) -> tuple[dict[str, Any], shapely.Geometry]:
    if (
        not isinstance(bbox, list | tuple)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    ):
        raise InvalidArea(f"area.bbox: {bbox!r} is not [minx, miny, maxx, maxy]")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x0 < x1 and y0 < y1):
        raise InvalidArea(f"area.bbox: {bbox!r} needs minx < maxx and miny < maxy")
    crs = crs or guess_crs("area.bbox", np.array([[x0, y0], [x1, y1]]))
    box = shapely.box(x0, y0, x1, y1)
    if crs == WGS84:  # the box's edges follow parallels and meridians: densify before projecting
        box = shapely.segmentize(box, max(x1 - x0, y1 - y0) / 32)
    return {"bbox": [x0, y0, x1, y1], "crs": f"EPSG:{crs}"}, _polygonal("area.bbox", to_bng(box, crs))


def _geometry_area(raw: Any, crs: int | None) -> tuple[dict[str, Any], shapely.Geometry]:
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        kind = raw.get("type") if isinstance(raw, dict) else raw
        raise InvalidArea(f"area.geometry: {kind!r} is not a GeoJSON Polygon or MultiPolygon")
    try:
        geometry = shapely.from_geojson(
            json.dumps({"type": raw["type"], "coordinates": raw.get("coordinates")})
        )
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise InvalidArea(f"area.geometry: not valid GeoJSON coordinates ({exc})") from exc
    crs = crs or guess_crs("area.geometry", shapely.get_coordinates(geometry))
    geometry = _polygonal("area.geometry", to_bng(geometry, crs))
    normalised = {
        "geometry": json.loads(shapely.to_geojson(shapely.from_geojson(json.dumps(raw)))),
        "crs": f"EPSG:{crs}",
    }
    return normalised, geometry


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
    crs = crs_of("area.crs", area.get("crs"))
    if given[0] == "boroughs":
        return _boroughs_area(area["boroughs"]), None
    if given[0] == "bbox":
        return _bbox_area(area["bbox"], crs)
    return _geometry_area(area["geometry"], crs)


AreaCrs = Annotated[
    str | None,
    Field(
        description="EPSG:4326 (WGS84 longitude/latitude, also 4326, OGC:CRS84, CRS84 or its URI) or "
        "EPSG:27700 (British National Grid metres, also 27700, BNG or its URI); without it the "
        "coordinates' ranges decide. Coordinates are longitude first whichever name is used.",
        examples=["EPSG:4326"],
    ),
]


class BoroughsArea(BaseModel):
    """London boroughs by GSS code: the report covers their union."""

    model_config = ConfigDict(extra="forbid")

    boroughs: list[str] = Field(
        min_length=1, description="GSS codes E09000001 to E09000033.", examples=[["E09000007"]]
    )


class GeometryArea(BaseModel):
    """A GeoJSON Polygon or MultiPolygon, in WGS84 or British National Grid; it must touch London."""

    model_config = ConfigDict(extra="forbid")

    geometry: dict[str, Any] = Field(description="A GeoJSON Polygon or MultiPolygon geometry.")
    crs: AreaCrs = None


class BboxArea(BaseModel):
    """A box, in WGS84 or British National Grid; it must touch London."""

    model_config = ConfigDict(extra="forbid")

    bbox: list[float] = Field(
        min_length=4,
        max_length=4,
        description="[minx, miny, maxx, maxy]",
        examples=[[528000, 181000, 530000, 183000]],
    )
    crs: AreaCrs = None


class PolygonArea(BaseModel):
    """A bare GeoJSON Polygon or MultiPolygon, taken as ``{"geometry": ...}``."""

    type: Literal["Polygon", "MultiPolygon"] = Field(description="Polygon or MultiPolygon.")
    coordinates: list[Any] = Field(description="The GeoJSON coordinates, longitude first.")


class FeatureArea(BaseModel):
    """A GeoJSON Feature holding a Polygon or MultiPolygon, and an optional ``crs``."""

    type: Literal["Feature"] = Field(description="Feature.")
    geometry: dict[str, Any] = Field(description="A GeoJSON Polygon or MultiPolygon geometry.")
    crs: AreaCrs = None
