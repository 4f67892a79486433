"""Query values parsed once for every endpoint: whole numbers, CRSs and bboxes, and the envelope SQL."""

from __future__ import annotations

import math
import re

from geo.core.errors import InvalidParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
#: Output and bbox CRSs, by URI -> SRID. EPSG:4326 is latitude first, as its definition says.
SUPPORTED_CRS = {CRS84: 4326, EPSG.format(4326): 4326, EPSG.format(27700): 27700, EPSG.format(3857): 3857}


def parse_crs(value: str | None, name: str) -> tuple[int, bool]:
    """SRID and latitude-first flag of a CRS URI (CRS84 when absent)."""
    if value is None or value == "":
        return 4326, False
    uri = value.strip().strip("<>")
    if uri not in SUPPORTED_CRS:
        raise InvalidParameter(f"{name}: {value!r} is not supported; use one of {', '.join(SUPPORTED_CRS)}")
    return SUPPORTED_CRS[uri], uri == EPSG.format(4326)


#: The service's extent in each CRS it takes a bbox in: Great Britain with a margin. Every asset
#: lies in London, so a box is clamped to it before it reaches PostGIS: a ±1e9 box would
#: otherwise be densified into millions of vertices, and a world-wide WGS84 box transformed to
#: British National Grid far outside where that projection is defined.
EXTENTS: dict[int, tuple[float, float, float, float]] = {
    4326: (-9.0, 49.0, 3.0, 61.5),
    27700: (-100_000.0, -100_000.0, 800_000.0, 1_400_000.0),
    3857: (-1_001_875.42, 6_274_861.39, 333_958.47, 8_741_545.44),
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


# The bbox is densified before it is transformed, so its edges stay true in 27700. MATERIALIZED:
# computed once. Inlined, a generic plan (what a prepared statement switches to after five runs)
# transformed the box again for every row: 5 s a page instead of 0.1 s.
BOX_SQL = """
b AS MATERIALIZED (SELECT ST_Transform(ST_Segmentize(ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, %(bbox_srid)s),
                                          CASE WHEN %(bbox_srid)s = 4326 THEN 0.001 ELSE 100 END), 27700) AS box)
"""
