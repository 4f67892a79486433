"""Query and header parameters shared by the routes, parsed once: routes receive values, never strings.

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations, which
name their endpoint's allowed CRSs, at definition time.)

Every parameter here is parsed by the one parser of its concept in ``geo.core``, so the same
mistake gets the same answer on every endpoint: a bad query parameter or header is a 400.
"""

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Path, Query, Request
from fastapi.responses import HTMLResponse

from geo.core import crs as crs_names
from geo.core.crs import BNG, WEB_MERCATOR, WGS84, Crs
from geo.core.errors import InvalidParameter
from geo.core.query import Bbox, read_bbox
from geo.layers import exports, features
from geo.layers.collections import COLLECTIONS, Collection, get_collection

BBOX_HELP = "minx,miny,maxx,maxy in bbox-crs (longitude/latitude, CRS84, by default)"
CRS_HELP = (
    "A CRS URI (http://www.opengis.net/def/crs/EPSG/0/27700), EPSG:27700, 27700, CRS84; "
    "the EPSG:4326 URI means latitude first"
)


def _bbox(allowed: tuple[int, ...]):  # type: ignore[no-untyped-def]
    names = " or ".join(crs_names.LABELS[s] for s in allowed)

    def bbox(
        bbox: Annotated[str | None, Query(description=BBOX_HELP)] = None,
        bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description=f"{names}. {CRS_HELP}")] = None,
    ) -> Bbox | None:
        return read_bbox(bbox, bbox_crs, allowed)

    return bbox


def output_crs(
    crs: Annotated[str | None, Query(description=f"Output CRS (CRS84 by default). {CRS_HELP}")] = None,
) -> Crs:
    """The ``crs`` of a features response."""
    return crs_names.parse_crs(crs, "crs", (WGS84, BNG, WEB_MERCATOR)) or Crs(WGS84)


#: ``bbox`` + ``bbox-crs`` of the features API: CRS84, EPSG:4326 (by URI, latitude first), 27700, 3857.
FeaturesBbox = Annotated[Bbox | None, Depends(_bbox((WGS84, BNG, WEB_MERCATOR)))]
#: ``bbox`` + ``bbox-crs`` of the service's own lists (wayleaves, Pipeline projects): WGS84 or 27700.
ListBbox = Annotated[Bbox | None, Depends(_bbox((WGS84, BNG)))]
OutputCrs = Annotated[Crs, Depends(output_crs)]


def collection(
    collection_id: Annotated[str, Path(description="A collection id (see /collections)")],
) -> Collection:
    """The collection a path names (404 for an unknown one)."""
    return get_collection(collection_id)


CollectionPath = Annotated[Collection, Depends(collection)]


def layer_filters(
    request: Request,
    borough: Annotated[str | None, Query(description="GSS codes, comma-separated")] = None,
    subtype: Annotated[str | None, Query(description="Subtypes, comma-separated")] = None,
    status: Annotated[str | None, Query(description="Operational statuses, comma-separated")] = None,
) -> dict[str, list[str]]:
    """The property filters of a layer's items or tiles: the common three, and the collection's own.

    A collection's own filters (a Pipeline project's ``phase``…) are read from the query by name,
    as :func:`geo.layers.features.filter_values` lists them; every value is checked (400 if bad).
    """
    coll = get_collection(str(request.path_params["collection_id"]))
    return features.parse_filters(coll, features.filter_values(coll, dict(request.query_params)))


#: ``borough``, ``subtype``, ``status`` (and the collection's own filters), parsed.
LayerFilters = Annotated[dict[str, list[str]], Depends(layer_filters)]


@dataclass(frozen=True)
class CqlQuery:
    """A request's CQL2 ``filter``, ``filter-lang`` and ``filter-crs``, as given (compiled per collection and caller)."""

    text: str | None = None
    lang: str | None = None
    crs: str | None = None


def cql_query(
    filter_: Annotated[
        str | None,
        Query(
            alias="filter",
            description=(
                "A CQL2 filter over the collection's queryables (its /queryables), as on its items, for "
                "example subtype = 'lamp_post' AND status = 'in_service'."
            ),
        ),
    ] = None,
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
) -> CqlQuery:
    """The CQL2 filter of a tile request (the items route declares the same three parameters)."""
    return CqlQuery(filter_, filter_lang, filter_crs)


#: ``filter``, ``filter-lang``, ``filter-crs`` of the tiles, as given.
CqlFilter = Annotated[CqlQuery, Depends(cql_query)]


_VERSION = re.compile(r'(?:W/)?"?([0-9]{1,9})"?', re.ASCII)


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``); None without one.

    Anything else (``abc``, ``-1``, ``²``, a list of tags) is a 400: a condition that cannot be
    read must not be ignored.
    """
    if value is None:
        return None
    match = _VERSION.fullmatch(value.strip())
    if match is None:
        raise InvalidParameter(
            f'If-Match: {value[:40]!r} is not a version this service gave (an ETag such as "3")'
        )
    return int(match.group(1))


def if_match(
    if_match: Annotated[
        str | None, Header(description='The version you read (its ETag, "3"); a newer one answers 409.')
    ] = None,
) -> int | None:
    """The ``If-Match`` header's version (:func:`parse_if_match`)."""
    return parse_if_match(if_match)


IfMatch = Annotated[int | None, Depends(if_match)]


MEDIA_TYPES = {"json": "application/json", "geojson": "application/geo+json", "csv": "text/csv"}


def output_format(allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A dependency giving the format asked for: ``format`` if given, else ``Accept``, else the first of ``allowed``."""

    def choose(
        request: Request,
        format: Annotated[
            str | None, Query(description=f"{', '.join(allowed)} ({allowed[0]} by default; or send Accept)")
        ] = None,
    ) -> str:
        if format is not None:
            if format not in allowed:
                raise InvalidParameter(
                    f"format: {format!r} is not {', '.join(allowed[:-1])} or {allowed[-1]}"
                )
            return format
        accept = request.headers.get("accept", "")
        return next((name for name in allowed[1:] if MEDIA_TYPES[name] in accept), allowed[0])

    return choose


#: ``format`` (or ``Accept: text/csv``) of the service's lists: json by default, or csv.
JsonOrCsv = Annotated[str, Depends(output_format(("json", "csv")))]
#: ``format`` (or ``Accept``) of the Pipeline project list: json, geojson or csv.
JsonGeojsonOrCsv = Annotated[str, Depends(output_format(("json", "geojson", "csv")))]


#: id(route) -> (route, the query parameters it declares); routes live as long as the app.
_DECLARED: dict[int, tuple[Any, frozenset[str]]] = {}


def _declared_query(route: Any) -> frozenset[str]:
    if id(route) not in _DECLARED:
        names: set[str] = set()
        todo = [route.dependant]
        while todo:
            dependant = todo.pop()
            names.update(p.alias for p in dependant.query_params)
            todo.extend(dependant.dependencies)
        _DECLARED[id(route)] = (route, frozenset(names))
    return _DECLARED[id(route)][1]


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the endpoint does not take is a 400, never silently ignored.

    (OGC API Features, /req/core/query-param-unknown: ``?f=csv`` or ``?filter=…`` ignored would
    give a script an unfiltered answer it cannot tell from the one it asked for.) The parameters
    are those the route declares, and on a collection's paths that collection's own filters. Web
    pages (HTML) are left alone: their query is the page's state, read by its script.
    """
    route = request.scope.get("route")
    if route is None or getattr(route, "response_class", None) is HTMLResponse or not request.query_params:
        return
    known = set(_declared_query(route))
    collection = COLLECTIONS.get(str(request.path_params.get("collection_id", "")))
    if collection is not None:
        known |= set(collection.filters) | {"borough", "subtype", "status"}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise InvalidParameter(f"{unknown[0]}: not a parameter of this endpoint (it takes {takes})")


def _accepted(accept: str, media_types: dict[str, str]) -> str | None:
    """The format ``Accept`` prefers among ``media_types`` (media type -> format; None when it names none).

    By quality (``q``), then by order; ``*/*`` and unknown types name none (the default follows).
    """
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media_type, *options = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        chosen = media_types.get(media_type.lower())
        if chosen is not None and quality > 0 and (best is None or (-quality, position) < best[:2]):
            best = (-quality, position, chosen)
    return best[2] if best else None


#: The ``f`` parameter of a collection's items.
FORMAT_HELP = (
    f"Output format: {', '.join(exports.FORMATS)} ({exports.GEOJSON.name}, GeoJSON, by default; "
    "or send Accept with a media type). The file formats hold every matching feature "
    f"unless limit says fewer (at most {exports.MAX_FEATURES:,})."
)


def items_format(
    request: Request,
    f: Annotated[
        str | None,
        Query(description=FORMAT_HELP),
    ] = None,
) -> str:
    """The format of a collection's items: ``f`` if given (400 for an unknown one), else ``Accept``, else GeoJSON."""
    if f is not None:
        name = exports.ALIASES.get(f.lower(), f.lower())
        if name not in exports.FORMATS:
            raise InvalidParameter(
                f"f: {f[:40]!r} is not a format of this endpoint; it answers {', '.join(exports.FORMATS)}"
            )
        return name
    media_types = {fmt.media_type: name for name, fmt in exports.FORMATS.items()}
    media_types.setdefault("application/json", exports.GEOJSON.name)
    return _accepted(request.headers.get("accept", ""), media_types) or exports.GEOJSON.name


#: ``f`` (or ``Accept``) of a collection's items: json (GeoJSON), csv, gpkg, fgb or parquet.
ItemsFormat = Annotated[str, Depends(items_format)]


def json_only(
    f: Annotated[
        str | None, Query(description="Output format: json (GeoJSON for features), the only one for now")
    ] = None,
) -> None:
    """OGC API's ``f``: ``json`` (or ``geojson``) is the one format these endpoints write, so any other is a 400."""
    if f is not None and f.lower() not in ("json", "geojson"):
        raise InvalidParameter(
            f"f: {f!r} is not a format of this endpoint; it answers json (GeoJSON for features)"
        )


def base_url(request: Request) -> str:
    """The service's base URL (setting, else the request's)."""
    configured = request.app.state.settings.api.public_url
    return (configured or str(request.base_url)).rstrip("/")
