"""The registry of map layers: one entry serves the features API and the vector tiles.

A new layer is one :class:`Collection` in :data:`COLLECTIONS`: where its rows are, which
columns it shows, which filters it takes and how its tiles look below the raw zoom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from geo.core.errors import NotFound
from geo.reference.model import load_model

#: Query parameter -> column, for the filters every asset layer takes.
ASSET_FILTERS = {"borough": "borough_code", "subtype": "subtype", "status": "status"}
ASSET_PROPERTIES = (
    "kind", "subtype", "source_id", "name", "owner", "status", "borough_code", "height_m",
    "power_available", "power_source", "duct_diameter_mm", "duct_spare_capacity_pct", "rooftop_access",
    "listed_building", "conservation_area", "positional_accuracy_m", "survey_quality", "last_surveyed",
    "provenance", "version", "valid_from",
)  # fmt: skip


@dataclass(frozen=True)
class Collection:
    """One layer of the features API and the tiles."""

    id: str
    title: str
    description: str
    table: str
    #: Constant SQL condition selecting the layer's rows in ``table``.
    where: str
    #: Column with the feature id; keyset paging orders by it.
    id_column: str
    id_type: Literal["int", "text"]
    geometry_type: str
    properties: tuple[str, ...]
    #: Properties vector tiles carry at raw zooms (kept small: tiles are for drawing and clicking).
    tile_properties: tuple[str, ...]
    filters: dict[str, str] = field(default_factory=dict)
    #: Filter parameter -> the values it may take (checked before any query runs).
    vocabularies: dict[str, Callable[[], set[str]]] = field(default_factory=dict)
    #: Column the standard ``datetime`` parameter filters on (None: not supported).
    datetime_column: str | None = None
    #: Source of the data version in ``data_versions``.
    version_layer: str = "assets"
    #: Below the raw zoom: ``points`` (clusters with counts), ``lines`` (merged, simplified), ``raw``.
    low_zoom: Literal["points", "lines", "raw"] = "raw"
    #: The asset kind in summaries (asset layers only).
    kind: str | None = None
    #: Properties change with the clock as well as with the data (days in a status): such tiles
    #: get no ETag and are not cached, as the data version alone cannot tell when they change.
    time_dependent: bool = False


def _wayleave_statuses() -> set[str]:
    from geo.wayleaves import STATUSES

    return set(STATUSES)


def _pipeline_statuses() -> set[str]:
    from geo.projects import STATUSES

    return set(STATUSES)


def _pipeline_phases() -> set[str]:
    from geo.projects import PHASES

    return set(PHASES)


def _pipeline_placements() -> set[str]:
    return {"exact", "borough"}


def _asset_layer(
    collection_id: str, kind: str, title: str, description: str, geometry: str, low: str
) -> Collection:
    # Tiles carry what the map draws and filters by; a click fetches the rest from /assets/{id}.
    # Every extra text attribute multiplies the size of a dense tile.
    tile_props: tuple[str, ...] = ("subtype", "status")
    return Collection(
        id=collection_id,
        title=title,
        description=description,
        table="assets",
        where=f"kind = '{kind}' AND retired_at IS NULL",
        id_column="id",
        id_type="int",
        geometry_type=geometry,
        properties=ASSET_PROPERTIES,
        tile_properties=tile_props,
        filters=ASSET_FILTERS,
        vocabularies={
            "subtype": lambda: load_model().vocabulary("subtypes", kind),
            "status": lambda: load_model().vocabulary("statuses"),
        },
        datetime_column="valid_from",
        low_zoom=low,  # type: ignore[arg-type]
        kind=kind,
    )


COLLECTIONS: dict[str, Collection] = {
    c.id: c
    for c in (
        Collection(
            id="boroughs",
            title="London authorities",
            description="The 33 London authorities (32 boroughs and the City of London) with their GSS codes.",
            table="boroughs",
            where="true",
            id_column="code",
            id_type="text",
            geometry_type="MultiPolygon",
            properties=("code", "name", "inner_london"),
            tile_properties=("code", "name"),
            version_layer="boroughs",
        ),
        _asset_layer(
            "public_buildings",
            "public_building",
            "Public buildings",
            "Council buildings that could host equipment or a fibre entry point.",
            "Geometry",
            "points",
        ),
        _asset_layer(
            "street_furniture",
            "street_furniture",
            "Street furniture",
            "Lamp posts, bus stops and shelters, CCTV columns, traffic signals, cabinets...",
            "Geometry",
            "points",
        ),
        _asset_layer("ducts", "duct", "Ducts", "Duct routes that could carry fibre.", "LineString", "lines"),
        # No operator and no personal data: every caller sees where wayleaves stand, operators see
        # whose they are only for their own, through /wayleaves.
        Collection(
            id="wayleaves",
            title="Wayleaves",
            description="Wayleave status on each site (no operator, no personal data).",
            table="wayleave_features",
            where="true",
            id_column="id",
            id_type="int",
            geometry_type="Geometry",
            properties=(
                "site_id",
                "site_name",
                "borough_code",
                "status",
                "template",
                "template_version",
                "status_since",
                "days_in_status",
            ),  # fmt: skip
            tile_properties=("status", "borough_code", "days_in_status", "site_name"),
            filters={"borough": "borough_code", "status": "status"},
            vocabularies={"status": _wayleave_statuses},
            datetime_column="status_since",
            version_layer="wayleaves",
            low_zoom="raw",
            time_dependent=True,
        ),
        Collection(
            id="pipeline_projects",
            title="Pipeline projects",
            description=(
                "Councils' digital projects from LocalGov Digital's Pipeline: at their site when known, "
                "else at a point inside their borough (placement 'borough'). London-wide and unplaced "
                "projects are not drawn (see /pipeline/projects). No personal data."
            ),
            table="pipeline_features",
            where="true",
            id_column="id",
            id_type="int",
            geometry_type="Geometry",
            properties=(
                "pipeline_id",
                "title",
                "status",
                "phase",
                "tags",
                "organisation",
                "department",
                "borough_code",
                "london_wide",
                "placement",
                "project_start",
                "project_end",
                "estimated_time",
                "funding_band",
                "collaboration_level",
                "last_updated",
                "version",
                "valid_from",
            ),  # fmt: skip
            tile_properties=(
                "title",
                "status",
                "phase",
                "tags_text",
                "organisation",
                "borough_code",
                "placement",
            ),
            # Tags are an array: filter them at /pipeline/projects?tag=, not here (filters are column = ANY).
            filters={
                "borough": "borough_code",
                "status": "status",
                "phase": "phase",
                "placement": "placement",
            },
            vocabularies={
                "status": _pipeline_statuses,
                "phase": _pipeline_phases,
                "placement": _pipeline_placements,
            },
            datetime_column="last_updated",
            version_layer="pipeline",
            low_zoom="raw",
        ),
    )
}


class UnknownCollection(NotFound):
    """No layer has that id (404)."""


def get_collection(collection_id: str) -> Collection:
    """The collection with that id, or :class:`UnknownCollection`."""
    try:
        return COLLECTIONS[collection_id]
    except KeyError:
        raise UnknownCollection(
            f"no collection {collection_id!r}; collections: {', '.join(COLLECTIONS)}"
        ) from None
