"""Coordinate reference systems: their names, London's extents, and the move to British National Grid.

Every endpoint names a CRS the same way: an OGC URI (``http://www.opengis.net/def/crs/EPSG/0/27700``,
the CRS84 URI), ``EPSG:27700``, ``27700``, an OGC URN, or ``CRS84``/``WGS84``/``BNG``, in any case.
Only the EPSG:4326 URI and URN mean latitude first, as that CRS's definition says; every other
name of WGS84 is longitude first, as GeoJSON is. Each endpoint says which CRSs it takes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

from geo.core.errors import InvalidParameter

WGS84 = 4326
BNG = 27700
WEB_MERCATOR = 3857
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
#: The OGC URI of each CRS the service speaks, as ``/collections`` lists them.
URIS = {WGS84: CRS84, BNG: EPSG.format(BNG), WEB_MERCATOR: EPSG.format(WEB_MERCATOR)}
LABELS = {WGS84: "CRS84 (WGS84)", BNG: "EPSG:27700 (British National Grid)", WEB_MERCATOR: "EPSG:3857"}

#: Where London is in British National Grid, with a margin: a location or area outside it is
#: almost surely a CRS mistake (latitude first, or metres given as degrees).
LONDON_BNG = (480_000.0, 140_000.0, 580_000.0, 220_000.0)
#: The service's extent in each CRS it takes a bbox in: Great Britain with a margin. Every asset
#: lies in London, so a box is clamped to it before it reaches PostGIS: a ±1e9 box would
#: otherwise be densified into millions of vertices, and a world-wide WGS84 box transformed to
#: British National Grid far outside where that projection is defined.
EXTENTS: dict[int, tuple[float, float, float, float]] = {
    WGS84: (-9.0, 49.0, 3.0, 61.5),
    BNG: (-100_000.0, -100_000.0, 800_000.0, 1_400_000.0),
    WEB_MERCATOR: (-1_001_875.42, 6_274_861.39, 333_958.47, 8_741_545.44),
}


@dataclass(frozen=True)
class Crs:
    """A CRS as a request names it: its EPSG code, and whether coordinates come latitude first."""

    srid: int
    lat_first: bool = False

    @property
    def name(self) -> str:
        """``EPSG:<srid>``, as reports store it."""
        return f"EPSG:{self.srid}"


def _names() -> dict[str, Crs]:
    names: dict[str, Crs] = {}
    for srid in (WGS84, BNG, WEB_MERCATOR):
        lat_first = srid == WGS84
        for uri in (EPSG.format(srid), EPSG.format(srid).replace("http:", "https:")):
            names[uri.upper()] = Crs(srid, lat_first)
        names[f"URN:OGC:DEF:CRS:EPSG::{srid}"] = Crs(srid, lat_first)
        names[f"EPSG:{srid}"] = Crs(srid)
        names[str(srid)] = Crs(srid)
    for name in (CRS84, CRS84.replace("http:", "https:"), "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "OGC:CRS84"):
        names[name.upper()] = Crs(WGS84)
    names["CRS84"] = names["WGS84"] = Crs(WGS84)
    names["BNG"] = Crs(BNG)
    return names


NAMES = _names()


def parse_crs(
    value: object, name: str, allowed: tuple[int, ...] = (WGS84, BNG), default: int | None = WGS84
) -> Crs | None:
    """The CRS ``value`` names, if it is one of ``allowed``; ``default`` when it is absent.

    Raises :class:`~geo.core.errors.InvalidParameter` naming ``name`` and the value otherwise.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None if default is None else Crs(default)
    crs = NAMES.get(str(value).strip().strip("<>").upper())
    if crs is None or crs.srid not in allowed:
        raise InvalidParameter(
            f"{name}: {value!r} is not supported; use {' or '.join(LABELS[s] for s in allowed)}"
        )
    return crs


@functools.cache
def transformer(source: int, target: int) -> Transformer:
    """A longitude-first transformer between two EPSG codes (made on first use: 0.1-0.2 s each)."""
    return Transformer.from_crs(source, target, always_xy=True)


def to_bng(geometry: shapely.Geometry, srid: int) -> shapely.Geometry:
    """``geometry`` (longitude first where it is WGS84) in British National Grid."""
    if srid == BNG:
        return geometry
    move = transformer(srid, BNG)
    return shapely.transform(geometry, lambda xy: np.column_stack(move.transform(xy[:, 0], xy[:, 1])))


def guess_srid(xy: np.ndarray) -> int | None:
    """WGS84 or British National Grid from the coordinates' ranges; None if they fit neither."""
    x, y = xy[:, 0], xy[:, 1]
    if (np.abs(x) <= 180).all() and (np.abs(y) <= 90).all():
        return WGS84
    if (x >= 0).all() and (x <= 700_000).all() and (y >= 0).all() and (y <= 1_300_000).all():
        return BNG
    return None


def within_london(bounds: tuple[float, float, float, float]) -> bool:
    """Whether a box (in British National Grid) lies inside :data:`LONDON_BNG`."""
    x0, y0, x1, y1 = bounds
    lx0, ly0, lx1, ly1 = LONDON_BNG
    return lx0 <= x0 and x1 <= lx1 and ly0 <= y0 and y1 <= ly1


def touches_london(geometry: shapely.Geometry) -> bool:
    """Whether ``geometry`` (in British National Grid) overlaps :data:`LONDON_BNG`."""
    return bool(geometry.intersects(shapely.box(*LONDON_BNG)))
