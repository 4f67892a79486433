"""OGC API - Features (Part 1 Core, GeoJSON; Part 2 CRS; Part 3 filtering): landing page, conformance,
collections, queryables, items."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from api.deps import Conn, Lazy, LazyConn, LazyReader, Reader
from api.params import CRS_HELP, CollectionPath, FeaturesBbox, LayerFilters, OutputCrs, base_url
from api.routes.ogc_html import HTML, HTML_RESPONSE, ItemsOrHtml, OgcFormat, Pages
from geo.core.crs import CRS84, EPSG, WGS84, Crs
from geo.core.errors import InvalidParameter, TooManyRequests
from geo.core.query import SUPPORTED_CRS
from geo.coverage import processes
from geo.db.database import database_url, with_statement_timeout
from geo.layers import exports, features, filtering, tilesets
from geo.layers.collections import COLLECTIONS, Collection
from geo.layers.features import ItemsQuery
from geo.reference.boroughs import borough_names

router = APIRouter(tags=["OGC API Features"])
GEOJSON = "application/geo+json"
#: ``responses=`` of the JSON documents that are pages too (``f=html`` or ``Accept: text/html``).
JSON_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON, or HTML for a browser", **HTML_RESPONSE}
}
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    *filtering.CONFORMANCE,
    *tilesets.CONFORMANCE,
    *processes.CONFORMANCE,
]
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_JSON = "application/schema+json"
FILTER_HELP = (
    "A CQL2 filter over the collection's queryables (see its /queryables), for example "
    "status = 'in_service' AND S_DWITHIN(geometry, POINT(-0.1246 51.5007), 500). "
    f"At most {filtering.MAX_BYTES} bytes and {filtering.MAX_DEPTH} levels deep."
)


class ExportsBusy(TooManyRequests):
    """Every download slot of the process is taken (429)."""


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    """An OGC link object."""
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


@router.get("/", summary="Landing page", response_model=dict[str, Any], responses=JSON_OR_HTML)
async def landing(request: Request, fmt: OgcFormat) -> dict[str, Any] | HTMLResponse:
    """Links to the API definition, the conformance classes, the collections and the web map."""
    base = base_url(request)
    doc = {
        "title": "connectivity",
        "description": "Candidate full-fibre assets of London's 33 authorities: OGC API Features and vector tiles.",
        "links": [
            link(f"{base}/", "self", "application/json", "This document"),
            link(f"{base}/?f=html", "alternate", HTML, "This document as HTML"),
            link(
                f"{base}/openapi.json",
                "service-desc",
                "application/vnd.oai.openapi+json;version=3.0",
                "API definition",
            ),
            link(f"{base}/docs", "service-doc", "text/html", "API documentation"),
            link(f"{base}/conformance", "conformance", "application/json", "Conformance classes"),
            link(f"{base}/collections", "data", "application/json", "Collections"),
            link(f"{base}/tileMatrixSets", tilesets.TILING_SCHEMES, "application/json", "Tile matrix sets"),
            link(f"{base}/processes", processes.REL + "processes", "application/json", "Processes"),
            link(f"{base}/jobs", processes.REL + "job-list", "application/json", "Jobs"),
            link(f"{base}/map", "alternate", "text/html", "Web map"),
        ],
    }
    return Pages(request, base).landing(doc) if fmt == "html" else doc


@router.get(
    "/conformance", summary="Conformance classes", response_model=dict[str, Any], responses=JSON_OR_HTML
)
async def conformance(request: Request, fmt: OgcFormat) -> dict[str, Any] | HTMLResponse:
    """The OGC conformance classes this service implements."""
    base = base_url(request)
    doc = {"conformsTo": CONFORMANCE, "links": _self_links(f"{base}/conformance")}
    return Pages(request, base).conformance(doc) if fmt == "html" else doc


def _self_links(href: str, type_: str = "application/json") -> list[dict[str, str]]:
    """``self`` and the ``alternate`` HTML page of a document."""
    return [
        link(href, "self", type_, "This document"),
        link(f"{href}?f=html", "alternate", HTML, "This document as HTML"),
    ]


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
            *_self_links(f"{base}/collections/{collection.id}"),
            link(items, "items", GEOJSON, "Features"),
            link(f"{items}?f=html", "items", HTML, "Features as HTML"),
            # Every feature as a file (GDAL's OAPIF driver takes the GeoJSON link above).
            *(
                link(
                    f"{items}?f={name}",
                    "items",
                    exports.FORMATS[name].media_type,
                    exports.FORMATS[name].title,
                )
                for name in exports.FILE_FORMATS
            ),
            link(f"{base}/collections/{collection.id}/queryables", QUERYABLES_REL, SCHEMA_JSON, "Queryables"),
            # The same, under the name GDAL's OAPIF driver looks for.
            link(f"{base}/collections/{collection.id}/queryables", "queryables", SCHEMA_JSON, "Queryables"),
            link(f"{base}/tiles/{collection.id}.json", "tiles", "application/json", "TileJSON"),
            link(
                f"{base}/collections/{collection.id}/tiles",
                tilesets.TILESETS_VECTOR,
                "application/json",
                "Vector tilesets (OGC API Tiles)",
            ),
        ],
    }


@router.get("/collections", summary="The layers", response_model=dict[str, Any], responses=JSON_OR_HTML)
async def collections(
    request: Request, conn: Conn, reader: Reader, fmt: OgcFormat
) -> dict[str, Any] | HTMLResponse:
    """Every collection with its extent and links."""
    base = base_url(request)
    doc = {
        "links": _self_links(f"{base}/collections"),
        "crs": list(SUPPORTED_CRS),
        "collections": [await describe(request, conn, c) for c in COLLECTIONS.values()],
    }
    return Pages(request, base).collections(doc) if fmt == "html" else doc


@router.get(
    "/collections/{collection_id}", summary="One layer", response_model=dict[str, Any], responses=JSON_OR_HTML
)
async def collection(
    coll: CollectionPath, request: Request, conn: Conn, reader: Reader, fmt: OgcFormat
) -> dict[str, Any] | HTMLResponse:
    """A collection's metadata."""
    doc = await describe(request, conn, coll)
    return Pages(request, base_url(request)).collection(doc) if fmt == "html" else doc


@router.get(
    "/collections/{collection_id}/queryables",
    summary="What a filter may name",
    response_class=Response,
    responses={
        200: {
            "content": {SCHEMA_JSON: {"schema": {"type": "object"}}, **HTML_RESPONSE["content"]},
            "description": "JSON Schema (or HTML for a browser)",
        }
    },
)
async def queryables(
    coll: CollectionPath, request: Request, conn: Conn, reader: Reader, fmt: OgcFormat
) -> Response:
    """The properties ``filter`` may name, with their types, as JSON Schema; for this key's role (nothing it cannot see)."""
    url = f"{base_url(request)}/collections/{coll.id}/queryables"
    public_extra = request.app.state.settings.assets.public_extra
    body = await features.get_queryables(conn, coll, reader, url, public_extra)
    if fmt == "html":
        return Pages(request, base_url(request)).queryables(coll, body, reader)
    # Plain JSON to a client that asks for it and not for JSON Schema (GDAL's OAPIF driver).
    accept = request.headers.get("accept", "")
    media_type = (
        "application/json" if "application/json" in accept and SCHEMA_JSON not in accept else SCHEMA_JSON
    )
    return Response(json.dumps(body), media_type=media_type, headers={"Vary": "Accept"})


def _crs_header(crs: Crs, files: bool = False) -> str:
    # Files store x (longitude) first whatever the CRS asked for: EPSG:4326 in a file is CRS84.
    return f"<{EPSG.format(crs.srid) if crs.srid != 4326 or (crs.lat_first and not files) else CRS84}>"


LIMIT_HELP = (
    f"Most features to return: GeoJSON pages hold {features.DEFAULT_LIMIT} by default and at most "
    f"{features.MAX_LIMIT}; the file formats (f=csv, gpkg, fgb, parquet) every matching feature "
    f"by default, at most {exports.MAX_FEATURES:,}"
)
#: The items' media types, for the OpenAPI document.
ITEMS_CONTENT = {
    **{
        fmt.media_type: {"schema": {"type": "object" if fmt is exports.GEOJSON else "string"}}
        for fmt in exports.FORMATS.values()
    },
    **HTML_RESPONSE["content"],
}


def _items_links(
    request: Request, coll: Collection, query: ItemsQuery, next_after: Any
) -> list[dict[str, str]]:
    """``self``, ``next`` and an ``alternate`` per file format (the same query; without limit, every feature)."""
    here = f"{base_url(request)}/collections/{coll.id}/items"
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
    current = params + [("after", features.cursor_text(query.after))] if query.after is not None else params
    links = [link(f"{here}?{urlencode(current)}", "self", GEOJSON)]
    if next_after is not None:
        links.append(
            link(
                f"{here}?{urlencode(params + [('after', features.cursor_text(next_after))])}",
                "next",
                GEOJSON,
                "Next page",
            )
        )
    plain = [(k, v) for k, v in current if k != "f"]
    for name in exports.FILE_FORMATS:
        fmt = exports.FORMATS[name]
        links.append(
            link(f"{here}?{urlencode(plain + [('f', name)])}", "alternate", fmt.media_type, fmt.title)
        )
    links.append(link(f"{here}?{urlencode(plain + [('f', 'html')])}", "alternate", HTML, "This page as HTML"))
    return links


def _export_url(request: Request) -> str:
    """The database URL of the exports' own connections, with the requests' statement timeout."""
    state = request.app.state
    if getattr(state, "export_url", None) is None:
        settings = state.settings
        state.export_url = with_statement_timeout(
            database_url(settings.db, start=False), settings.db.statement_timeout_ms
        )
        # A download holds a database connection of its own while it lasts: so many at once per process.
        state.export_slots = asyncio.Semaphore(max(1, settings.db.pool_max_size // 2))
    return state.export_url  # type: ignore[no-any-return]


async def _download(
    request: Request, lazy: LazyConn, coll: Collection, query: ItemsQuery, fmt: str, limit: int | None
) -> Response:
    url = _export_url(request)
    slots: asyncio.Semaphore = request.app.state.export_slots
    try:
        await asyncio.wait_for(slots.acquire(), request.app.state.settings.db.pool_timeout_s)
    except TimeoutError:
        raise ExportsBusy("every download slot is taken; try again shortly") from None
    try:
        download = await exports.export(await lazy.get(), url, coll, query, fmt, limit)
    except BaseException:
        slots.release()
        raise
    await lazy.release()  # the pooled connection is not needed while the file is sent

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in download.chunks:
                yield chunk
        finally:
            slots.release()

    headers = {
        "Content-Disposition": f'attachment; filename="{coll.id}.{download.format.extension}"',
        "Content-Crs": _crs_header(query.crs, files=True),
        "Vary": "Accept",
    }
    if download.size is not None:
        headers["Content-Length"] = str(download.size)
    return StreamingResponse(body(), media_type=download.format.media_type, headers=headers)


@router.get(
    "/collections/{collection_id}/items",
    summary="Features, filtered and paged",
    response_class=Response,
    responses={200: {"content": ITEMS_CONTENT, "description": "The features, in the format asked for"}},
)
async def items(
    coll: CollectionPath,
    request: Request,
    lazy: Lazy,
    reader: LazyReader,
    fmt: ItemsOrHtml,
    bbox: FeaturesBbox,
    crs: OutputCrs,
    filters: LayerFilters,
    limit: Annotated[int | None, Query(ge=1, le=exports.MAX_FEATURES, description=LIMIT_HELP)] = None,
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
    """Features in id order (an asset layer's with a bbox: in place order): GeoJSON pages (follow the
    ``next`` link), or a file (``f``) of every matching feature.

    Every format carries the same features and properties for the same query (filters, bbox,
    CRS, ``limit`` and ``after``); files are streamed as they are written.
    """
    if fmt in (exports.GEOJSON.name, "html") and limit is not None and limit > features.MAX_LIMIT:
        raise InvalidParameter(
            f"query.limit: a GeoJSON page holds at most {features.MAX_LIMIT} features ({LIMIT_HELP})"
        )
    dt_from, dt_to = features.parse_datetime(datetime)
    conn = await lazy.get()
    where = await filtering.compile_filter(
        conn, coll, reader, filter_, filter_lang, filter_crs, request.app.state.settings.assets.public_extra
    )
    query = ItemsQuery(
        limit=limit or features.DEFAULT_LIMIT,
        after=features.parse_after(coll, after, bbox),
        bbox=bbox,
        filters=filters,
        datetime_from=dt_from,
        datetime_to=dt_to,
        properties=features.parse_properties(coll, properties),
        # A page's map is drawn in CRS84 whatever ``crs`` says (its JSON alternate keeps it).
        crs=Crs(WGS84) if fmt == "html" else crs,
        where=where,
    )
    if fmt == "html":
        return await _items_page(request, conn, coll, query)
    if fmt != exports.GEOJSON.name:
        return await _download(request, lazy, coll, query, fmt, limit)
    page = await features.get_items(conn, coll, query)
    head = {
        "type": "FeatureCollection",
        "numberReturned": page.returned,
        "links": _items_links(request, coll, query, page.next_after),
    }
    if page.matched is not None:
        head["numberMatched"] = page.matched
    body = json.dumps(head)[:-1].encode() + b',"features":' + page.features + b"}"
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": _crs_header(crs), "Vary": "Accept"})


async def _items_page(request: Request, conn: Any, coll: Collection, query: ItemsQuery) -> HTMLResponse:
    """The items of ``query`` as a page: the same page of features as the GeoJSON, and the one before."""
    page = await features.get_items(conn, coll, query)
    links = _items_links(request, coll, query, page.next_after)
    has_previous, previous_after = await features.previous_after(conn, coll, query)
    previous = None
    if has_previous:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "after"]
        after = [] if previous_after is None else [("after", features.cursor_text(previous_after))]
        previous = f"{base_url(request)}/collections/{coll.id}/items?{urlencode(params + after)}"
    return Pages(request, base_url(request)).items(
        coll, json.loads(page.features), features.selected_properties(coll, query), links, page.matched,
        previous, await borough_names(conn),
    )  # fmt: skip


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}, **HTML_RESPONSE["content"]},
                     "description": "The feature as GeoJSON (or HTML for a browser)"}},
)  # fmt: skip
async def item(
    coll: CollectionPath,
    feature_id: str,
    request: Request,
    conn: Conn,
    reader: Reader,
    crs: OutputCrs,
    fmt: OgcFormat,
) -> Response:
    """One feature as GeoJSON, with its ``self``, ``alternate`` (HTML) and ``collection`` links."""
    if fmt == "html":
        feature = await features.get_feature(conn, coll, feature_id, WGS84, False)
        return Pages(request, base_url(request)).item(coll, json.loads(feature))
    body = await features.get_feature(conn, coll, feature_id, crs.srid, crs.lat_first)
    here = f"{base_url(request)}/collections/{coll.id}"
    links = [
        link(str(request.url), "self", GEOJSON, "This document"),
        link(f"{here}/items/{quote(feature_id)}?f=html", "alternate", HTML, "This document as HTML"),
        link(here, "collection", "application/json", coll.title),
    ]
    # The feature's GeoJSON is PostGIS's, kept as written: the links are added to its end.
    body = body[:-1] + b',"links":' + json.dumps(links).encode() + b"}"
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": _crs_header(crs), "Vary": "Accept"})
