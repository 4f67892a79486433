"""Partitioned coverage reports on ``dask.distributed``: the same answer as one process, over many.

The area is cut into square partitions of ``CONNECTIVITY_DASK_PARTITION_M`` in EPSG:27700 (aligned
to multiples of the size; a point belongs to the partition holding it, edges half-open, so every
demand point is in exactly one). A task gets the request (sent once, as a task's result), its partition's bounds
and the data versions as plain values; it opens its own connection with the database URL, reads
the qualifying and candidate assets of its partition **plus a halo of the report's reach + 1 m**
(``reach`` is the largest threshold, gap threshold and prioritisation radius) over the GiST index,
takes its own points from the client (the client builds the layers with
:func:`~geo.coverage.demand_layers.demand_layers` for the summary anyway; the partition's indexed
assets are kept by the worker, by data version: :func:`partition_assets`)
and measures it with the same :class:`~geo.coverage.nearest.AssetIndex`. Any asset within
``reach`` of a point lies inside the point's partition and halo, so each distance (exact up to
``reach``) is the single-process one.

It returns compact arrays: the global positions, distances and nearest asset of its points, and
its sparse reach pairs (candidate id, demand position) from the engine's reach matrix over its
uncovered demand. The client puts the distances in place and runs the single-process summary,
profile and gaps on them (labelled after combining, so a gap across partition edges is one gap;
summing per partition instead would change the order of the floating-point sums). Prioritisation
stays exact: the pairs of all partitions are one (candidates x uncovered demand) matrix, the same
matrix one process builds, and the unchanged greedy (:mod:`geo.coverage.optimality`) runs on it.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import numpy as np
import psycopg
from scipy import sparse

from geo.core.settings import DaskSettings
from geo.coverage.cache import IndexedAssets, ProcessCache
from geo.coverage.costs import candidate_costs, certificate_of
from geo.coverage.demand_layers import Layer
from geo.coverage.engine import _priority_table, _reach_matrix
from geo.coverage.errors import InvalidCoverageRequest
from geo.coverage.nearest import AssetIndex
from geo.coverage.optimality import choose, greedy_choice
from geo.coverage.request import ReportRequest
from geo.coverage.sources import asset_counts, read_assets


class DataChanged(RuntimeError):
    """The assets changed while a partitioned report ran: its partitions would not agree."""


class PartitionLost(RuntimeError):
    """A partition's workers died more often than the scheduler allows (``allowed-failures``).

    Dask runs a task of a lost worker again on another worker; past that limit the report
    fails with this error (its job ``failed``), never with a partial answer.
    """


# Where it runs -----------------------------------------------------------------------------------
_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def scheduler_for(request: ReportRequest, settings: DaskSettings | None = None) -> str | None:
    """The scheduler a report runs on (``local`` or an address), None to run it in process."""
    settings = settings or DaskSettings()
    if not settings.scheduler or request.geometry is None:
        return None
    if request.geometry.area < settings.min_area_sq_km * 1e6:
        return None
    return settings.scheduler


def client_for(scheduler: str) -> Any:
    """One ``distributed.Client`` per scheduler and process: ``local`` starts a LocalCluster once."""
    from distributed import Client, LocalCluster

    with _LOCK:
        client = _CLIENTS.get(scheduler)
        if client is None or client.status in ("closed", "closing"):
            if scheduler == "local":
                cluster = LocalCluster(
                    n_workers=os.cpu_count() or 1, threads_per_worker=1, dashboard_address=None
                )
                client = Client(cluster)
            else:
                client = Client(scheduler)
            _CLIENTS[scheduler] = client
        return client


@atexit.register
def close_clients() -> None:
    """Close the clients (and the local cluster) this process opened."""
    with _LOCK:
        for client in _CLIENTS.values():
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
        _CLIENTS.clear()


# Partitions --------------------------------------------------------------------------------------
#: Partitions whose indexed assets a worker keeps between reports (least recently used out): a
#: warm report then measures without reading. London's 10 km partitions hold 5-20 MB each.
PARTITION_CACHE_SIZE = 128
PARTITIONS: ProcessCache[IndexedAssets] = ProcessCache(maxsize=PARTITION_CACHE_SIZE)


def partition_assets(
    url: str,
    request: ReportRequest,
    box: tuple[float, float, float, float],
    versions: dict[str, Any],
    spacing: float,
) -> IndexedAssets:
    """The indexed assets of a partition and its halo at ``versions``: kept by the worker.

    Keyed as :func:`geo.coverage.cache.indexed_assets` is (the data versions, the filters, the
    box, the spacing), so an entry is only used for the data it was read at. A miss reads the
    partition over the GiST index and raises :class:`DataChanged` if the assets are no longer
    at ``versions`` (the client's read).
    """
    halo = request.reach + 1.0
    x0, y0, x1, y1 = box
    read_box = (x0 - halo, y0 - halo, x1 + halo, y1 + halo)
    layers = ("assets", "wayleaves") if request.ready_now else ("assets",)
    key = (
        url, tuple((layer, versions.get(layer)) for layer in layers), request.kinds, request.subtypes,
        request.statuses, request.asset_boroughs, request.ready_now, read_box, spacing,
    )  # fmt: skip
    entry = PARTITIONS.get(key)
    if entry is None:
        assets = read_assets(url, request, read_box)
        if any(assets.versions.get(layer) != versions.get(layer) for layer in layers):
            raise DataChanged(f"the assets changed while the report ran (partition {box})")
        entry = IndexedAssets(assets, AssetIndex(*assets.qualifying(), spacing))
        PARTITIONS.put(key, entry)
    return entry


def partition_task(
    url: str,
    request: ReportRequest,
    box: tuple[float, float, float, float],
    versions: dict[str, Any],
    spacing: float,
    points: dict[str, tuple[np.ndarray, np.ndarray]],
    households: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """One partition of a report, on a worker: its points' distances and its reach pairs.

    ``box`` is the partition (half-open); ``versions`` the data versions the client read: the
    assets read here must be at them (:class:`DataChanged` otherwise). ``points`` holds, per layer
    (``demand``, ``cells``), the global positions and coordinates of the partition's points, and
    ``households`` the households of its demand points (for the reach pairs; None when ``k`` is 0).
    """
    entry = partition_assets(url, request, box, versions, spacing)
    index = entry.index
    out: dict[str, np.ndarray] = {}
    for name, (at, xy) in points.items():
        distance, asset_id = index.nearest(xy, request.reach)
        out[f"{name}_at"], out[f"{name}_distance"], out[f"{name}_asset"] = at, distance, asset_id
    out["pair_asset"], out["pair_demand"] = np.empty(0, np.int64), np.empty(0, np.int64)
    if request.k > 0:
        assert households is not None
        at, xy = points["demand"]
        open_ = ~(out["demand_distance"] <= request.radius) & (households > 0)
        cands = entry.candidate_index(spacing)
        ids, row_of = np.unique(cands.ids, return_inverse=True)
        reach = _reach_matrix(xy[open_], cands, row_of, len(ids), request.radius).tocoo()
        out["pair_asset"], out["pair_demand"] = ids[reach.row], at[open_][reach.col].astype(np.int64)
    return out


def partition_points(layers: dict[str, Layer], size: float) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """The global positions of each layer's points, by the partition (column, row) holding them.

    One sort of every point by its partition (not one scan of every point per partition: England
    has 1,600 partitions of 30 million points); positions ascending within a partition.
    """
    out: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for name, layer in layers.items():
        cells = np.floor(layer.xy / size).astype(np.int64)
        if not len(cells):
            continue
        lo = cells.min(axis=0)
        packed = ((cells[:, 0] - lo[0]) << 32) | (cells[:, 1] - lo[1])
        order = np.argsort(packed, kind="stable")
        _, starts = np.unique(packed[order], return_index=True)
        for at in np.split(order, starts[1:]):
            out.setdefault((int(cells[at[0], 0]), int(cells[at[0], 1])), {})[name] = at
    return out


# The client --------------------------------------------------------------------------------------
def _held(request: ReportRequest) -> ReportRequest:
    """The request itself, as a task's result (see :func:`measure_partitioned`)."""
    return request


def measure_partitioned(
    client: Any,
    url: str,
    request: ReportRequest,
    demand: Layer,
    cells: Layer | None,
    versions: dict[str, Any],
    spacing: float,
    size: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Set the layers' distances and assets from the partitions; the reach pairs and where it ran."""
    layers = {"demand": demand} if cells is None else {"demand": demand, "cells": cells}
    groups = partition_points(layers, size)
    # The request goes to the cluster once, as a task rather than scattered: scattered data
    # lives only on the worker holding it, and dies with it; a task's result is computed again.
    # Each partition's own points go with its task (a few hundred kB; the client has built the
    # layers anyway): no worker builds the whole area's demand again.
    scattered = client.submit(_held, request, pure=False)
    futures, boxes = [], []
    for (c, r), held in sorted(groups.items()):
        box = (float(c * size), float(r * size), float((c + 1) * size), float((r + 1) * size))
        points = {name: (at, layers[name].xy[at]) for name, at in held.items()}
        households = None
        if request.k > 0:
            points.setdefault("demand", (np.empty(0, np.int64), np.empty((0, 2))))
            households = demand.households[points["demand"][0]]
        futures.append(
            client.submit(
                partition_task, url, scattered, box, versions, spacing, points, households, pure=False
            )
        )
        boxes.append(box)
    parts = _gather(client, futures)
    for name, layer in (("demand", demand), ("cells", cells)):
        if layer is None:
            continue
        layer.distance = np.full(len(layer.xy), np.inf)
        layer.asset_id = np.full(len(layer.xy), -1, dtype=np.int64)
        for part in (p for p in parts if f"{name}_at" in p):  # a partition may hold points of one layer only
            layer.distance[part[f"{name}_at"]] = part[f"{name}_distance"]
            layer.asset_id[part[f"{name}_at"]] = part[f"{name}_asset"]
    pair_asset = np.concatenate([p["pair_asset"] for p in parts])
    pair_demand = np.concatenate([p["pair_demand"] for p in parts])
    where = {
        "scheduler": client.scheduler.address,
        "partitions": len(boxes),
        "partition_m": size,
        "workers": len(client.scheduler_info().get("workers", {})),
    }
    return pair_asset, pair_demand, where


def _gather(client: Any, futures: list[Any]) -> list[dict[str, np.ndarray]]:
    """Every partition's result, or :class:`PartitionLost` (the others cancelled) if one cannot run."""
    from distributed import KilledWorker

    try:
        return client.gather(futures)
    except KilledWorker as exc:
        client.cancel(futures)
        raise PartitionLost(f"a partition of the report lost every worker it ran on: {exc}") from exc


def client_counts(conn: psycopg.Connection[Any], request: ReportRequest) -> tuple[dict[str, int], np.ndarray]:
    """The asset counts of the summary and the sorted candidate ids of the area's box."""
    return asset_counts(conn, request)


def prioritise_pairs(
    request: ReportRequest,
    demand: Layer,
    candidate_ids: np.ndarray,
    pair_asset: np.ndarray,
    pair_demand: np.ndarray,
    conn: psycopg.Connection[Any] | None,
) -> Any:
    """The priorities from the combined reach pairs: the tail of :func:`geo.coverage.engine.prioritise`.

    The matrix is (every candidate of the box x the uncovered demand, in demand order), exactly
    the engine's; the greedy (or the certified choice) is then the same call on the same input.
    """
    households = demand.households
    covered = demand.distance <= request.radius
    if request.k == 0:
        return _priority_table([], households, covered, candidate_ids.dtype)
    open_ = np.flatnonzero(~covered & (households > 0))
    rows = np.searchsorted(candidate_ids, pair_asset)
    cols = np.searchsorted(open_, pair_demand)
    reach = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(candidate_ids), len(open_)), dtype=np.float64
    )
    reach.data[:] = 1.0
    weight = households[open_]
    if request.priorities_method == "greedy" and request.budget is None and conn is None:
        chosen = greedy_choice(reach, weight, candidate_ids, request.k)[0]
        return _priority_table(chosen, households, covered, candidate_ids.dtype)
    cost = None
    if request.budget is not None:
        assert conn is not None, "a budgeted prioritisation reads the candidates' costs"
        cost = candidate_costs(conn, candidate_ids, request).reindex(candidate_ids).to_numpy(dtype=float)
    try:
        chosen, certificate = choose(
            reach, weight, candidate_ids, request.k, method=request.priorities_method,  # type: ignore[arg-type]
            costs=cost, budget=request.budget, time_limit=request.time_limit,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidCoverageRequest(str(exc)) from exc
    table = _priority_table(chosen, households, covered, candidate_ids.dtype)
    if cost is not None:
        table["cost"] = (
            cost[np.searchsorted(candidate_ids, table["asset_id"].to_numpy())] if len(table) else []
        )
    table.attrs["certificate"] = certificate.as_dict()
    return table


__all__ = ["DataChanged", "PartitionLost", "certificate_of", "client_for", "close_clients", "scheduler_for"]
