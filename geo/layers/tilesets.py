"""OGC API - Tiles documents: the WebMercatorQuad tile matrix set, and each collection's vector tileset.

The tiles themselves are those of :mod:`geo.layers.tiles` (the same bytes, the same cache); these
are the documents that let a client find them: ``/tileMatrixSets/WebMercatorQuad`` (OGC 2D Tile
Matrix Set 2.0, JSON), ``/collections/{id}/tiles`` (the tileset list) and
``/collections/{id}/tiles/WebMercatorQuad`` (the tileset: URL template, limits per zoom, layers).
OGC tile URLs name the row before the column: ``{tileMatrix}/{tileRow}/{tileCol}`` is ``z/y/x``.
"""

from __future__ import annotations

import math
from typing import Any

from geo.core.errors import NotFound
from geo.layers.collections import Collection
from geo.layers.tile_summaries import HALF_WORLD, WORLD

TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
TMS = "http://www.opengis.net/spec/tms/2.0/conf/"
#: The conformance classes of OGC API - Tiles 1.0 and TMS 2.0 implemented here (each exercised by the tests).
CONFORMANCE = [
    TILES + "core",
    TILES + "tileset",
    TILES + "tilesets-list",
    TILES + "geodata-tilesets",
    TILES + "mvt",
    TILES + "oas30",
    TMS + "tilematrixset",
    TMS + "json-tilematrixset",
    TMS + "tilesetmetadata",
    TMS + "json-tilesetmetadata",
]

REL = "http://www.opengis.net/def/rel/ogc/1.0/"
TILESETS_VECTOR = REL + "tilesets-vector"
TILING_SCHEME = REL + "tiling-scheme"
TILING_SCHEMES = REL + "tiling-schemes"
MVT = "application/vnd.mapbox-vector-tile"

WEB_MERCATOR_QUAD = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: WebMercatorQuad's tile matrices (the standard defines zooms 0 to 24).
TMS_MAX_ZOOM = 24
#: Metres per pixel of a 256-pixel tile at zoom 0, and the scale at the standard 0.28 mm pixel.
CELL_SIZE_0 = WORLD / 256
SCALE_0 = CELL_SIZE_0 / 0.00028


class UnknownTileMatrixSet(NotFound):
    """No tile matrix set has that id (404)."""


def check_tile_matrix_set(tms_id: str) -> None:
    """Raise :class:`UnknownTileMatrixSet` unless ``tms_id`` is WebMercatorQuad."""
    if tms_id != WEB_MERCATOR_QUAD:
        raise UnknownTileMatrixSet(
            f"tileMatrixSetId: no tile matrix set {tms_id[:40]!r}; this service tiles in {WEB_MERCATOR_QUAD}"
        )


def _link(
    href: str, rel: str, type_: str, title: str | None = None, templated: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    if templated:
        out["templated"] = True
    return out


def tile_matrix_sets(base: str) -> dict[str, Any]:
    """``/tileMatrixSets``: the one tile matrix set, linked."""
    url = f"{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}"
    return {
        "tileMatrixSets": [
            {
                "id": WEB_MERCATOR_QUAD,
                "title": "Google Maps Compatible for the World",
                "uri": TMS_URI,
                "links": [_link(url, "self", "application/json", "The tile matrix set")],
            }
        ],
        "links": [_link(f"{base}/tileMatrixSets", "self", "application/json", "Tile matrix sets")],
    }


def web_mercator_quad() -> dict[str, Any]:
    """The WebMercatorQuad tile matrix set in OGC 2D TMS 2.0 JSON (zooms 0 to 24).

    Also under the names of the TMS 1.0 JSON encoding (``type``, ``identifier``, ``supportedCRS``,
    and each matrix's ``identifier`` and ``topLeftCorner``): GDAL before 3.7 reads only those, and a
    TMS 2.0 client ignores them.
    """
    origin = [-HALF_WORLD, HALF_WORLD]
    return {
        "id": WEB_MERCATOR_QUAD,
        "title": "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": CRS_3857,
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "boundingBox": {
            "lowerLeft": [-HALF_WORLD, -HALF_WORLD],
            "upperRight": [HALF_WORLD, HALF_WORLD],
            "crs": CRS_3857,
        },
        "tileMatrices": [
            {
                "id": str(z),
                "scaleDenominator": SCALE_0 / 2**z,
                "cellSize": CELL_SIZE_0 / 2**z,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": origin,
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2**z,
                "matrixHeight": 2**z,
                "identifier": str(z),
                "topLeftCorner": origin,
            }
            for z in range(TMS_MAX_ZOOM + 1)
        ],
        "type": "TileMatrixSetType",
        "identifier": WEB_MERCATOR_QUAD,
        "supportedCRS": CRS_3857,
    }


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The column and row of the zoom ``z`` tile holding a WGS84 point (clamped to the matrix)."""
    lat = max(min(lat, 85.0511287798), -85.0511287798)
    n = 2**z
    col = int((lon + 180) / 360 * n)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(col, 0), n - 1), min(max(row, 0), n - 1)


def tile_matrix_limits(extent: list[float] | None, max_zoom: int) -> list[dict[str, Any]]:
    """The rows and columns holding data at each zoom 0..``max_zoom``, from a WGS84 extent (none without one)."""
    if not extent:
        return []
    west, south, east, north = extent
    limits = []
    for z in range(max_zoom + 1):
        min_col, min_row = _tile_of(west, north, z)
        max_col, max_row = _tile_of(east, south, z)
        limits.append(
            {
                "tileMatrix": str(z),
                "minTileRow": min_row,
                "maxTileRow": max_row,
                "minTileCol": min_col,
                "maxTileCol": max_col,
            }
        )
    return limits


def tileset_list(base: str, collection: Collection) -> dict[str, Any]:
    """``/collections/{id}/tiles``: the collection's one vector tileset."""
    here = f"{base}/collections/{collection.id}/tiles"
    return {
        "tilesets": [
            {
                "title": f"{collection.title} ({WEB_MERCATOR_QUAD})",
                "dataType": "vector",
                "crs": CRS_3857,
                "tileMatrixSetURI": TMS_URI,
                "links": [
                    _link(f"{here}/{WEB_MERCATOR_QUAD}", "self", "application/json", "The tileset"),
                    _link(
                        f"{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}",
                        TILING_SCHEME,
                        "application/json",
                        "The tile matrix set",
                    ),
                ],
            }
        ],
        "links": [
            _link(here, "self", "application/json", "Tilesets"),
            _link(f"{base}/collections/{collection.id}", "collection", "application/json", collection.title),
        ],
    }


def _geometry_dimension(collection: Collection) -> int | None:
    return {"Point": 0, "LineString": 1, "MultiPolygon": 2}.get(collection.geometry_type)


def tileset(
    base: str, collection: Collection, extent: list[float] | None, raw_min_zoom: int, max_zoom: int
) -> dict[str, Any]:
    """``/collections/{id}/tiles/WebMercatorQuad``: the tileset's metadata, URL template and layer.

    The layer's properties are those of the raw zooms; below ``raw_min_zoom`` a point layer's tiles
    carry clusters (``count``) and a line layer's merged lines (``length_m``, ``count``).
    """
    here = f"{base}/collections/{collection.id}/tiles/{WEB_MERCATOR_QUAD}"
    low = {"points": "clusters with a count", "lines": "merged lines with their length and count"}
    summary = f" Below zoom {raw_min_zoom}: {low[collection.low_zoom]}." if collection.low_zoom in low else ""
    layer: dict[str, Any] = {
        "id": collection.id,
        "title": collection.title,
        "description": f"{collection.description} Features from zoom {raw_min_zoom}.{summary}",
        "dataType": "vector",
        "minTileMatrix": "0",
        "maxTileMatrix": str(max_zoom),
        "propertiesSchema": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in collection.tile_properties},
        },
    }
    dimension = _geometry_dimension(collection)
    if dimension is not None:
        layer["geometryDimension"] = dimension
    out: dict[str, Any] = {
        "title": f"{collection.title} ({WEB_MERCATOR_QUAD})",
        "description": layer["description"],
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "tileMatrixSetLimits": tile_matrix_limits(extent, max_zoom),
        "layers": [layer],
        "links": [
            _link(here, "self", "application/json", "This tileset"),
            _link(
                f"{base}/tileMatrixSets/{WEB_MERCATOR_QUAD}",
                TILING_SCHEME,
                "application/json",
                "Tile matrix set",
            ),
            _link(f"{base}/collections/{collection.id}", "collection", "application/json", collection.title),
            _link(
                f"{here}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                "item",
                MVT,
                "Tiles (Mapbox Vector Tiles); add filter= for a CQL2 filter",
                templated=True,
            ),
        ],
    }
    if extent:
        out["boundingBox"] = {"lowerLeft": extent[:2], "upperRight": extent[2:], "crs": CRS84}
    else:
        del out["tileMatrixSetLimits"]
    return out
