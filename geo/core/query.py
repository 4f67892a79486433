"""Query values parsed once for every endpoint: whole numbers and bboxes, and the envelope SQL.

A bbox is ``minx,miny,maxx,maxy`` in its ``bbox-crs`` (:func:`geo.core.crs.parse_crs` names
it; each endpoint says which CRSs it takes). A bad one is a 400 everywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from geo.core.crs import BNG, CRS84, EPSG, EXTENTS, WEB_MERCATOR, WGS84, Crs, parse_crs
from geo.core.errors import InvalidParameter

#: Output CRSs of the features API, by URI -> SRID (EPSG:4326 by URI is latitude first).
SUPPORTED_CRS = {
    CRS84: WGS84,
    EPSG.format(WGS84): WGS84,
    EPSG.format(BNG): BNG,
    EPSG.format(WEB_MERCATOR): WEB_MERCATOR,
}
_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)
BIGINT = 2**63 - 1


def clamp_bbox(box: tuple[float, float, float, float], srid: int) -> tuple[float, float, float, float]:
    """``box`` clamped to the service's extent in its CRS (a box outside it becomes a sliver on its edge)."""
    ex0, ey0, ex1, ey1 = EXTENTS[srid]
    x0, y0, x1, y1 = box
    return (min(max(x0, ex0), ex1), min(max(y0, ey0), ey1), min(max(x1, ex0), ex1), min(max(y1, ey0), ey1))


def parse_bbox(value: str | None, srid: int, lat_first: bool) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` in the bbox CRS, checked and clamped to the service's extent.

    Four finite numbers, minimum not above maximum; WGS84 within ±180/±90. The one parser of a
    bbox: features, wayleaves and Pipeline projects take the same.
    """
    if value is None or value == "":
        return None
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        raise InvalidParameter(f"bbox: {value!r} must be four comma-separated numbers") from None
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter(f"bbox: {value!r} must be four finite numbers (minx,miny,maxx,maxy)")
    if lat_first:
        numbers = [numbers[1], numbers[0], numbers[3], numbers[2]]
    x0, y0, x1, y1 = numbers
    if x0 > x1 or y0 > y1:
        raise InvalidParameter(f"bbox: {value!r} has its minimum above its maximum")
    if srid == 4326 and not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise InvalidParameter(
            f"bbox: {value!r} is not longitude/latitude; for British National Grid add bbox-crs={EPSG.format(27700)}"
        )
    return clamp_bbox((x0, y0, x1, y1), srid)


def whole_number(text: str) -> int | None:
    """``text`` as an integer if it is one in ASCII digits within PostgreSQL's bigint, else None.

    ``str.isdigit`` accepts ``²`` and other digits ``int`` refuses, ``int`` takes ``1_000`` and
    Arabic-Indic digits, and a longer number overflows in the database.
    """
    if not _INTEGER.fullmatch(text) or abs(int(text)) > BIGINT:
        return None
    return int(text)


#: The bbox as a polygon in British National Grid, from the parameters of :meth:`Bbox.params`.
#: It is densified before it is transformed, so its edges stay true in 27700.
ENVELOPE_SQL = """ST_Transform(ST_Segmentize(ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, %(bbox_srid)s),
                             CASE WHEN %(bbox_srid)s = 4326 THEN 0.001 ELSE 100 END), 27700)"""
# MATERIALIZED: computed once. Inlined, a generic plan (what a prepared statement switches to after
# five runs) transformed the box again for every row: 5 s a page instead of 0.1 s.
BOX_SQL = f"""
b AS MATERIALIZED (SELECT {ENVELOPE_SQL} AS box)
"""


@dataclass(frozen=True)
class Bbox:
    """A checked bbox: its corners (longitude first) in its CRS, clamped to the service's extent."""

    box: tuple[float, float, float, float]
    srid: int = WGS84

    def params(self) -> dict[str, Any]:
        """The query parameters :data:`ENVELOPE_SQL` and :data:`BOX_SQL` read."""
        x0, y0, x1, y1 = self.box
        return {"b0": x0, "b1": y0, "b2": x1, "b3": y1, "bbox_srid": self.srid}


def read_bbox(
    value: str | None, crs_value: str | None, allowed: tuple[int, ...] = (WGS84, BNG)
) -> Bbox | None:
    """The ``bbox`` and ``bbox-crs`` query parameters as a :class:`Bbox`, None without a bbox."""
    crs = parse_crs(crs_value, "bbox-crs", allowed) or Crs(WGS84)
    box = parse_bbox(value, crs.srid, crs.lat_first)
    return None if box is None else Bbox(box, crs.srid)
