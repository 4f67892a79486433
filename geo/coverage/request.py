"""The coverage request: the body of ``POST /coverage/reports`` as a pydantic model, and its report.

:class:`CoverageRequest` is the body (every field typed, ranged and described, so ``/openapi.json``
documents it, and the API and the CLI validate with the same model; the area is read by
:func:`geo.coverage.area.parse_area`); :func:`build_request` adds the defaults and limits of the
settings and gives the :class:`ReportRequest` the reports compute from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

import geopandas as gpd
import numpy as np
import shapely
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from geo.core.settings import CoverageSettings
from geo.coverage.area import (
    BboxArea,
    BoroughsArea,
    FeatureArea,
    GeometryArea,
    PolygonArea,
    crs_of,
    guess_crs,
    parse_area,
)
from geo.coverage.demand import points_demand
from geo.coverage.errors import InvalidArea, InvalidCoverageRequest
from geo.coverage.optimality import EXACT_MAX_CANDIDATES, EXACT_MAX_K
from geo.reference.boroughs import GSS_CODES
from geo.reference.model import KINDS, load_model
from geo.wayleaves.statuses import STATUSES as WAYLEAVE_STATUSES

#: The pydantic error type of the checks below: their messages name the field and the value.
CHECK = "coverage_request"


# The report asked for ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportRequest:
    """A validated coverage request. :meth:`parameters` is its normalised JSON form."""

    area: dict[str, Any]
    geometry: shapely.Geometry = field(compare=False, repr=False)
    thresholds: tuple[float, ...]
    demand: str
    cell_size: float
    gap_threshold: float
    kinds: tuple[str, ...]
    subtypes: tuple[str, ...] | None
    statuses: tuple[str, ...]
    asset_boroughs: tuple[str, ...] | None
    ready_now: bool
    k: int
    radius: float
    premises: gpd.GeoDataFrame | None = field(default=None, compare=False, repr=False)
    premises_digest: str | None = None
    #: How the candidates are chosen: greedy, or exact (MILP) for small instances.
    priorities_method: str = "greedy"
    #: With a budget: the most the chosen candidates may cost, and the cost tables used.
    budget: float | None = None
    cost_by_kind: tuple[tuple[str, float], ...] | None = None
    cost_by_wayleave_status: tuple[tuple[str, float], ...] | None = None
    #: Seconds HiGHS may spend on the LP bound (and the MILP): the settings', not part of the answer.
    time_limit: float = field(default=5.0, compare=False)

    @property
    def reach(self) -> float:
        """The largest distance any result needs: nearest distances are exact up to it."""
        return max(*self.thresholds, self.gap_threshold, self.radius)

    def parameters(self) -> dict[str, Any]:
        """The request as normalised JSON: equal requests give equal dictionaries."""
        out: dict[str, Any] = {
            "area": self.area,
            "demand": self.demand,
            "cell_size": self.cell_size,
            "thresholds": list(self.thresholds),
            "gap_threshold": self.gap_threshold,
            "kinds": list(self.kinds),
            "subtypes": None if self.subtypes is None else list(self.subtypes),
            "statuses": list(self.statuses),
            "asset_boroughs": None if self.asset_boroughs is None else list(self.asset_boroughs),
            "ready_now": self.ready_now,
            "k": self.k,
            "radius": self.radius,
        }
        if self.premises is not None:
            out["premises"] = {"count": len(self.premises), "sha256": self.premises_digest}
        # Only when asked for: the parameters of earlier reports stay as they were.
        if self.priorities_method != "greedy":
            out["priorities_method"] = self.priorities_method
        if self.budget is not None:
            out["budget"] = self.budget
            out["costs"] = {
                "by_kind": dict(self.cost_by_kind or ()),
                "by_wayleave_status": dict(self.cost_by_wayleave_status or ()),
            }
        return out

    def estimated_size(self, area_m2: float | None = None) -> int:
        """Demand points plus grid cells, roughly: decides between computing now and in the background.

        ``area_m2``: the area's size when the geometry is not resolved yet (an area of boroughs).
        """
        area = self.geometry.area if area_m2 is None else area_m2
        cells = int(area / self.cell_size**2)
        if self.demand == "premises" and self.premises is not None:
            return cells + len(self.premises)
        if self.demand == "postcodes":
            return cells + int(area / 1e6 * 115)  # London: ~115 postcodes per km²
        return cells


def _premises(value: Any, crs: Any, limit: int) -> tuple[gpd.GeoDataFrame, str]:
    if not isinstance(value, dict) or value.get("type") != "FeatureCollection":
        raise InvalidCoverageRequest("premises: is not a GeoJSON FeatureCollection")
    features = value.get("features")
    if not isinstance(features, list) or not features:
        raise InvalidCoverageRequest("premises: the FeatureCollection has no features")
    if len(features) > limit:
        raise InvalidCoverageRequest(f"premises: {len(features):,} points, more than the limit of {limit:,}")
    try:
        frame = gpd.GeoDataFrame.from_features(features)
    except Exception as exc:
        raise InvalidCoverageRequest(f"premises: features not readable ({exc})") from exc
    if frame.geometry.isna().any() or not frame.geom_type.eq("Point").all():
        raise InvalidCoverageRequest("premises: every feature must be a Point")
    crs = crs_of("premises_crs", crs) or guess_crs("premises", shapely.get_coordinates(frame.geometry.values))
    frame = frame.set_crs(crs)
    try:
        frame = points_demand(frame)
    except ValueError as exc:
        raise InvalidCoverageRequest(f"premises: {exc}") from exc
    xy = shapely.get_coordinates(frame.geometry.values)
    payload = np.column_stack([xy, frame["households"].to_numpy(float)]).round(3)
    return frame, hashlib.sha256(payload.tobytes()).hexdigest()


# The body: what /openapi.json shows ------------------------------------------------------------------
class ParsedArea(NamedTuple):
    """An area as :func:`parse_area` gives it."""

    normalised: dict[str, Any]
    geometry: shapely.Geometry | None


def _checked_area(value: Any) -> ParsedArea:
    try:
        return ParsedArea(*parse_area(value))
    except InvalidArea as exc:
        raise _check_error(str(exc)) from exc


def _check_error(message: str) -> PydanticCustomError:
    """A pydantic error carrying one of this package's messages (they name the field and value) as it is."""
    return PydanticCustomError(CHECK, "{message}", {"message": message})


def _listed(value: Any) -> Any:
    """One code given as a string is a list of one."""
    return [value] if isinstance(value, str) else value


class PremisesFeature(BaseModel):
    """One premises point; its ``households`` (or ``weight``) property is its weight, 1 by default."""

    type: Literal["Feature"] = Field(description="Feature.")
    geometry: dict[str, Any] = Field(description="A GeoJSON Point.")
    properties: dict[str, Any] | None = Field(
        None, description="``households`` or ``weight`` (>= 0); ``id``."
    )


class PremisesCollection(BaseModel):
    """A GeoJSON FeatureCollection of premises points, in WGS84 or British National Grid."""

    type: Literal["FeatureCollection"] = Field(description="FeatureCollection.")
    features: list[PremisesFeature] = Field(min_length=1, description="The premises points (at least one).")


Distance = Annotated[float, Field(ge=1, le=5000, allow_inf_nan=False)]
Cost = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]


class SiteCosts(BaseModel):
    """The cost of each candidate: its kind's cost plus its best wayleave status's (``none``: no wayleave).

    Either table may name only some codes: the others keep the settings' costs. A candidate
    must cost more than 0 in the end.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    by_kind: dict[str, Cost] | None = Field(
        None, description=f"Cost of opening up a candidate of each kind ({', '.join(KINDS)})."
    )
    by_wayleave_status: dict[str, Cost] | None = Field(
        None, description="Cost added by the candidate's best wayleave status, or none (no wayleave yet)."
    )

    @field_validator("by_kind")
    @classmethod
    def _kinds(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            _codes("costs.by_kind", list(value), KINDS)
        return value

    @field_validator("by_wayleave_status")
    @classmethod
    def _statuses(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            _codes("costs.by_wayleave_status", list(value), {*WAYLEAVE_STATUSES, "none"})
        return value


Codes = Annotated[list[str] | None, BeforeValidator(_listed, json_schema_input_type=str | list[str] | None)]


class CoverageRequest(BaseModel):
    """The body of ``POST /coverage/reports``: where, what demand, which assets count, what to prioritise.

    Types are strict (a number is not a string, a flag is ``true`` or ``false``) and unknown fields
    are refused. Defaults marked "the settings'" come from ``CONNECTIVITY_COVERAGE_*``.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"area": {"boroughs": ["E09000007"]}, "thresholds": [50, 100, 200], "k": 5}]
        },
    )

    area: Annotated[
        ParsedArea,
        PlainValidator(
            _checked_area,
            json_schema_input_type=BoroughsArea | GeometryArea | BboxArea | PolygonArea | FeatureArea,
        ),
    ] = Field(description="The area of the report: boroughs, a GeoJSON polygon or a bbox.")
    thresholds: list[Distance] | None = Field(
        None,
        min_length=1,
        max_length=12,
        description="Coverage distances in metres (1 to 5000, 1 to 12 of them); "
        "default the settings' (50, 100, 200).",
    )
    demand: Literal["postcodes", "grid", "premises"] = Field(
        "postcodes",
        description="postcodes (Code-Point Open centroids weighted by census households), grid (the cells of "
        "cell_size, with the households of their postcodes) or premises (the points sent in premises).",
    )
    cell_size: Literal[50, 100, 250] | None = Field(
        None,
        description="Grid cell edge in metres, of the grid demand and of the gaps; "
        "default the settings' (100).",
    )
    gap_threshold: Distance | None = Field(
        None,
        description="Cells farther than this from any asset form the gaps; default the middle threshold.",
    )
    kinds: Codes = Field(
        None,
        description=f"Asset kinds that count ({', '.join(KINDS)}); default all.",
        examples=[["street_furniture"]],
    )
    subtypes: Codes = Field(None, description="Asset subtypes that count, of those kinds; default all.")
    statuses: Codes = Field(None, description="Asset statuses that count; default the usable ones.")
    asset_boroughs: Codes = Field(None, description="Only assets of these boroughs (GSS codes); default all.")
    ready_now: bool = Field(False, description="Only assets with a signed or live wayleave count.")
    k: int = Field(10, ge=0, description="Candidate assets to prioritise: 0 to the settings' max_k (500).")
    radius: Distance = Field(
        100.0, description="Reach of a candidate asset in metres, for the prioritisation."
    )
    premises: Annotated[
        Any, PlainValidator(lambda value: value, json_schema_input_type=PremisesCollection | None)
    ] = Field(
        None, description="With demand premises: the points (at most the settings' max_premises, 200,000)."
    )
    premises_crs: Annotated[
        str | int | None,
        Field(description="The CRS of premises, as the area's crs; without it the coordinates decide."),
    ] = None
    priorities_method: Literal["greedy", "exact"] = Field(
        "greedy",
        description="How the k candidates are chosen: greedy (any size; the report proves its gap to the "
        f"best possible with an LP bound) or exact (a MILP, for k <= {EXACT_MAX_K} and at most "
        f"{EXACT_MAX_CANDIDATES:,} candidates reaching uncovered demand).",
    )
    budget: float | None = Field(
        None,
        gt=0,
        le=1e12,
        allow_inf_nan=False,
        description="The most the chosen candidates may cost together (at most k of them): the cost-aware "
        "greedy of Khuller, Moss and Naor, bounded by the budgeted LP. Costs: see costs.",
    )
    costs: SiteCosts | None = Field(
        None,
        description="With budget: the costs of the candidates by kind and wayleave status; "
        "default the settings' cost_by_kind and cost_by_wayleave_status.",
    )

    @field_validator("thresholds")
    @classmethod
    def _distinct(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else sorted(set(value))

    @field_validator("kinds", "statuses", "asset_boroughs")
    @classmethod
    def _known(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        model = load_model()
        allowed = {"kinds": KINDS, "statuses": set(model.statuses), "asset_boroughs": GSS_CODES}
        return _codes(str(info.field_name), value, allowed[str(info.field_name)])

    @field_validator("subtypes")
    @classmethod
    def _known_subtypes(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if "kinds" not in info.data:  # the kinds are wrong: that is the error to read
            return value
        subtypes = load_model().subtypes
        return _codes("subtypes", value, {s for kind in info.data["kinds"] or KINDS for s in subtypes[kind]})

    @model_validator(mode="after")
    def _premises_with_their_demand(self) -> CoverageRequest:
        if self.demand == "premises" and self.premises is None:
            raise _check_error("premises: demand 'premises' needs a FeatureCollection of points")
        if self.demand != "premises" and self.premises is not None:
            raise _check_error(f"premises: given, but demand is {self.demand!r}; set demand to 'premises'")
        if self.costs is not None and self.budget is None:
            raise _check_error("costs: given without a budget; set budget or leave costs out")
        if self.priorities_method == "exact" and self.k > EXACT_MAX_K:
            raise _check_error(f"priorities_method: exact is for k <= {EXACT_MAX_K} (k is {self.k})")
        return self


def _codes(name: str, value: list[str] | None, allowed: Any) -> list[str] | None:
    if value is None:
        return None
    bad = [v for v in value if v not in allowed]
    if bad:
        raise _check_error(f"{name}: {', '.join(map(repr, bad))} not one of {', '.join(sorted(allowed))}")
    return sorted(set(value))


# The request with the settings -----------------------------------------------------------------------
def build_request(body: CoverageRequest, settings: CoverageSettings) -> ReportRequest:
    """The report a validated body asks for, with the settings' defaults and limits.

    Parameters
    ----------
    body : CoverageRequest
        The validated body.
    settings : CoverageSettings
        Default thresholds and cell size; the limits on ``k``, premises and grid cells.

    Returns
    -------
    ReportRequest
        With the area's geometry in EPSG:27700 (None for boroughs until
        :func:`geo.coverage.sources.resolve_area`) and the premises read.

    Raises
    ------
    InvalidCoverageRequest
        Over a limit of the settings, or premises that cannot be read; the message names the field.
    """
    thresholds = tuple(body.thresholds) if body.thresholds is not None else settings.thresholds
    cell_size = float(body.cell_size if body.cell_size is not None else settings.grid_cell_m)
    gap = body.gap_threshold if body.gap_threshold is not None else thresholds[len(thresholds) // 2]
    if body.k > settings.max_k:
        raise InvalidCoverageRequest(f"k: {body.k!r} is not a whole number from 0 to {settings.max_k}")
    by_kind, by_status = None, None
    if body.budget is not None:
        by_kind, by_status = _cost_tables(body.costs, settings)
    premises, digest = None, None
    if body.demand == "premises":
        premises, digest = _premises(body.premises, body.premises_crs, settings.max_premises)
    request = ReportRequest(
        area=body.area.normalised,
        geometry=body.area.geometry,
        thresholds=thresholds,
        demand=body.demand,
        cell_size=cell_size,
        gap_threshold=float(gap),
        kinds=tuple(sorted(body.kinds or KINDS)),
        subtypes=None if body.subtypes is None else tuple(body.subtypes),
        statuses=tuple(body.statuses or sorted(load_model().usable_statuses)),
        asset_boroughs=None if body.asset_boroughs is None else tuple(body.asset_boroughs),
        ready_now=body.ready_now,
        k=body.k,
        radius=float(body.radius),
        premises=premises,
        premises_digest=digest,
        priorities_method=body.priorities_method,
        budget=body.budget,
        cost_by_kind=by_kind,
        cost_by_wayleave_status=by_status,
        time_limit=settings.priorities_time_limit_s,
    )
    if request.geometry is not None:
        check_size(request, settings)
    return request


def _cost_tables(
    costs: SiteCosts | None, settings: CoverageSettings
) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """The settings' cost tables with the request's costs over them; every candidate costs more than 0."""
    by_kind = {**settings.cost_by_kind, **((costs.by_kind if costs else None) or {})}
    by_status = {**settings.cost_by_wayleave_status, **((costs.by_wayleave_status if costs else None) or {})}
    missing = [k for k in KINDS if k not in by_kind]
    if missing:
        raise InvalidCoverageRequest(f"costs.by_kind: no cost for {', '.join(missing)} (nor in the settings)")
    missing = [s for s in (*WAYLEAVE_STATUSES, "none") if s not in by_status]
    if missing:
        raise InvalidCoverageRequest(
            f"costs.by_wayleave_status: no cost for {', '.join(missing)} (nor in the settings)"
        )
    free = [k for k in KINDS if by_kind[k] + min(by_status.values()) <= 0]
    if free:
        raise InvalidCoverageRequest(
            f"costs.by_kind: a {free[0]} with a {min(by_status, key=by_status.__getitem__)} wayleave "
            "would cost 0; every candidate must cost more than 0"
        )
    return tuple(sorted(by_kind.items())), tuple(sorted(by_status.items()))


def parse_request(body: Any, settings: CoverageSettings) -> ReportRequest:
    """Validate a coverage request as JSON values (the CLI's way in) and build it.

    :class:`CoverageRequest`, then :func:`build_request`; every mistake is an
    :class:`InvalidCoverageRequest` (:class:`InvalidArea` for the area) whose message names
    each field and value that is wrong.
    """
    try:
        model = CoverageRequest.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        cls = InvalidArea if all(e["loc"][:1] == ("area",) for e in errors) else InvalidCoverageRequest
        raise cls("; ".join(_describe(e) for e in errors)) from None
    return build_request(model, settings)


def _describe(error: Any) -> str:
    """One pydantic error as this module words its own: the field, what is wrong, the value."""
    if error["type"] == CHECK:
        return str(error["msg"])
    where = ".".join(str(p) for p in error["loc"]) or "the request body"
    if error["type"] == "missing":
        return f"{where}: missing" + ("; give boroughs, geometry or bbox" if where == "area" else "")
    value = repr(error["input"])
    return f"{where}: {error['msg']} (given {value if len(value) <= 80 else value[:77] + '...'})"


def check_size(request: ReportRequest, settings: CoverageSettings) -> None:
    """Raise :class:`InvalidArea` when the area makes more grid cells than the settings allow."""
    cells = request.geometry.area / request.cell_size**2
    if cells > settings.max_cells:
        raise InvalidArea(
            f"area: {request.geometry.area / 1e6:,.0f} km² makes {cells:,.0f} cells of {request.cell_size:g} m, "
            f"more than the limit of {settings.max_cells:,}; use a larger cell_size or a smaller area"
        )
