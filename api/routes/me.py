"""``GET /me``: who an API key is, so clients (the web map's sign-in) can check a key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Caller, Conn
from geo.wayleaves import store as wayleaves

router = APIRouter(tags=["access"])


@router.get("/me", summary="Who the API key is")
async def me(conn: Conn, caller: Caller) -> JSONResponse:
    """The key's id, label, role, borough (borough keys) and operator (operator keys; null when unbound).

    Never the key or its hash. 401 without a valid key.
    """
    body = await wayleaves.describe_caller(conn, caller)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
