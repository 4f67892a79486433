"""The GLA web map (``/map``): a page of the web app over the vector tiles, readable at every zoom.

The page (``maps/pages/templates/map.html``) shares the app's header, navigation and sign-in; its
script (``maps/static/connectivity-map.js`` and the modules in ``maps/static/map/``) draws:

- place context from the data the product ships, offline: the 33 borough outlines with their
  names (embedded in the page), the wards with theirs from zoom 12 (``/map/wards.geojson``), and
  a raster basemap underneath only when ``CONNECTIVITY_MAP_TILE_URL`` is set;
- the assets by zoom: a borough choropleth (assets per km², with a count label) to zoom 11, grid
  clusters of at most one labelled symbol per 128 px cell at zoom 12
  (``/tiles/{collection}/clusters/...``), and from the raw zoom (13) each asset from
  ``/tiles/{collection}/{z}/{x}/{y}.mvt``, styled by kind and subtype;
- wayleaves by status group and Pipeline projects (both public tiles), coverage reports of the
  signed-in key (gaps, covered share by borough, numbered priorities);
- search (``/places``), filters, a legend of the layers that are on, a details panel, and the
  view in the URL's hash.

No asset is ever embedded in the HTML: only the outlines, the counts the choropleth is shaded by
and the vocabularies travel with the page. Every script and stylesheet is served by the app.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from psycopg import AsyncConnection

from geo.core.settings import MapSettings
from geo.layers import mapdata
from geo.projects import STATUSES as PIPELINE_STATUSES
from geo.reference.boroughs import check_code
from geo.reference.model import load_model
from geo.wayleaves import STATUSES as WAYLEAVE_STATUSES
from maps import pages
from maps.static_files import check_static_files

#: First zoom at which the tiles carry raw features (the tile service's default,
#: ``CONNECTIVITY_TILES_RAW_MIN_ZOOM``); below it point layers are drawn as clusters.
RAW_ZOOM = 13
#: Up to this zoom the assets are a borough choropleth; between it and the raw zoom, grid clusters.
CHOROPLETH_MAX_ZOOM = 11
#: From this zoom the wards are drawn, with their names.
WARD_MIN_ZOOM = 12
LONDON_CENTRE = (51.4893, -0.0880)
TILE_URL = "/tiles/{collection}/{{z}}/{{x}}/{{y}}.mvt"
CLUSTER_URL = "/tiles/{collection}/clusters/{{z}}/{{x}}/{{y}}.json"
BOUNDARY_ATTRIBUTION = (
    "Boundaries, postcodes: © Crown copyright and database right 2012–14 (OS, ONS); © Royal Mail 2014; OGL"
)


@dataclass(frozen=True)
class LayerSpec:
    """One vector-tile layer of the map: where its tiles come from and how it is drawn.

    ``collection`` is both the tile collection id and the MVT layer name inside its tiles.
    ``kind`` names the asset kind whose live count labels the layer (None: no count).
    With ``color_by``, features take their colour from ``palette`` by that property
    (``subtype``, ``status``, ``placement``), falling back to ``color``. A clicked feature's details
    come from ``detail_url`` (``{id}``: the feature id); with ``detail_needs_key``, only for a
    signed-in user, with their key. ``clusters``: point layers, drawn as grid clusters below the
    raw zoom. ``min_zoom``: the first zoom it is drawn at.
    """

    collection: str
    label: str
    geometry: Literal["point", "line", "polygon"]
    color: str
    kind: str | None = None
    weight: float | None = None
    radius: float | None = None
    color_by: str | None = None
    palette: Mapping[str, str] = field(default_factory=dict)
    detail_url: str | None = "/assets/{id}"
    detail_needs_key: bool = False
    id_label: str = "Asset"
    show: bool = True
    clusters: bool = False
    min_zoom: int = 0

    def to_js(self, count: int | None) -> dict[str, Any]:
        """The spec as the page's script reads it, with the layer's feature count."""
        return {**dataclasses.asdict(self), "palette": dict(self.palette), "count": count}


#: Okabe-Ito's colour-blind-safe hues, one per kind of street furniture (the subtype is also named in the details).
FURNITURE = {
    "lamp_post": "#e69f00", "bus_stop": "#0072b2", "bus_shelter": "#56b4e9", "cctv_column": "#cc79a7",
    "traffic_signal": "#009e73", "street_cabinet": "#8c510a", "access_chamber": "#737373",
    "feeder_pillar": "#6a3d9a", "sign_post": "#999933", "other": "#3d3d3d",
}  # fmt: skip
BUILDINGS = {
    "library": "#0072b2", "school": "#0072b2", "town_hall": "#6a3d9a", "office": "#6a3d9a", "depot": "#6a3d9a",
    "community_centre": "#6a3d9a", "housing_block": "#d55e00", "leisure_centre": "#009e73",
    "health_centre": "#009e73", "fire_station": "#b2182b", "police_station": "#b2182b", "other": "#4d4d4d",
}  # fmt: skip
DUCTS = {"duct": "#c2410c", "sub_duct": "#ea580c", "trough": "#7c2d12", "other": "#9a3412"}
ASSET_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("public_buildings", "Public buildings", "polygon", "#6a3d9a", kind="public_building",
              color_by="subtype", palette=BUILDINGS, clusters=True),
    LayerSpec("ducts", "Ducts", "line", "#c2410c", kind="duct", weight=3, color_by="subtype", palette=DUCTS,
              min_zoom=CHOROPLETH_MAX_ZOOM + 1),
    LayerSpec("street_furniture", "Street furniture", "point", "#0072b2", kind="street_furniture", radius=4,
              color_by="subtype", palette=FURNITURE, clusters=True),
)  # fmt: skip
#: Wayleaves by status group: grey before the request, amber while it waits, green once agreed,
#: red when paused or ended, blue on the Electronic Communications Code route.
WAYLEAVE_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Not yet requested", "#6c757d", ("identified",)),
    ("Requested, being surveyed or negotiated", "#e8a202",
     ("requested", "survey_scheduled", "surveyed", "terms_issued", "in_negotiation")),
    ("Agreed, building or live", "#2b8a3e", ("approved", "signed", "installing", "live")),
    ("On hold or ended without rights", "#c92a2a", ("on_hold", "refused", "withdrawn", "expired")),
    ("On the statutory (Code) route", "#1c64d6", ("code_notice_served", "tribunal", "rights_imposed")),
)  # fmt: skip
WAYLEAVE_LAYER = LayerSpec(
    "wayleaves", "Wayleaves (by status)", "polygon", "#6c757d", radius=7, weight=3, detail_url="/wayleaves/{id}",
    detail_needs_key=True, id_label="Wayleave", color_by="status",
    palette={status: color for _, color, statuses in WAYLEAVE_GROUPS for status in statuses},
)  # fmt: skip
#: Pipeline projects: at their site when one is known, else at a point spread inside their borough.
PIPELINE_LAYER = LayerSpec(
    "pipeline_projects", "Pipeline projects", "point", "#b5006b", radius=6, detail_url="/pipeline/projects/{id}",
    id_label="Project", color_by="placement", palette={"exact": "#b5006b", "borough": "#e87bb7"},
)  # fmt: skip
MAP_LAYERS: tuple[LayerSpec, ...] = (*ASSET_LAYERS, WAYLEAVE_LAYER, PIPELINE_LAYER)


def london_bounds(boroughs: Mapping[str, Any]) -> list[float]:
    """``[south, west, north, east]`` around all the boroughs of a FeatureCollection."""
    boxes = [f["properties"]["bounds"] for f in boroughs["features"]]
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def vocabulary() -> dict[str, Any]:
    """The codes and labels the filters, legend and details name things by."""
    model = load_model()
    return {
        "subtypes": {kind: dict(codes) for kind, codes in model.subtypes.items()},
        "statuses": {code: s["label"] for code, s in model.statuses.items()},
        "wayleaveStatuses": {code: code.replace("_", " ").capitalize() for code in WAYLEAVE_STATUSES},
        "wayleaveGroups": [
            {"label": label, "color": color, "statuses": list(statuses)}
            for label, color, statuses in WAYLEAVE_GROUPS
        ],
        "pipelineStatuses": list(PIPELINE_STATUSES),
    }


def map_config(
    boroughs: Mapping[str, Any],
    counts: Mapping[str, int],
    matrix: Mapping[str, Any] | None,
    *,
    selected: str | None,
    settings: MapSettings,
    layers: Sequence[LayerSpec],
    prefix: str,
    raw_zoom: int,
    max_zoom: int,
) -> dict[str, Any]:
    """What the page's script is given, as one JSON document (see the module docstring)."""
    by_code = {f["properties"]["code"]: f for f in boroughs["features"]}
    return {
        "prefix": prefix,
        "specs": [spec.to_js(counts.get(spec.kind) if spec.kind else None) for spec in layers],
        "tileUrl": prefix + TILE_URL.format(collection="{collection}"),
        "clusterUrl": prefix + CLUSTER_URL.format(collection="{collection}"),
        "boroughs": dict(boroughs),
        "boroughCount": len(by_code),
        "counts": dict(matrix) if matrix is not None else None,
        "selected": selected,
        "frame": by_code[selected]["properties"]["bounds"] if selected else london_bounds(boroughs),
        "londonBounds": london_bounds(boroughs),
        "centre": list(LONDON_CENTRE),
        "rawZoom": raw_zoom,
        "choroplethMaxZoom": min(CHOROPLETH_MAX_ZOOM, raw_zoom - 1),
        "wardMinZoom": WARD_MIN_ZOOM,
        "maxZoom": min(max_zoom, 20),
        "maxNativeZoom": max_zoom,
        "plain": not settings.tile_url,
        "basemap": {"url": settings.tile_url, "attribution": settings.tile_attribution or ""}
        if settings.tile_url
        else None,
        "attribution": BOUNDARY_ATTRIBUTION,
        "vocabulary": vocabulary(),
    }


def render_map(
    boroughs: Mapping[str, Any],
    counts: Mapping[str, int],
    matrix: Mapping[str, Any] | None = None,
    *,
    selected: str | None = None,
    settings: MapSettings | None = None,
    layers: Sequence[LayerSpec] = MAP_LAYERS,
    prefix: str = "",
    raw_zoom: int = RAW_ZOOM,
    max_zoom: int = 22,
    names: Mapping[str, str] | None = None,
) -> str:
    """The map page as HTML.

    Parameters
    ----------
    boroughs
        The borough FeatureCollection of :func:`geo.layers.mapdata.borough_features`.
    counts
        Live assets per kind (:func:`geo.layers.mapdata.asset_counts`), shown in the layer names.
    matrix
        Live assets per borough, kind, subtype and status (:func:`geo.layers.mapdata.count_matrix`):
        what the borough choropleth is shaded by, whatever the filters.
    selected
        A GSS code already checked; the map opens framed to that borough, filtered to it.
    settings
        The background; without a tile URL the map is drawn on a plain light background.
    layers
        The vector-tile layers, drawn in order (the last on top).
    prefix
        Path the app is mounted under ("" at the root), put before every local URL.
    raw_zoom
        First zoom of raw features in the tiles.
    max_zoom
        Deepest zoom the tile service serves; the map enlarges its tiles beyond it.
    names
        GSS code -> borough name, in name order (the borough filter lists them so); from the outlines if not given.
    """
    settings = settings or MapSettings()
    config = map_config(
        boroughs, counts, matrix, selected=selected, settings=settings, layers=layers, prefix=prefix,
        raw_zoom=raw_zoom, max_zoom=max_zoom,
    )  # fmt: skip
    if names is None:
        pairs = [(f["properties"]["code"], f["properties"]["name"]) for f in boroughs["features"]]
        names = dict(sorted(pairs, key=lambda p: p[1]))
    return pages.render(
        "map.html", prefix=prefix, current="/map", title="Map", borough_names=dict(names),
        config=config, specs=config["specs"], vocabulary=config["vocabulary"], selected=selected,
    )  # fmt: skip


async def map_page(
    conn: AsyncConnection[Any],
    *,
    borough: str | None = None,
    settings: MapSettings | None = None,
    prefix: str = "",
    raw_zoom: int = RAW_ZOOM,
    max_zoom: int = 22,
    names: Mapping[str, str] | None = None,
) -> str:
    """The map page for a request: checks the borough code, reads outlines and counts, renders.

    Raises :class:`geo.reference.boroughs.UnknownBorough` for a code that is not a London authority and
    :class:`maps.static_files.MissingStaticFiles` when the vendored scripts were never fetched.
    """
    selected = check_code(borough) if borough else None
    check_static_files()
    boroughs, counts, matrix = await mapdata.map_data(conn)
    return render_map(
        boroughs, counts, matrix, selected=selected, settings=settings, prefix=prefix, raw_zoom=raw_zoom,
        max_zoom=max_zoom, names=names,
    )  # fmt: skip
