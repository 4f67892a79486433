"""Vector tiles (``/tiles/{collection}/{z}/{x}/{y}.mvt``) and their TileJSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import AppSettings, Conn, Lazy, LazyReader, Reader
from api.routes.features import base_url
from api.schemas import problems
from geo.layers import features, tiles
from geo.layers.collections import get_collection

router = APIRouter(tags=["vector tiles"])
MVT = "application/vnd.mapbox-vector-tile"


class VectorLayer(BaseModel):
    """One layer of the tiles, over a range of zooms."""

    id: str = Field(description="The layer's name in a tile (the collection id).")
    fields: dict[str, str] = Field(description="Property name -> type (String, Number).")
    minzoom: int | None = Field(default=None, description="Its first zoom (raw features).")
    maxzoom: int | None = Field(default=None, description="Its last zoom (summaries).")
    description: str | None = Field(default=None, description="What it holds.")


class TileJson(BaseModel):
    """A TileJSON 3.0.0 document."""

    tilejson: str = Field(description="The TileJSON version.", examples=["3.0.0"])
    name: str = Field(description="The layer's title.")
    description: str = Field(
        description="What the layer holds, and from which zoom tiles carry raw features."
    )
    tiles: list[str] = Field(description="The tile URL template.")
    minzoom: int = Field(description="The first zoom served.")
    maxzoom: int = Field(description="The last zoom served.")
    bounds: list[float] = Field(description="The data's extent in WGS84: west, south, east, north.")
    vector_layers: list[VectorLayer] = Field(
        description="Raw features from the raw zoom; summaries below it."
    )


@router.get(
    "/tiles/{collection_id}.json",
    summary="TileJSON of a layer",
    response_model=TileJson,
    response_model_exclude_unset=True,
    responses=problems(401, 404),
)
async def tilejson(
    collection_id: str, request: Request, conn: Conn, reader: Reader, settings: AppSettings
) -> dict[str, Any]:
    """TileJSON 3.0.0: the tile URL template, zooms, bounds and the layer's fields."""
    coll = get_collection(collection_id)
    extent = await features.get_extent(conn, coll)
    raw = settings.tiles.raw_min_zoom
    if coll.low_zoom == "points":
        low = {"count": "Number"}
    elif coll.low_zoom == "lines":
        low = {"length_m": "Number", "count": "Number"}
    else:
        low = dict.fromkeys(coll.tile_properties, "String")
    return {
        "tilejson": "3.0.0",
        "name": coll.title,
        "description": f"{coll.description} Raw features from zoom {raw}; below it: {coll.low_zoom} summaries.",
        "tiles": [f"{base_url(request)}/tiles/{coll.id}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": 0,
        "maxzoom": settings.tiles.max_zoom,
        "bounds": extent or [-180, -85.05, 180, 85.05],
        "vector_layers": [
            {"id": coll.id, "fields": dict.fromkeys(coll.tile_properties, "String"), "minzoom": raw},
            {"id": coll.id, "fields": low, "maxzoom": raw - 1, "description": "summaries below the raw zoom"},
        ],
    }


@router.get(
    "/tiles/{collection_id}/{z}/{x}/{y}.mvt",
    summary="A vector tile",
    response_class=Response,
    responses={
        200: {
            "content": {MVT: {}},
            "description": "A Mapbox Vector Tile (gzip with Content-Encoding when accepted); empty where no data.",
        },
        304: {"description": "The tile has not changed since the ETag of If-None-Match."},
        **problems(400, 401, (404, "No such collection, or z/x/y outside the tile matrix.")),
    },
)
async def tile(
    collection_id: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    lazy: Lazy,
    reader: LazyReader,
    settings: AppSettings,
    borough: Annotated[str | None, Query(description="GSS codes, comma-separated")] = None,
    subtype: Annotated[str | None, Query(description="Subtypes, comma-separated")] = None,
    status: Annotated[str | None, Query(description="Operational statuses, comma-separated")] = None,
) -> Response:
    """MVT, gzip-compressed when the client accepts it; ``ETag`` follows the layer's data version.

    A tile this worker has made for the current version is served from memory without a
    database connection (the version itself is known from :mod:`geo.db.versions`).
    """
    coll = get_collection(collection_id)
    tiles.check_tile(z, x, y, settings.tiles.max_zoom)
    filters = features.parse_filters(coll, features.filter_values(coll, dict(request.query_params)))
    headers = {
        "Cache-Control": f"public, max-age={settings.tiles.cache_max_age}",
        "Vary": "Accept-Encoding, Authorization",
    }
    version = None
    if not coll.time_dependent:
        version = await tiles.known_tile_version(
            request.app.state.versions, lazy.get, coll, z, settings.tiles.raw_min_zoom
        )
        headers["ETag"] = etag = f'W/"{coll.id}-{version}"'
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    body = await tiles.cached_tile(
        request.app.state.tile_cache,
        version,
        lazy.get,
        coll,
        z,
        x,
        y,
        filters,
        settings.tiles,
        gzipped=gzipped,
    )
    if gzipped and body:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=MVT, headers=headers)
