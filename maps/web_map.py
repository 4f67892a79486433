"""The GLA web map: a folium page over the borough outlines and the asset vector tiles.

The page is a list of layers (:data:`ASSET_LAYERS`, one :class:`LayerSpec` each), drawn from
``/tiles/{collection}/{z}/{x}/{y}.mvt`` with Leaflet.VectorGrid, so no asset is ever embedded
in the HTML. Only the 33 borough outlines (simplified) and the counts travel with the page.
Styles, popups, the legend and the borough selector live in ``maps/static/connectivity-map.js``;
every script and stylesheet is served by the app (:mod:`maps.static_files`).

A layer is a few lines: :data:`WAYLEAVE_LAYER` colours wayleaves by status from the
``wayleaves`` tiles; a later layer (Pipeline projects, coverage gaps) is one more
:class:`LayerSpec` over its tile collection, added to :data:`MAP_LAYERS`.

The tiles are public, so they carry no operator. A **Sign in** control takes an API key (kept
in the tab's ``sessionStorage`` only, checked against ``GET /me``); popups of layers whose
details need a key (``detail_needs_key``: wayleaves) then fetch them with it, and say what
signing in would show otherwise.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import folium
import folium.plugins
from branca.element import Element, Figure
from folium.elements import JSCSSMixin
from folium.template import Template
from psycopg import AsyncConnection

from geo.core.settings import MapSettings
from geo.layers import mapdata
from geo.reference.boroughs import check_code
from geo.reference.model import load_model
from maps.static_files import check_static_files, render_page

#: First zoom at which the tiles carry raw features (the tile service's default,
#: ``CONNECTIVITY_TILES_RAW_MIN_ZOOM``); below it
#: point layers carry clusters with ``count`` and ducts merged lines with ``length_m``.
RAW_ZOOM = 13
LONDON_CENTRE = (51.4893, -0.0880)
TILE_URL = "/tiles/{collection}/{{z}}/{{x}}/{{y}}.mvt"


@dataclass(frozen=True)
class LayerSpec:
    """One vector-tile layer of the map: where its tiles come from and how it is drawn.

    ``collection`` is both the tile collection id and the MVT layer name inside its tiles.
    ``kind`` names the asset kind whose live count labels the layer (None: no count).
    With ``color_by``, features take their colour from ``palette`` by that property
    (for instance ``status``), falling back to ``color``. A clicked feature's popup shows its
    tile properties, then adds owner and survey from ``detail_url`` (``{id}``: the feature id).
    With ``detail_needs_key``, the details are fetched only for a signed-in user, with their
    key (the popup says to sign in otherwise). ``id_label`` names the feature in the popup.
    """

    collection: str
    label: str
    geometry: Literal["point", "line", "polygon"]
    color: str
    kind: str | None = None
    fill: str | None = None
    weight: float | None = None
    radius: float | None = None
    color_by: str | None = None
    palette: Mapping[str, str] = field(default_factory=dict)
    detail_url: str | None = "/assets/{id}"
    detail_needs_key: bool = False
    id_label: str = "Asset"
    show: bool = True

    def to_js(self, count: int | None) -> dict[str, Any]:
        """The spec as the page's script reads it, with the layer's feature count."""
        return {**dataclasses.asdict(self), "palette": dict(self.palette), "count": count}


ASSET_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("public_buildings", "Public buildings", "polygon", "#7b2cbf", kind="public_building"),
    LayerSpec("ducts", "Ducts", "line", "#e76f51", kind="duct", weight=3),
    LayerSpec("street_furniture", "Street furniture", "point", "#0077b6", kind="street_furniture", radius=4),
)
#: Wayleaves by status: grey before the request, amber while it waits, green once building may
#: start, red when it ended without rights, blue on the Electronic Communications Code route.
WAYLEAVE_LAYER = LayerSpec(
    "wayleaves", "Wayleaves (by status)", "polygon", "#6c757d", radius=7, weight=3, detail_url="/wayleaves/{id}",
    detail_needs_key=True, id_label="Wayleave", color_by="status",
    palette={
        "identified": "#adb5bd", "requested": "#ffd166", "survey_scheduled": "#ffd166", "surveyed": "#f4a261",
        "terms_issued": "#f4a261", "in_negotiation": "#f4a261", "approved": "#90be6d", "signed": "#43aa8b",
        "installing": "#2a9d8f", "live": "#1b7f5b", "on_hold": "#9d4edd", "refused": "#e63946",
        "withdrawn": "#c1121f", "expired": "#6c757d", "code_notice_served": "#4895ef", "tribunal": "#3a0ca3",
        "rights_imposed": "#4361ee",
    },
)  # fmt: skip
#: Pipeline projects: at their site when one is known, else at a point spread inside their borough.
PIPELINE_LAYER = LayerSpec(
    "pipeline_projects", "Pipeline projects", "point", "#d00070", radius=6, detail_url=None, id_label="Project",
    color_by="placement", palette={"exact": "#d00070", "borough": "#f08cc0"},
)  # fmt: skip
MAP_LAYERS: tuple[LayerSpec, ...] = (*ASSET_LAYERS, WAYLEAVE_LAYER, PIPELINE_LAYER)


class MapSetup(JSCSSMixin):
    """Loads the page's own script and stylesheet and wires legend, selector and popups.

    Added last, so every layer variable it refers to is already defined when it runs.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        ConnectivityMap.init(
            {{ this._parent.get_name() }},
            {{ this.context_json }},
            { {%- for collection, layer in this.layers %}
                {{ collection|tojson }}: {{ layer.get_name() }},
            {%- endfor %} },
            {{ this.boroughs.get_name() }}
        );
        {% endmacro %}
        """
    )
    default_js = [("connectivity_map", "connectivity-map.js")]
    default_css = [("connectivity_map_css", "connectivity-map.css")]

    def __init__(
        self, context: dict[str, Any], layers: Sequence[tuple[str, Element]], boroughs: Element
    ) -> None:
        super().__init__()
        self._name = "MapSetup"
        self.context_json = _json(context)
        self.layers = layers
        self.boroughs = boroughs


def london_bounds(boroughs: Mapping[str, Any]) -> list[float]:
    """``[south, west, north, east]`` around all the boroughs of a FeatureCollection."""
    boxes = [f["properties"]["bounds"] for f in boroughs["features"]]
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def render_map(
    boroughs: Mapping[str, Any],
    counts: Mapping[str, int],
    *,
    selected: str | None = None,
    settings: MapSettings | None = None,
    layers: Sequence[LayerSpec] = MAP_LAYERS,
    prefix: str = "",
    raw_zoom: int = RAW_ZOOM,
    max_zoom: int = 22,
) -> str:
    """The map page as HTML.

    Parameters
    ----------
    boroughs
        The borough FeatureCollection of :func:`geo.layers.mapdata.borough_features`.
    counts
        Live assets per kind (:func:`geo.layers.mapdata.asset_counts`), shown in the legend and layer names.
    selected
        A GSS code already checked; the map opens framed to that borough.
    settings
        The background; without a tile URL the map is drawn on a plain light background.
    layers
        The vector-tile layers, drawn in order (the last on top).
    prefix
        Path the app is mounted under ("" at the root), put before every local URL.
    raw_zoom
        First zoom of raw features in the tiles (for the legend's note).
    max_zoom
        Deepest zoom the tile service serves; the map enlarges its tiles beyond it.
    """
    settings = settings or MapSettings()
    by_code = {f["properties"]["code"]: f for f in boroughs["features"]}
    frame = by_code[selected]["properties"]["bounds"] if selected else london_bounds(boroughs)

    figure = Figure(title="London connectivity map")
    fmap = folium.Map(
        location=LONDON_CENTRE, zoom_start=10, min_zoom=8, max_zoom=20, tiles=None, control_scale=False
    )
    fmap.add_to(figure)
    figure.header.add_child(Element('<meta name="robots" content="noindex">'), name="robots")
    figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")  # no /favicon.ico 404
    if settings.tile_url:
        folium.TileLayer(
            tiles=settings.tile_url, attr=settings.tile_attribution or " ", name="Background", control=False
        ).add_to(fmap)

    borough_layer = folium.GeoJson(
        dict(boroughs),
        name=f"London boroughs ({len(by_code)})",
        popup=folium.GeoJsonPopup(
            fields=["name", "code", "assets"], aliases=["Borough", "GSS code", "Assets"]
        ),
        tooltip=folium.GeoJsonTooltip(fields=["name"], labels=False),
        zoom_on_click=False,
    ).add_to(fmap)

    # Asset tiles go in a pane above the borough polygons (overlay pane, z 400), or the
    # boroughs' fill would take every click meant for an asset.
    folium.map.CustomPane("assets", z_index=450, pointer_events=False).add_to(fmap)
    tile_layers = []
    specs = []
    for spec in layers:
        count = counts.get(spec.kind) if spec.kind else None
        name = spec.label if count is None else f"{spec.label} ({count:,})"
        options = (
            f"{{interactive: true, pane: 'assets', maxNativeZoom: {max_zoom:d}, "
            f"vectorTileLayerStyles: {{{_js_string(spec.collection)}: "
            f"ConnectivityMap.vectorStyle({_json(spec.to_js(count))})}}}}"
        )
        url = prefix + TILE_URL.format(collection=spec.collection)
        layer = folium.plugins.VectorGridProtobuf(url, name=name, options=options, show=spec.show)
        layer.add_to(fmap)
        tile_layers.append((spec.collection, layer))
        specs.append(spec.to_js(count))

    folium.LayerControl(position="topright", collapsed=False).add_to(fmap)
    fmap.fit_bounds([[frame[0], frame[1]], [frame[2], frame[3]]])

    model = load_model()
    context = {
        "specs": specs,
        "boroughs": [
            {"code": code, "name": f["properties"]["name"], "bounds": f["properties"]["bounds"]}
            for code, f in by_code.items()
        ],
        "boroughCount": len(by_code),
        "selected": selected,
        "londonBounds": london_bounds(boroughs),
        "rawZoom": raw_zoom,
        "prefix": prefix,
        "plain": not settings.tile_url,
        "vocabulary": {
            "subtypes": {kind: dict(codes) for kind, codes in model.subtypes.items()},
            "statuses": {code: s["label"] for code, s in model.statuses.items()},
        },
    }
    MapSetup(context, tile_layers, borough_layer).add_to(fmap)
    return render_page(figure, prefix)


async def map_page(
    conn: AsyncConnection[Any],
    *,
    borough: str | None = None,
    settings: MapSettings | None = None,
    prefix: str = "",
    raw_zoom: int = RAW_ZOOM,
    max_zoom: int = 22,
) -> str:
    """The map page for a request: checks the borough code, reads outlines and counts, renders.

    Raises :class:`geo.reference.boroughs.UnknownBorough` for a code that is not a London authority and
    :class:`maps.static_files.MissingStaticFiles` when the vendored scripts were never fetched.
    """
    selected = check_code(borough) if borough else None
    check_static_files()
    boroughs = await mapdata.borough_features(conn)
    counts = await mapdata.asset_counts(conn)
    return render_map(
        boroughs,
        counts,
        selected=selected,
        settings=settings,
        prefix=prefix,
        raw_zoom=raw_zoom,
        max_zoom=max_zoom,
    )


def _json(value: Any) -> str:
    # "</" would end the <script> element the options are written into.
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def _js_string(value: str) -> str:
    return _json(value)
