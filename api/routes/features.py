"""OGC API - Features (Part 1 Core, GeoJSON; Part 2 CRS; Part 3 filtering): landing page, conformance,
collections, queryables, items."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import Conn, Reader
from api.params import CRS_HELP, CollectionPath, FeaturesBbox, LayerFilters, OutputCrs, json_only
from geo.core.crs import CRS84, EPSG, Crs
from geo.core.query import SUPPORTED_CRS
from geo.layers import features, filtering
from geo.layers.collections import COLLECTIONS, Collection
from geo.layers.features import ItemsQuery

router = APIRouter(tags=["OGC API Features"], dependencies=[Depends(json_only)])
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    *filtering.CONFORMANCE,
]
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_JSON = "application/schema+json"
FILTER_HELP = (
    "A CQL2 filter over the collection's queryables (see its /queryables), for example "
    "status = 'in_service' AND S_DWITHIN(geometry, POINT(-0.1246 51.5007), 500). "
    f"At most {filtering.MAX_BYTES} bytes and {filtering.MAX_DEPTH} levels deep."
)


def base_url(request: Request) -> str:
    """The service's base URL (setting, else the request's)."""
    configured = request.app.state.settings.api.public_url
    return (configured or str(request.base_url)).rstrip("/")


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    """An OGC link object."""
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


@router.get("/", summary="Landing page")
async def landing(request: Request) -> dict[str, Any]:
    """Links to the API definition, the conformance classes, the collections and the web map."""
    base = base_url(request)
    return {
        "title": "connectivity",
        "description": "Candidate full-fibre assets of London's 33 authorities: OGC API Features and vector tiles.",
        "links": [
            link(f"{base}/", "self", "application/json", "This document"),
            link(
                f"{base}/openapi.json",
                "service-desc",
                "application/vnd.oai.openapi+json;version=3.0",
                "API definition",
            ),
            link(f"{base}/docs", "service-doc", "text/html", "API documentation"),
            link(f"{base}/conformance", "conformance", "application/json", "Conformance classes"),
            link(f"{base}/collections", "data", "application/json", "Collections"),
            link(f"{base}/map", "alternate", "text/html", "Web map"),
        ],
    }


@router.get("/conformance", summary="Conformance classes")
async def conformance() -> dict[str, list[str]]:
    """The OGC conformance classes this service implements."""
    return {"conformsTo": CONFORMANCE}


async def describe(request: Request, conn: Any, collection: Collection) -> dict[str, Any]:
    """A collection's metadata, with its extent (cached per data version)."""
    base = base_url(request)
    version = await features.data_version(conn, collection.version_layer)
    cache = request.app.state.extent_cache
    key = (collection.id, version)
    if key not in cache:
        cache[key] = await features.get_extent(conn, collection)
    extent = cache[key]
    items = f"{base}/collections/{collection.id}/items"
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "crs": list(SUPPORTED_CRS),
        "storageCrs": EPSG.format(27700),
        "extent": {"spatial": {"bbox": [extent] if extent else [], "crs": CRS84}},
        "links": [
            link(f"{base}/collections/{collection.id}", "self", "application/json"),
            link(items, "items", GEOJSON, "Features"),
            link(f"{base}/collections/{collection.id}/queryables", QUERYABLES_REL, SCHEMA_JSON, "Queryables"),
            # The same, under the name GDAL's OAPIF driver looks for.
            link(f"{base}/collections/{collection.id}/queryables", "queryables", SCHEMA_JSON, "Queryables"),
            link(f"{base}/tiles/{collection.id}.json", "tiles", "application/json", "TileJSON"),
        ],
    }


@router.get("/collections", summary="The layers")
async def collections(request: Request, conn: Conn, reader: Reader) -> dict[str, Any]:
    """Every collection with its extent and links."""
    base = base_url(request)
    return {
        "links": [link(f"{base}/collections", "self", "application/json")],
        "crs": list(SUPPORTED_CRS),
        "collections": [await describe(request, conn, c) for c in COLLECTIONS.values()],
    }


@router.get("/collections/{collection_id}", summary="One layer")
async def collection(coll: CollectionPath, request: Request, conn: Conn, reader: Reader) -> dict[str, Any]:
    """A collection's metadata."""
    return await describe(request, conn, coll)


@router.get(
    "/collections/{collection_id}/queryables",
    summary="What a filter may name",
    response_class=Response,
    responses={200: {"content": {SCHEMA_JSON: {"schema": {"type": "object"}}}, "description": "JSON Schema"}},
)
async def queryables(coll: CollectionPath, request: Request, conn: Conn, reader: Reader) -> Response:
    """The properties ``filter`` may name, with their types, as JSON Schema; for this key's role (nothing it cannot see)."""
    url = f"{base_url(request)}/collections/{coll.id}/queryables"
    public_extra = request.app.state.settings.assets.public_extra
    body = await features.get_queryables(conn, coll, reader, url, public_extra)
    # Plain JSON to a client that asks for it and not for JSON Schema (GDAL's OAPIF driver).
    accept = request.headers.get("accept", "")
    media_type = (
        "application/json" if "application/json" in accept and SCHEMA_JSON not in accept else SCHEMA_JSON
    )
    return Response(json.dumps(body), media_type=media_type)


def _crs_header(crs: Crs) -> str:
    return f"<{EPSG.format(crs.srid) if crs.srid != 4326 or crs.lat_first else CRS84}>"


@router.get(
    "/collections/{collection_id}/items", summary="Features, filtered and paged", response_class=Response
)
async def items(
    coll: CollectionPath,
    request: Request,
    conn: Conn,
    reader: Reader,
    bbox: FeaturesBbox,
    crs: OutputCrs,
    filters: LayerFilters,
    limit: Annotated[int, Query(ge=1, le=features.MAX_LIMIT)] = features.DEFAULT_LIMIT,
    datetime: Annotated[
        str | None, Query(description="Last change: an instant or an interval a/b, ../b, a/..")
    ] = None,
    properties: Annotated[str | None, Query(description="Properties to return, comma-separated")] = None,
    after: Annotated[str | None, Query(description="Cursor of the next page (from the next link)")] = None,
    filter_: Annotated[str | None, Query(alias="filter", description=FILTER_HELP)] = None,
    filter_lang: Annotated[
        Literal["cql2-text", "cql2-json", "cql-text"] | None,
        Query(alias="filter-lang", description="cql2-text (default) or cql2-json; cql-text is cql2-text"),
    ] = None,
    filter_crs: Annotated[
        str | None,
        Query(
            alias="filter-crs", description=f"CRS of the filter's geometries: CRS84 or EPSG:27700. {CRS_HELP}"
        ),
    ] = None,
) -> Response:
    """GeoJSON features in id order; follow the ``next`` link for the following page."""
    dt_from, dt_to = features.parse_datetime(datetime)
    where = await filtering.compile_filter(
        conn, coll, reader, filter_, filter_lang, filter_crs, request.app.state.settings.assets.public_extra
    )
    query = ItemsQuery(
        limit=limit,
        after=features.parse_after(coll, after),
        bbox=bbox,
        filters=filters,
        datetime_from=dt_from,
        datetime_to=dt_to,
        properties=features.parse_properties(coll, properties),
        crs=crs,
        where=where,
    )
    page = await features.get_items(conn, coll, query)
    here = f"{base_url(request)}/collections/{coll.id}/items"
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
    links = [
        link(
            f"{here}?{urlencode(params + [('after', str(query.after))] if query.after is not None else params)}",
            "self",
            GEOJSON,
        )
    ]
    if page.next_after is not None:
        links.append(
            link(
                f"{here}?{urlencode(params + [('after', str(page.next_after))])}",
                "next",
                GEOJSON,
                "Next page",
            )
        )
    head = {"type": "FeatureCollection", "numberReturned": page.returned, "links": links}
    if page.matched is not None:
        head["numberMatched"] = page.matched
    body = json.dumps(head)[:-1].encode() + b',"features":' + page.features + b"}"
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": _crs_header(crs)})


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature", response_class=Response)
async def item(
    coll: CollectionPath, feature_id: str, request: Request, conn: Conn, reader: Reader, crs: OutputCrs
) -> Response:
    """One feature as GeoJSON."""
    body = await features.get_feature(conn, coll, feature_id, crs.srid, crs.lat_first)
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": _crs_header(crs)})
