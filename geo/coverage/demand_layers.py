"""The demand points and grid cells of a coverage report (:class:`Layer`), from postcodes, a grid or premises.

The grid of an area with its boroughs, the postcode layer and the households of the postcodes in
each cell are kept in the process as read-only arrays: a service sees the same areas again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from geo.coverage.demand import assign_boroughs, grid_centroids, postcode_demand
from geo.coverage.request import ReportRequest
from geo.coverage.sources import borough_frame

#: The borough code of demand outside every borough.
OUTSIDE = "outside"
POSTCODE_SOURCE = "postcodes: Code-Point Open 2014, LSOA 2011 households"


@functools.lru_cache(maxsize=8)
def _grid(
    area_wkb: bytes, cell_size: float, url: str, boroughs_version: int
) -> tuple[np.ndarray, pd.Categorical]:
    """Grid centroids in an area and their boroughs; cached, as a service asks for the same grids again.

    The boroughs are a :class:`pandas.Categorical`, so that summaries group the cells by its
    codes instead of hashing their strings on every report.
    """
    xy = grid_centroids(shapely.from_wkb(area_wkb), cell_size)
    codes = assign_boroughs(xy, borough_frame(url, boroughs_version))
    codes[pd.isna(codes)] = OUTSIDE
    xy.setflags(write=False)
    return xy, pd.Categorical(codes)


@functools.cache
def _postcodes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = postcode_demand()
    xy = shapely.get_coordinates(frame.geometry.values)
    codes = frame["borough_code"].fillna(OUTSIDE).to_numpy(dtype=object)
    return frame["postcode"].to_numpy(dtype=object), xy, codes, frame["households"].to_numpy(float)


def _bin_households(cell_xy: np.ndarray, cell_size: float, xy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Households of the points falling in each cell (cells given by their centroids)."""
    out = np.zeros(len(cell_xy))
    if not len(cell_xy) or not len(xy):
        return out

    def key(p: np.ndarray) -> np.ndarray:
        return (np.floor(p[:, 0] / cell_size).astype(np.int64) << 32) + np.floor(p[:, 1] / cell_size).astype(
            np.int64
        )

    cells = key(cell_xy)
    order = np.argsort(cells)
    sorted_cells = cells[order]
    points = key(xy)
    at = np.searchsorted(sorted_cells, points)
    at = np.minimum(at, len(cells) - 1)
    hit = sorted_cells[at] == points
    np.add.at(out, order[at[hit]], weight[hit])
    return out


@dataclass
class Layer:
    """Demand points or grid cells: labels, coordinates, boroughs, weights."""

    label: np.ndarray | None
    xy: np.ndarray
    borough: np.ndarray | pd.Categorical
    households: np.ndarray
    area_m2: np.ndarray | None
    distance: np.ndarray = field(default_factory=lambda: np.empty(0))
    asset_id: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@functools.lru_cache(maxsize=8)
def _postcodes_in(area_wkb: bytes, boroughs: tuple[str, ...] | None) -> np.ndarray:
    """Which postcodes an area holds: by borough code for a list of boroughs, by position otherwise."""
    _, pc_xy, pc_borough, _ = _postcodes()
    if boroughs is not None:
        inside = np.isin(pc_borough, boroughs)
    else:
        area = shapely.from_wkb(area_wkb)
        shapely.prepare(area)
        inside = shapely.contains_xy(area, pc_xy[:, 0], pc_xy[:, 1])
    inside.setflags(write=False)
    return inside


@functools.lru_cache(maxsize=8)
def _cell_households(
    area_wkb: bytes, cell_size: float, url: str, boroughs_version: int, boroughs: tuple[str, ...] | None
) -> np.ndarray:
    """Households of the area's postcodes binned into its grid cells; cached like the grid."""
    cell_xy, _ = _grid(area_wkb, cell_size, url, boroughs_version)
    _, pc_xy, _, pc_hh = _postcodes()
    inside = _postcodes_in(area_wkb, boroughs)
    hh = _bin_households(cell_xy, cell_size, pc_xy[inside], pc_hh[inside])
    hh.setflags(write=False)
    return hh


def demand_layers(url: str, request: ReportRequest, boroughs_version: int) -> tuple[Layer, Layer | None, str]:
    """The demand layer, the gap grid (None when the demand is that grid) and the demand's source.

    The grid of an area, its boroughs and the postcode households in each cell are cached in
    the process (as read-only arrays), as a service sees the same areas again.
    """
    area = request.geometry
    area_wkb = shapely.to_wkb(area)
    cell_xy, cell_borough = _grid(area_wkb, request.cell_size, url, boroughs_version)
    cell_area = np.full(len(cell_xy), request.cell_size**2)
    if request.demand == "grid":
        hh = _cell_households(area_wkb, request.cell_size, url, boroughs_version, None)
        grid = Layer(None, cell_xy, cell_borough, hh, cell_area)
        return grid, None, f"grid {request.cell_size:g} m; households from {POSTCODE_SOURCE}"
    if request.demand == "postcodes":
        pc_label, pc_xy, pc_borough, pc_hh = _postcodes()
        boroughs = tuple(request.area["boroughs"]) if "boroughs" in request.area else None
        inside = _postcodes_in(area_wkb, boroughs)
        demand = Layer(pc_label[inside], pc_xy[inside], pc_borough[inside], pc_hh[inside], None)
        hh = _cell_households(area_wkb, request.cell_size, url, boroughs_version, boroughs)
        return demand, Layer(None, cell_xy, cell_borough, hh, cell_area), POSTCODE_SOURCE
    assert request.premises is not None
    frame = request.premises
    xy = shapely.get_coordinates(frame.geometry.values)
    codes = assign_boroughs(xy, borough_frame(url, boroughs_version))
    codes[pd.isna(codes)] = OUTSIDE
    labels = (
        frame["id"].astype(str).to_numpy(dtype=object)
        if "id" in frame
        else np.array([str(i + 1) for i in range(len(frame))], dtype=object)
    )
    demand = Layer(labels, xy, codes, frame["households"].to_numpy(float), None)
    source = f"premises sha256:{request.premises_digest}"
    hh = _bin_households(cell_xy, request.cell_size, demand.xy, demand.households)
    return demand, Layer(None, cell_xy, cell_borough, hh, cell_area), source
