"""``GET /health``: is the database reachable, which PostGIS, which migration level, how many assets."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api.deps import Conn
from api.schemas import problems
from geo.db.database import health as database_health

router = APIRouter(tags=["service"])


class AssetCounts(BaseModel):
    """Live (not retired) assets of each kind."""

    public_building: int = Field(description="Public buildings.")
    street_furniture: int = Field(description="Street furniture.")
    duct: int = Field(description="Ducts.")


class Health(BaseModel):
    """The service's and the database's state."""

    status: Literal["ok", "migrations pending"] = Field(
        description="ok when the database answers and every migration is applied."
    )
    database: Literal["reachable"] = Field(description="The database answered.")
    postgres: str = Field(description="PostgreSQL's version.", examples=["15.20"])
    postgis: str = Field(description="PostGIS's version.", examples=["3.3.2"])
    migration_level: int = Field(description="The last migration applied to the database.")
    migrations_expected: int = Field(description="The last migration this version of the service has.")
    boroughs: int = Field(description="London authorities loaded (33).")
    assets: AssetCounts = Field(description="Live assets per kind.")


@router.get(
    "/health",
    summary="Service and database health",
    response_model=Health,
    responses={
        **problems(),
        503: {
            "model": Health,
            "description": "Migrations are pending (this body), or the database is not reachable "
            "(a problem document, with Retry-After).",
        },
    },
)
async def health(conn: Conn, response: Response) -> dict[str, Any]:
    """``status`` is ``ok`` when the database answers and every migration is applied (else 503)."""
    info = await database_health(conn)
    ok = info["migration_level"] == info["migrations_expected"]
    if not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "migrations pending", "database": "reachable", **info}
