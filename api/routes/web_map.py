"""``GET /map``: the GLA web map page, and the static files it loads under ``/static``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import AppSettings, Conn, Reader
from maps.static_files import STATIC_DIR, STATIC_URL
from maps.web_map import map_page

router = APIRouter(tags=["web map"])


@router.get("/map", response_class=HTMLResponse, summary="The GLA web map")
async def web_map(
    request: Request,
    conn: Conn,
    reader: Reader,
    settings: AppSettings,
    borough: Annotated[
        str | None, Query(description="GSS code (E09000001 to E09000033): open framed to this borough.")
    ] = None,
) -> HTMLResponse:
    """Borough outlines and every asset layer (from the vector tiles), with legend and borough selector."""
    html = await map_page(
        conn,
        borough=borough,
        settings=settings.map,
        prefix=request.scope.get("root_path", ""),
        raw_zoom=settings.tiles.raw_min_zoom,
        max_zoom=settings.tiles.max_zoom,
    )
    return HTMLResponse(html)


def mount_static(app: FastAPI) -> None:
    """Serve ``maps/static`` (the map's own files and the vendored Leaflet) at ``/static``."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
