"""The JSON of a coverage report's record: its parameters, data version, state and summary.

These models document ``/openapi.json``; the records themselves are the dictionaries of
:mod:`geo.coverage.results` (the API adds ``progress`` and ``links``), whose keys and values
these models describe one for one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PremisesDigest(_Schema):
    """The premises a report was asked about, without the points themselves."""

    count: int = Field(description="How many points.")
    sha256: str = Field(description="SHA-256 of their coordinates and households (rounded to 1 mm).")


class ReportParameters(_Schema):
    """The request as it was understood: sorted, with every default filled in."""

    area: dict[str, Any] = Field(
        description="``{boroughs}``, ``{geometry, crs}`` or ``{bbox, crs}``, the CRS resolved."
    )
    demand: Literal["postcodes", "grid", "premises"] = Field(
        description="What coverage is measured over: postcode centroids, grid cells or the premises sent."
    )
    cell_size: float = Field(description="Grid cell edge in metres.")
    thresholds: list[float] = Field(description="Coverage distances in metres, ascending.")
    gap_threshold: float = Field(description="Distance beyond which cells are gaps, in metres.")
    kinds: list[str] = Field(description="Asset kinds that count.")
    subtypes: list[str] | None = Field(description="Asset subtypes that count; null for all.")
    statuses: list[str] = Field(description="Asset statuses that count.")
    asset_boroughs: list[str] | None = Field(description="Boroughs whose assets count; null for all.")
    ready_now: bool = Field(description="Only assets with a signed or live wayleave counted.")
    k: int = Field(description="Candidate assets prioritised.")
    radius: float = Field(description="Reach of a candidate asset in metres.")
    premises: PremisesDigest | None = Field(None, description="Only with demand premises.")
    priorities_method: Literal["exact"] | None = Field(
        None, description="Only when the candidates were chosen exactly (MILP); greedy otherwise."
    )
    budget: float | None = Field(None, description="Only with a budget: the most the chosen may cost.")
    costs: dict[str, dict[str, float]] | None = Field(
        None, description="Only with a budget: the costs used, ``by_kind`` and ``by_wayleave_status``."
    )


class DataVersion(_Schema):
    """The data a report was computed from: the same versions and parameters give the same numbers."""

    assets: int | None = Field(description="``data_versions`` version of the assets.")
    boroughs: int | None = Field(description="Version of the borough boundaries.")
    pipeline: int | None = Field(description="Version of the Pipeline projects.")
    wayleaves: int | None = Field(None, description="Version of the wayleaves (only with ready_now).")
    demand: str = Field(description="The demand's source (postcodes and households, grid, premises sha256).")


class SummaryRow(_Schema):
    """Coverage at one threshold, of the whole area (``borough_code`` ``all``) or of one borough."""

    borough_code: str = Field(description="``all``, a GSS code, or ``outside`` (outside every borough).")
    threshold_m: float = Field(description="The distance this row measures, in metres.")
    demand_points: int = Field(description="Demand points (postcodes, cells or premises) in it.")
    covered_points: int = Field(description="Demand points within the threshold of a counted asset.")
    households: float | None = Field(description="Households of its demand points; null for a grid demand.")
    covered_households: float | None = Field(
        description="Households within the threshold of a counted asset."
    )
    household_share: float | None = Field(description="covered / all households; null for none.")
    area_m2: float | None = Field(description="Area of the grid cells.")
    covered_area_m2: float | None = Field(description="Area of the cells within the threshold, in m².")
    area_share: float | None = Field(description="covered / all area; null for none.")


class AssetCounts(_Schema):
    """The assets read: qualifying (they count) and candidates (not yet usable; the prioritisation's)."""

    qualifying_points: int = Field(description="Point assets (buildings, street furniture) that count.")
    qualifying_lines: int = Field(description="Line assets (ducts) that count.")
    candidate_points: int = Field(description="Point assets not yet usable: the candidates to prioritise.")
    candidate_lines: int = Field(description="Line assets not yet usable.")


class GapSummary(_Schema):
    """The gaps: uncovered cells at ``threshold_m``, merged where they share an edge."""

    threshold_m: float = Field(
        description="Cells farther than this from any counted asset are gaps (metres)."
    )
    count: int = Field(description="Gaps: groups of uncovered cells that share an edge.")
    households: float = Field(description="Households in the gaps.")
    area_m2: float = Field(description="Area of the gaps in m².")


class CoverageProfile(_Schema):
    """The coverage curves: ``[distance_m, share]`` in 40 steps from 0 to the reach."""

    households: list[tuple[float, float | None]] = Field(description="Share of households within each.")
    area: list[tuple[float, float | None]] = Field(description="Share of the area within each distance.")


class PriorityCertificate(_Schema):
    """How good the chosen candidates are: what they add, an upper bound on any choice, the proven gap."""

    method: Literal["greedy", "exact"] = Field(description="How they were chosen.")
    k: int = Field(description="At most this many candidates.")
    value: float = Field(description="Households the chosen candidates add.")
    bound: float | None = Field(
        description="No k candidates (within the budget) could add more households than this; "
        "null when no bound was proven in time."
    )
    gap: float | None = Field(
        description="(bound - value) / bound: the choice adds at least 1 - gap of the best possible."
    )
    bound_source: Literal["lp", "greedy", "milp"] | None = Field(
        description="lp (the LP relaxation), greedy (the submodular bound of the greedy steps) or milp "
        "(the exact method's dual bound): whichever was smallest."
    )
    lp_status: str = Field(description="optimal, or time_limit when HiGHS stopped before proving the LP.")
    budget: float | None = Field(description="The budget, when budgeted.")
    spent: float | None = Field(description="What the chosen candidates cost together, when budgeted.")
    exact_status: str | None = Field(
        description="With the exact method: optimal, or time_limit (then mip_gap is HiGHS's gap)."
    )
    mip_gap: float | None = Field(description="With the exact method: HiGHS's relative MIP gap.")
    candidates: int = Field(description="Candidates reaching uncovered demand (the LP's columns).")
    demand_rows: int = Field(
        description="Uncovered demand points, merged where the same candidates reach them (the LP's rows)."
    )
    costs: list[float] | None = Field(
        None, description="When budgeted: each chosen candidate's cost, by rank."
    )


class RanOn(_Schema):
    """Where a partitioned report ran: the Dask cluster and its partitions."""

    scheduler: str = Field(description="The Dask scheduler's address (a LocalCluster's own for local).")
    partitions: int = Field(description="Square partitions of the area that held demand, one task each.")
    partition_m: float = Field(description="Edge of a partition in metres (EPSG:27700).")
    workers: int = Field(description="Dask workers connected to the scheduler when the report ran.")


class SummaryHeadline(_Schema):
    """A report's summary as the list shows it: the whole area's numbers."""

    thresholds: list[float] = Field(description="Coverage distances in metres, ascending.")
    whole_area: list[SummaryRow] = Field(description="One row per threshold.")
    demand_points: int = Field(description="Demand points in the area.")
    cells: int = Field(description="Grid cells (the demand itself for a grid demand).")
    households: float = Field(description="Households of the demand (0 for a grid demand).")
    area_m2: float | None = Field(description="Area of the report's grid cells in m².")
    mean_distance_m: float | None = Field(description="Mean distance of the demand within reach.")
    beyond_reach_points: int = Field(description="Demand points with no counted asset within reach_m.")
    reach_m: float = Field(description="The largest distance measured exactly (thresholds, gaps, radius).")
    assets: AssetCounts = Field(description="The assets read, by whether they count.")
    gaps: GapSummary = Field(description="The gaps at the gap threshold.")
    pipeline_projects: list[dict[str, Any]] = Field(
        description="The Pipeline projects in or touching the area (no personal data)."
    )
    priorities: PriorityCertificate | None = Field(
        None, description="The prioritisation's certificate (reports since it was added; null with k 0)."
    )
    ran_on: RanOn | None = Field(
        None,
        description="Where it ran when partitioned on Dask (CONNECTIVITY_DASK_SCHEDULER); null: in process.",
    )


class ReportSummary(SummaryHeadline):
    """A report's whole summary."""

    boroughs: list[SummaryRow] = Field(description="One row per borough and threshold.")
    profile: CoverageProfile = Field(description="The coverage curves of households and area.")


class JobProgress(_Schema):
    """Steps done of all (:func:`geo.core.jobs.with_progress`)."""

    done: int = Field(description="Steps done.")
    total: int | None = Field(description="Steps in all; null until known.")
    fraction: float | None = Field(description="done / total, 0 to 1; null until known.")


class ReportRecord(_Schema):
    """One coverage report: its state and progress, parameters, data version, summary and timings."""

    id: int = Field(description="The report's id.")
    parameters: ReportParameters = Field(description="The request as understood, defaults filled in.")
    data_version: DataVersion | dict[str, Any] = Field(description="Empty until the report is done.")
    state: Literal["queued", "running", "done", "failed", "interrupted", "dismissed"] = Field(
        description="queued, running, done, failed (see message), interrupted (the server stopped; ask again) "
        "or dismissed (stopped by DELETE /jobs/{id} before it finished)."
    )
    progress_done: int = Field(description="Steps done (as progress.done).")
    progress_total: int | None = Field(description="Steps in all (as progress.total).")
    summary: ReportSummary | None = Field(description="Once done.")
    timings: dict[str, float] = Field(description="Seconds per step, ``store`` and ``total``, once done.")
    message: str | None = Field(description="Why it failed.")
    created_by: str = Field(description="Who asked for it (the key's label).")
    created_at: dt.datetime = Field(description="When it was asked for.")
    started_at: dt.datetime | None = Field(description="When its computation started.")
    finished_at: dt.datetime | None = Field(description="When it finished or failed.")


class ReportListItem(ReportRecord):
    """A report in the list: its summary without the per-borough rows and the curves."""

    summary: SummaryHeadline | None = Field(description="Once done.")  # type: ignore[assignment]
