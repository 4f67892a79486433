"""``GET /boroughs``: the 33 London authorities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.rows import dict_row

from api.deps import Conn, Reader

router = APIRouter(tags=["boroughs"])

SQL = """
SELECT b.code, b.name, b.inner_london,
       round((ST_Area(b.geom) / 1e6)::numeric, 3)::float AS area_km2,
       ST_AsGeoJSON(ST_Transform(ST_Envelope(b.geom), 4326), 6)::json -> 'coordinates' AS bbox_ring,
       (SELECT count(*) FROM assets a WHERE a.borough_code = b.code AND a.retired_at IS NULL) AS assets
FROM boroughs b ORDER BY b.code
"""


@router.get("/boroughs", summary="The 33 London authorities with their asset counts")
async def list_boroughs(conn: Conn, reader: Reader) -> list[dict[str, Any]]:
    """Code, name, inner/outer London, area, WGS84 bounding box and live asset count of each authority."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SQL)
        rows = await cur.fetchall()
    for row in rows:
        ring = row.pop("bbox_ring")[0]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        row["bbox"] = [min(xs), min(ys), max(xs), max(ys)]
    return rows
