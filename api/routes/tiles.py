"""Vector tiles (``/tiles/{collection}/{z}/{x}/{y}.mvt``), their TileJSON, and grid clusters for web maps."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import AppSettings, Conn, Lazy, LazyConn, LazyReader, Reader
from api.params import CqlFilter, CqlQuery, LayerFilters, base_url
from api.schemas import problems
from geo.access.principals import Principal
from geo.core.settings import Settings
from geo.layers import features, tile_filters, tiles
from geo.layers.collections import Collection, get_collection
from geo.layers.tile_filters import TileFilter

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


#: The responses of a tile, at /tiles/… and at /collections/{id}/tiles/….
TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MVT: {}},
        "description": "A Mapbox Vector Tile (gzip with Content-Encoding when accepted); empty where no data.",
    },
    304: {"description": "The tile has not changed since the ETag of If-None-Match."},
    **problems(
        (400, "A filter is invalid (the detail says where)."),
        401,
        (404, "No such collection, or z/x/y outside the tile matrix."),
    ),
}


def _etag(coll: Collection, version: str, filters: dict[str, list[str]], where: TileFilter | None) -> str:
    """The ETag of a tile: the version its content follows, and a hash of its filters when it has any."""
    if not filters and where is None:
        return f'W/"{coll.id}-{version}"'
    said = repr((sorted(filters.items()), where.key if where is not None else None))
    return f'W/"{coll.id}-{version}-{hashlib.sha256(said.encode()).hexdigest()[:16]}"'


async def compile_cql(
    request: Request, lazy: LazyConn, reader: Principal, coll: Collection, cql: CqlQuery
) -> TileFilter | None:
    """The request's CQL2 filter for this collection and caller (None without one)."""
    public_extra = request.app.state.settings.assets.public_extra
    return await tile_filters.compile_tile_filter(
        lazy.get, coll, reader, cql.text, cql.lang, cql.crs, public_extra
    )


async def serve_tile(
    request: Request,
    lazy: LazyConn,
    reader: Principal,
    settings: Settings,
    coll: Collection,
    z: int,
    x: int,
    y: int,
    filters: dict[str, list[str]],
    cql: CqlQuery,
) -> Response:
    """One tile, from this worker's cache when it has it: shared by /tiles/… and the OGC API Tiles path."""
    tiles.check_tile(z, x, y, settings.tiles.max_zoom)
    where = await compile_cql(request, lazy, reader, coll, cql)
    headers = {
        "Cache-Control": f"public, max-age={settings.tiles.cache_max_age}",
        "Vary": "Accept-Encoding, Authorization",
    }
    version = None
    if not coll.time_dependent:
        version = await tiles.known_tile_version(
            request.app.state.versions, lazy.get, coll, z, settings.tiles.raw_min_zoom, filters, where
        )
        headers["ETag"] = etag = _etag(coll, version, filters, where)
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
        where=where,
    )
    if gzipped and body:
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=MVT, headers=headers)


@router.get(
    "/tiles/{collection_id}/{z}/{x}/{y}.mvt",
    summary="A vector tile",
    response_class=Response,
    responses=TILE_RESPONSES,
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
    filters: LayerFilters,
    cql: CqlFilter,
) -> Response:
    """MVT, gzip-compressed when the client accepts it; ``ETag`` follows the layer's data version.

    A tile this worker has made for the current version is served from memory without a
    database connection (the version itself is known from :mod:`geo.db.versions`). ``filter``
    is a CQL2 filter, as on the items; below the raw zoom, one naming only boroughs, subtypes
    and statuses reads the summaries, any other is counted from the tile's features.
    """
    coll = get_collection(collection_id)
    return await serve_tile(request, lazy, reader, settings, coll, z, x, y, filters, cql)


class ClusterCell(BaseModel):
    """One cell of a tile's cluster grid."""

    i: int = Field(description="The cell's column in the tile's grid, 0 at the west edge.")
    j: int = Field(description="The cell's row, 0 at the north edge.")
    count: int = Field(description="Live features in the cell that match the filters.")
    x: float = Field(description="Their mean position, in pixels of a 256-pixel tile from its west edge.")
    y: float = Field(description="Their mean position, in pixels of a 256-pixel tile from its north edge.")


class ClusterTile(BaseModel):
    """Grid clusters of one tile: for a map that draws one labelled symbol per cell."""

    collection: str = Field(description="The point layer counted.")
    z: int = Field(description="The tile's zoom.")
    x: int = Field(description="The tile's column.")
    y: int = Field(description="The tile's row.")
    cells_per_side: int = Field(
        description="Cells per side of the tile's grid (each 256 / cells_per_side px)."
    )
    cells: list[ClusterCell] = Field(description="The cells holding at least one feature.")


@router.get(
    "/tiles/{collection_id}/clusters/{z}/{x}/{y}.json",
    summary="Grid clusters of a tile, for web maps",
    response_model=ClusterTile,
    responses={
        304: {"description": "The clusters have not changed since the ETag of If-None-Match."},
        **problems(
            (
                400,
                "A filter is invalid, or z is at or above the raw zoom (the tiles carry each feature there).",
            ),
            401,
            (404, "No such collection, it is not a point layer, or x/y is outside the tile matrix."),
        ),
    },
)
async def clusters(
    collection_id: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    lazy: Lazy,
    reader: LazyReader,
    settings: AppSettings,
    filters: LayerFilters,
    cql: CqlFilter,
) -> Response:
    """Counts of a point layer on a 4 x 4 grid a tile (cells of 64 px), below the raw zoom.

    Made from the same summaries as the tiles and cached the same way (``ETag`` follows their build);
    with a CQL2 ``filter`` they cannot answer, counted from the tile's features (``ETag`` follows the data).
    """
    coll = get_collection(collection_id)
    raw = settings.tiles.raw_min_zoom
    tiles.check_clusters(coll, z, raw)
    tiles.check_tile(z, x, y, settings.tiles.max_zoom)
    where = await compile_cql(request, lazy, reader, coll, cql)
    version = await tiles.known_tile_version(
        request.app.state.versions, lazy.get, coll, z, raw, filters, where
    )
    etag = _etag(coll, f"clusters-{version}", filters, where)
    headers = {
        "Cache-Control": f"public, max-age={settings.tiles.cache_max_age}",
        "Vary": "Authorization",
        "ETag": etag,
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = await tiles.cached_clusters(
        request.app.state.tile_cache, version, lazy.get, coll, z, x, y, filters, where
    )
    return Response(body, media_type="application/json", headers=headers)
