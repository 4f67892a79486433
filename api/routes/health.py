"""``GET /health``: is the database reachable, which PostGIS, which migration level, how many assets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Conn
from geo.db.database import health as database_health

router = APIRouter(tags=["service"])


@router.get("/health", summary="Service and database health")
async def health(conn: Conn) -> JSONResponse:
    """``status`` is ``ok`` when the database answers and every migration is applied (else 503)."""
    info: dict[str, Any] = await database_health(conn)
    ok = info["migration_level"] == info["migrations_expected"]
    info = {"status": "ok" if ok else "migrations pending", "database": "reachable", **info}
    return JSONResponse(info, status_code=200 if ok else 503)
