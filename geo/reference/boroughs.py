"""The 33 London authorities: names, GSS codes, boundaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import shapely
from psycopg.rows import dict_row

from geo.core.errors import InvalidInput
from geo.core.settings import DATA_DIR

if TYPE_CHECKING:
    import geopandas as gpd

BOROUGHS_FILE = DATA_DIR / "london_boroughs.geojson"
GSS_CODES = tuple(f"E09{n:06d}" for n in range(1, 34))
ROYAL_BOROUGHS = {"E09000011", "E09000020", "E09000021"}  # Greenwich, Kensington and Chelsea, Kingston


class UnknownBorough(InvalidInput):
    """A GSS code that is not one of the 33 London authorities."""

    def __init__(self, code: str) -> None:
        super().__init__(f"{code!r} is not a London authority GSS code (E09000001 to E09000033)")
        self.code = code


def check_code(code: str) -> str:
    """Return ``code`` normalised (upper case, trimmed) or raise :class:`UnknownBorough`."""
    normalised = code.strip().upper()
    if normalised not in GSS_CODES:
        raise UnknownBorough(code)
    return normalised


def council_name(code: str, name: str) -> str:
    """The council's formal name: "London Borough of Camden", "Royal Borough of Greenwich"..."""
    if code == "E09000001":
        return "City of London Corporation"
    if code == "E09000033":
        return "Westminster City Council"
    if code in ROYAL_BOROUGHS:
        return f"Royal Borough of {name}"
    return f"London Borough of {name}"


def read_boundaries(code: str | None = None) -> gpd.GeoDataFrame:
    """The shipped boundaries, in British National Grid (only the authority ``code`` if given).

    Returns
    -------
    GeoDataFrame
        Columns ``code``, ``name``, ``inner_london`` and a MultiPolygon ``geometry`` in EPSG:27700,
        one row per authority, sorted by code.
    """
    import geopandas as gpd  # imported when used: it costs half a second of every CLI start

    # One authority is read alone (a quarter of the time: an upload's validation needs one).
    expected = GSS_CODES if code is None else (check_code(code),)
    where = None if code is None else f"GSS_CODE = '{expected[0]}'"
    raw = gpd.read_file(BOROUGHS_FILE, where=where)
    frame = gpd.GeoDataFrame(
        {
            "code": raw["GSS_CODE"].str.strip(),
            "name": raw["NAME"].str.strip(),
            "inner_london": raw["ONS_INNER"].eq("T"),
        },
        geometry=raw.geometry.to_crs(27700),
        crs=27700,
    )
    geoms = shapely.make_valid(frame.geometry.values)
    frame.geometry = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in geoms]
    frame = frame.sort_values("code").reset_index(drop=True)
    if tuple(frame["code"]) != expected:
        raise ValueError(f"{BOROUGHS_FILE} must hold exactly the 33 London authorities, each once")
    return frame


def load_boroughs(conn: psycopg.Connection[Any]) -> int:
    """Insert or refresh the 33 authorities from the shipped boundaries; return how many."""
    frame = read_boundaries()
    rows = [(r.code, r.name, bool(r.inner_london), shapely.to_wkb(r.geometry)) for r in frame.itertuples()]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO boroughs (code, name, inner_london, geom)
               VALUES (%s, %s, %s, ST_SetSRID(ST_GeomFromWKB(%s), 27700))
               ON CONFLICT (code) DO UPDATE
               SET name = EXCLUDED.name, inner_london = EXCLUDED.inner_london, geom = EXCLUDED.geom""",
            rows,
        )
    return len(rows)


def borough_frame(conn: psycopg.Connection[Any]) -> gpd.GeoDataFrame:
    """The boroughs as stored, in EPSG:27700."""
    import geopandas as gpd

    rows = conn.execute(
        "SELECT code, name, inner_london, ST_AsBinary(geom) FROM boroughs ORDER BY code"
    ).fetchall()
    return gpd.GeoDataFrame(
        {"code": [r[0] for r in rows], "name": [r[1] for r in rows], "inner_london": [r[2] for r in rows]},
        geometry=shapely.from_wkb([bytes(r[3]) for r in rows]),
        crs=27700,
    )


_LIST_SQL = """
SELECT b.code, b.name, b.inner_london,
       round((ST_Area(b.geom) / 1e6)::numeric, 3)::float AS area_km2,
       ST_AsGeoJSON(ST_Transform(ST_Envelope(b.geom), 4326), 6)::json -> 'coordinates' AS bbox_ring,
       (SELECT count(*) FROM assets a WHERE a.borough_code = b.code AND a.retired_at IS NULL) AS assets
FROM boroughs b ORDER BY b.code
"""


async def list_boroughs(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Each authority with its area, live asset count and WGS84 bounding box, sorted by code.

    Returns
    -------
    list of dict
        ``code``, ``name``, ``inner_london``, ``area_km2`` (3 decimals), ``assets`` (not retired)
        and ``bbox`` (west, south, east, north; 6 decimals).
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_LIST_SQL)
        rows = await cur.fetchall()
    for row in rows:
        ring = row.pop("bbox_ring")[0]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        row["bbox"] = [min(xs), min(ys), max(xs), max(ys)]
    return rows


async def borough_names(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    """GSS code -> name of the 33 authorities, in name order (as pages list them)."""
    async with conn.cursor() as cur:
        await cur.execute(b"SELECT code, name FROM boroughs ORDER BY name")
        return dict(await cur.fetchall())
