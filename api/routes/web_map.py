"""``GET /map`` (the GLA web map) and what it asks for besides tiles: place search, wards, an asset's
wayleaves; and the static files it loads under ``/static``."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from api.deps import AppSettings, Conn, Reader
from api.schemas import problems
from geo import assets
from geo.layers import mapdata
from geo.reference import places
from geo.reference.boroughs import borough_names
from maps.static_files import STATIC_DIR, STATIC_URL
from maps.web_map import map_page

router = APIRouter(tags=["web map"])
GEOJSON = "application/geo+json"


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
    """Boroughs, wards, every asset layer (from the vector tiles), search, filters, legend and details."""
    html = await map_page(
        conn,
        borough=borough,
        settings=settings.map,
        prefix=request.scope.get("root_path", ""),
        raw_zoom=settings.tiles.raw_min_zoom,
        max_zoom=settings.tiles.max_zoom,
        names=await borough_names(conn),
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


class Place(BaseModel):
    """One place found: what it is, where to put the map, and how to frame it."""

    kind: Literal["postcode", "postcode_district", "borough", "ward", "asset", "project"] = Field(
        description="What it is: a postcode (Code-Point Open 2014), a postcode district, a borough, "
        "a ward (2002-2014 boundaries), an asset or a Pipeline project."
    )
    id: str = Field(
        description="Its identifier: the postcode or district, a GSS code, an asset or project id."
    )
    label: str = Field(description="Its name as a person reads it (an asset without a name: its source id).")
    detail: str = Field(description="What it is, in words (kind, subtype, borough, source id).")
    lon: float = Field(description="Where to centre the map: longitude, WGS84.")
    lat: float = Field(description="Where to centre the map: latitude, WGS84.")
    bbox: list[float] | None = Field(
        description="The extent to frame (west, south, east, north, WGS84); null for a point."
    )
    borough_code: str | None = Field(description="The borough it is in (GSS code), when it is in one.")
    layer: str | None = Field(
        description="The map layer (tile collection) that draws it: assets and projects."
    )


class PlaceAnswer(BaseModel):
    """The places matching a search, best first."""

    query: str = Field(description="The query as searched (trimmed, spaces collapsed).")
    places: list[Place] = Field(description="Postcodes first when the query is one; then boroughs, wards, "
                                "projects and assets.")  # fmt: skip


@router.get(
    "/places",
    summary="Search places: postcodes, boroughs, wards, assets, Pipeline projects",
    response_model=PlaceAnswer,
    responses=problems(
        (400, "q is shorter than 2 or longer than 100 characters, or limit is out of 1..50."), 401
    ),
)
async def search_places(
    conn: Conn,
    reader: Reader,
    q: Annotated[
        str,
        Query(
            min_length=2,
            max_length=places.MAX_QUERY,
            description="A postcode (NW1 2DB, nw12db, or a district NW1), a borough or ward name, "
            "an asset's source id (or its start) or words of its name, a Pipeline project's title.",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=places.MAX_LIMIT, description="Most places returned.")] = 10,
) -> dict[str, Any]:
    """What the map's search box asks: public data only (no operator, owner or contact)."""
    found = await places.search(conn, q, limit)
    return {"query": places.clean_query(q), "places": [p.as_dict() for p in found]}


class NearestPlace(BaseModel):
    """Where a point is: its nearest postcode, and the ward and borough it is in."""

    postcode: str = Field(description="The nearest postcode centroid (Code-Point Open 2014).")
    distance_m: float = Field(description="How far that centroid is from the point, in metres.")
    lon: float = Field(description="The postcode centroid's longitude, WGS84.")
    lat: float = Field(description="The postcode centroid's latitude, WGS84.")
    borough_code: str | None = Field(description="The borough the point is in (GSS code).")
    ward_code: str | None = Field(
        description="The ward the point is in (GSS code; 2002-2014 wards); null outside every ward."
    )
    ward: str | None = Field(description="That ward's name.")


@router.get(
    "/places/nearest",
    summary="The postcode, ward and borough of a point",
    response_model=NearestPlace,
    responses=problems((400, "lon or lat is missing, not a number, or outside London."), 401),
)
async def nearest_place(
    reader: Reader,
    lon: Annotated[float, Query(ge=-0.6, le=0.4, description="Longitude, WGS84 (London: -0.6 to 0.4).")],
    lat: Annotated[float, Query(ge=51.25, le=51.75, description="Latitude, WGS84 (London: 51.25 to 51.75).")],
) -> dict[str, Any]:
    """What the map shows as "you are here" for its centre."""
    return places.nearest(lon, lat)


@router.get(
    "/map/wards.geojson",
    summary="London's wards for the map (GeoJSON, WGS84)",
    response_class=Response,
    responses={
        200: {
            "content": {GEOJSON: {}},
            "description": "625 wards: code, name, borough_code, borough, label.",
        },
        304: {"description": "Unchanged since the ETag of If-None-Match."},
        **problems(401),
    },
)
async def wards_geojson(request: Request, reader: Reader) -> Response:
    """The 2002-2014 wards (the City as one), simplified to 5 m, with a label point each; gzip when accepted."""
    body = places.wards().geojson_bytes()
    etag = f'W/"wards-{hashlib.sha256(body).hexdigest()[:16]}"'
    headers = {"Cache-Control": "public, max-age=86400", "ETag": etag, "Vary": "Accept-Encoding"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = _gzipped(body)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=GEOJSON, headers=headers)


_GZIPPED: dict[int, bytes] = {}


def _gzipped(body: bytes) -> bytes:
    key = id(body)
    if key not in _GZIPPED:
        _GZIPPED.clear()
        _GZIPPED[key] = gzip.compress(body, compresslevel=6)
    return _GZIPPED[key]


class AssetWayleave(BaseModel):
    """A wayleave on a site the asset belongs to, as the public map shows it (no operator, no contact)."""

    id: int = Field(description="The wayleave's id (GET /wayleaves/{id} with a key that may see it).")
    site_id: int = Field(description="The site's id.")
    site_name: str | None = Field(description="The site's name.")
    status: str = Field(description="Its status (data/wayleaves.md).")
    status_since: dt.datetime = Field(description="When it entered that status.")
    days_in_status: int = Field(description="Whole days since then.")


@router.get(
    "/map/assets/{asset_id}/wayleaves",
    summary="The wayleaves on an asset's sites (public summary)",
    response_model=list[AssetWayleave],
    responses=problems(400, 401, (404, "No asset has that id.")),
)
async def asset_wayleaves(asset_id: int, conn: Conn, reader: Reader) -> list[dict[str, Any]]:
    """Status and days in status of each wayleave on the sites the asset is part of, newest first."""
    await assets.get_asset(conn, asset_id)  # 404 for no such asset
    return await mapdata.asset_wayleaves(conn, asset_id)


def mount_static(app: FastAPI) -> None:
    """Serve ``maps/static`` (the map's own files and the vendored Leaflet) at ``/static``."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
