"""``GET /boroughs``: the 33 London authorities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.deps import Conn, Reader
from api.schemas import problems

router = APIRouter(tags=["boroughs"])

SQL = """
SELECT b.code, b.name, b.inner_london,
       round((ST_Area(b.geom) / 1e6)::numeric, 3)::float AS area_km2,
       ST_AsGeoJSON(ST_Transform(ST_Envelope(b.geom), 4326), 6)::json -> 'coordinates' AS bbox_ring,
       (SELECT count(*) FROM assets a WHERE a.borough_code = b.code AND a.retired_at IS NULL) AS assets
FROM boroughs b ORDER BY b.code
"""


class Borough(BaseModel):
    """One London authority."""

    code: str = Field(description="GSS code (E09000001-E09000033).", examples=["E09000007"])
    name: str = Field(description="The authority's name.", examples=["Camden"])
    inner_london: bool = Field(description="Whether it is an inner London authority.")
    area_km2: float = Field(description="Area in square kilometres (3 decimals).")
    assets: int = Field(description="Live (not retired) assets.")
    bbox: list[float] = Field(
        min_length=4, max_length=4, description="WGS84 bounding box: west, south, east, north (6 decimals)."
    )


@router.get(
    "/boroughs",
    summary="The 33 London authorities with their asset counts",
    response_model=list[Borough],
    responses=problems(401),
)
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
