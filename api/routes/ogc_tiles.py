"""OGC API - Tiles (Core, TileSet, tileset lists, geodata tilesets, MVT): the tile matrix set, each
collection's vector tileset, and its tiles, the same bytes and cache as ``/tiles/…``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import AppSettings, Conn, Lazy, LazyReader, Reader
from api.params import CollectionPath, CqlFilter, LayerFilters, base_url, json_only
from api.routes.tiles import TILE_RESPONSES, serve_tile
from api.schemas import problems
from geo.layers import features, tilesets

router = APIRouter(tags=["OGC API Tiles"])
JSON_ONLY = [Depends(json_only)]


class Link(BaseModel):
    """An OGC link."""

    href: str = Field(description="The target; a URL template when templated.")
    rel: str = Field(description="The relation (self, item, or an OGC relation URI).")
    type: str = Field(description="The media type of the target.")
    title: str | None = Field(default=None, description="What the target is.")
    templated: bool | None = Field(default=None, description="Whether href is a URL template.")


class TileMatrixSetRef(BaseModel):
    """A tile matrix set, linked."""

    id: str = Field(description="Its id in this API.")
    title: str = Field(description="Its title.")
    uri: str = Field(description="Its OGC URI.")
    links: list[Link] = Field(description="Its definition.")


class TileMatrixSets(BaseModel):
    """The tile matrix sets tiles are served in."""

    tileMatrixSets: list[TileMatrixSetRef] = Field(description="WebMercatorQuad, the one served.")
    links: list[Link] = Field(description="This document.")


class BoundingBox(BaseModel):
    """An extent."""

    lowerLeft: list[float] = Field(description="West, south.")
    upperRight: list[float] = Field(description="East, north.")
    crs: str = Field(description="Its CRS.")


class TileMatrix(BaseModel):
    """One zoom of a tile matrix set (OGC 2D TMS 2.0)."""

    id: str = Field(description="The zoom, as the tile URLs' tileMatrix.")
    scaleDenominator: float = Field(description="The scale at 0.28 mm a pixel.")
    cellSize: float = Field(description="Metres a pixel.")
    cornerOfOrigin: str = Field(description="Where rows and columns count from (topLeft).")
    pointOfOrigin: list[float] = Field(description="That corner, in the CRS (x, y).")
    tileWidth: int = Field(description="Pixels a tile across.")
    tileHeight: int = Field(description="Pixels a tile down.")
    matrixWidth: int = Field(description="Tiles across the matrix.")
    matrixHeight: int = Field(description="Tiles down the matrix.")
    identifier: str = Field(description="id, under its TMS 1.0 name (for GDAL before 3.7).")
    topLeftCorner: list[float] = Field(description="pointOfOrigin, under its TMS 1.0 name.")


class TileMatrixSet(BaseModel):
    """A tile matrix set in OGC 2D TMS 2.0 JSON."""

    id: str = Field(description="Its id in this API.")
    title: str = Field(description="Its title.")
    uri: str = Field(description="Its OGC URI.")
    crs: str = Field(description="The CRS of its tiles.")
    orderedAxes: list[str] = Field(description="The CRS's axes in the order of pointOfOrigin.")
    wellKnownScaleSet: str = Field(description="The well-known scale set it follows.")
    boundingBox: BoundingBox = Field(description="Its extent, in its CRS.")
    tileMatrices: list[TileMatrix] = Field(description="Its zooms, 0 to 24.")
    type: str = Field(description="TileMatrixSetType: the TMS 1.0 marker (for GDAL before 3.7).")
    identifier: str = Field(description="id, under its TMS 1.0 name.")
    supportedCRS: str = Field(description="crs, under its TMS 1.0 name.")


class TileSetRef(BaseModel):
    """A tileset, linked."""

    title: str = Field(description="Its title.")
    dataType: str = Field(description="vector.")
    crs: str = Field(description="The CRS of its tiles.")
    tileMatrixSetURI: str = Field(description="The tile matrix set it follows.")
    links: list[Link] = Field(description="The tileset and its tile matrix set.")


class TileSets(BaseModel):
    """The tilesets of a collection."""

    tilesets: list[TileSetRef] = Field(description="Its vector tileset in WebMercatorQuad.")
    links: list[Link] = Field(description="This document and the collection.")


class TileMatrixLimits(BaseModel):
    """The tiles holding data at one zoom."""

    tileMatrix: str = Field(description="The zoom.")
    minTileRow: int = Field(description="The first row.")
    maxTileRow: int = Field(description="The last row.")
    minTileCol: int = Field(description="The first column.")
    maxTileCol: int = Field(description="The last column.")


class GeoDataLayer(BaseModel):
    """A layer of the tiles."""

    id: str = Field(description="Its name in a tile (the collection id).")
    title: str = Field(description="Its title.")
    description: str = Field(description="What it holds, and from which zoom tiles carry each feature.")
    dataType: str = Field(description="vector.")
    geometryDimension: int | None = Field(default=None, description="0 points, 1 lines, 2 polygons.")
    minTileMatrix: str = Field(description="Its first zoom.")
    maxTileMatrix: str = Field(description="Its last zoom.")
    propertiesSchema: dict[str, Any] = Field(description="The properties of its features at the raw zooms.")


class TileSet(BaseModel):
    """A tileset's metadata (OGC 2D TMS 2.0 tileset metadata, JSON)."""

    title: str = Field(description="Its title.")
    description: str = Field(description="What its tiles hold.")
    dataType: str = Field(description="vector.")
    crs: str = Field(description="The CRS of its tiles.")
    tileMatrixSetURI: str = Field(description="The tile matrix set it follows.")
    tileMatrixSetLimits: list[TileMatrixLimits] | None = Field(
        default=None, description="The tiles holding data at each zoom."
    )
    boundingBox: BoundingBox | None = Field(default=None, description="The data's extent.")
    layers: list[GeoDataLayer] = Field(description="The layer of its tiles.")
    links: list[Link] = Field(
        description="The tile URL template (rel item), the tile matrix set, the collection."
    )


TmsId = Annotated[str, Path(description="The tile matrix set: WebMercatorQuad")]


@router.get(
    "/tileMatrixSets",
    summary="Tile matrix sets",
    response_model=TileMatrixSets,
    response_model_exclude_none=True,
    dependencies=JSON_ONLY,
)
async def tile_matrix_sets(request: Request) -> dict[str, Any]:
    """The tile matrix sets the tiles are served in: WebMercatorQuad."""
    return tilesets.tile_matrix_sets(base_url(request))


@router.get(
    "/tileMatrixSets/{tileMatrixSetId}",
    summary="A tile matrix set",
    response_model=TileMatrixSet,
    responses=problems((404, "No tile matrix set has that id.")),
    dependencies=JSON_ONLY,
)
async def tile_matrix_set(tms_id: Annotated[str, Path(alias="tileMatrixSetId")]) -> dict[str, Any]:
    """WebMercatorQuad in OGC 2D Tile Matrix Set 2.0 JSON."""
    tilesets.check_tile_matrix_set(tms_id)
    return tilesets.web_mercator_quad()


@router.get(
    "/collections/{collection_id}/tiles",
    summary="A layer's tilesets",
    response_model=TileSets,
    response_model_exclude_none=True,
    responses=problems(401, 404),
    dependencies=JSON_ONLY,
)
async def collection_tilesets(coll: CollectionPath, request: Request, reader: Reader) -> dict[str, Any]:
    """The collection's vector tileset (WebMercatorQuad), linked."""
    return tilesets.tileset_list(base_url(request), coll)


@router.get(
    "/collections/{collection_id}/tiles/{tileMatrixSetId}",
    summary="A layer's tileset",
    response_model=TileSet,
    response_model_exclude_none=True,
    responses=problems(401, (404, "No such collection or tile matrix set.")),
    dependencies=JSON_ONLY,
)
async def collection_tileset(
    coll: CollectionPath,
    tms_id: Annotated[str, Path(alias="tileMatrixSetId")],
    request: Request,
    conn: Conn,
    reader: Reader,
    settings: AppSettings,
) -> dict[str, Any]:
    """The tileset: its tile URL template (``{tileMatrix}/{tileRow}/{tileCol}``), the tiles holding data
    at each zoom, and its layer."""
    tilesets.check_tile_matrix_set(tms_id)
    extent = await features.get_extent(conn, coll)
    return tilesets.tileset(
        base_url(request), coll, extent, settings.tiles.raw_min_zoom, settings.tiles.max_zoom
    )


@router.get(
    "/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A vector tile (OGC API Tiles)",
    response_class=Response,
    responses=TILE_RESPONSES,
)
async def collection_tile(
    coll: CollectionPath,
    tms_id: Annotated[str, Path(alias="tileMatrixSetId")],
    z: Annotated[int, Path(alias="tileMatrix", description="The zoom")],
    y: Annotated[int, Path(alias="tileRow", description="The row, 0 at the north edge")],
    x: Annotated[int, Path(alias="tileCol", description="The column, 0 at the west edge")],
    request: Request,
    lazy: Lazy,
    reader: LazyReader,
    settings: AppSettings,
    filters: LayerFilters,
    cql: CqlFilter,
) -> Response:
    """The tile ``/tiles/{collection}/{z}/{x}/{y}.mvt`` serves (row is y, column is x): the same bytes,
    cache and ETag, with the same ``filter``."""
    tilesets.check_tile_matrix_set(tms_id)
    return await serve_tile(request, lazy, reader, settings, coll, z, x, y, filters, cql)
