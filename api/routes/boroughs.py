"""``GET /boroughs``: the 33 London authorities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Conn, Reader
from api.schemas import problems
from geo.reference import boroughs

router = APIRouter(tags=["boroughs"])


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
    return await boroughs.list_boroughs(conn)
