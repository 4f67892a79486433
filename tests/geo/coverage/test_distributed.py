"""Partitioned coverage on Dask: the same report as one process, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from geo.coverage import distributed
from geo.coverage.compute import compute_report
from geo.coverage.sources import read_assets

BOROUGHS = ["E09000007", "E09000019", "E09000033"]  # Camden, Islington, Westminster
SIZE = 2000.0


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c
    distributed.close_clients()


@pytest.fixture
def on_dask(cluster, monkeypatch):
    monkeypatch.setenv("CONNECTIVITY_DASK_SCHEDULER", cluster.scheduler_address)
    monkeypatch.setenv("CONNECTIVITY_DASK_PARTITION_M", str(SIZE))
    monkeypatch.setenv("CONNECTIVITY_DASK_MIN_AREA_SQ_KM", "0")
    return cluster


def _same_nearest(a, b):
    """Equal distances and the same nearest asset (the smallest id between assets exactly as near)."""
    np.testing.assert_array_equal(a.distance, b.distance)
    np.testing.assert_array_equal(a.asset_id, b.asset_id)


def _same(one, many):
    assert many.summary.pop("ran_on")["partitions"] > 4
    one.summary["priorities"].pop("seconds", None)
    many.summary["priorities"].pop("seconds", None)
    assert one.summary == many.summary
    for a, b in ((one.demand, many.demand), (one.cells, many.cells)):
        _same_nearest(a, b)
    assert one.priorities.equals(many.priorities)
    assert one.gaps.drop(columns="geometry").equals(many.gaps.drop(columns="geometry"))
    assert all(a.equals(b) for a, b in zip(one.gaps.geometry, many.gaps.geometry, strict=True))


@pytest.mark.parametrize("thresholds", [[50, 100, 200], [25, 400]])
def test_partitioned_report_equals_one_process(
    db_url, conn, ask, coverage_settings, on_dask, monkeypatch, thresholds
):
    body = {"area": {"boroughs": BOROUGHS}, "thresholds": thresholds, "k": 10, "cell_size": 100}
    request = ask(conn, body)
    many = compute_report(db_url, request, coverage_settings.spacing_m)
    monkeypatch.delenv("CONNECTIVITY_DASK_SCHEDULER")
    one = compute_report(db_url, request, coverage_settings.spacing_m)
    # The test can fail: points near partition edges, and assets that only a halo holds.
    xy = many.demand.xy
    edge = np.minimum(xy % SIZE, SIZE - xy % SIZE).min(axis=1) < request.reach
    assert edge.sum() > 10 and (one.demand.distance[edge] < request.reach).any()
    assets = read_assets(db_url, request)
    pts, ids, _, _ = assets.qualifying()
    used = np.isin(ids, one.demand.asset_id[edge])
    key = np.floor(xy[edge] / SIZE)
    assert used.any() and len(np.unique(key, axis=0)) > 1
    assert one.summary["gaps"]["count"] > 0
    _same(one, many)


def test_a_kept_partition_serves_only_the_data_version_it_was_read_at(db_url, conn, ask, coverage_settings):
    from geo.coverage.sources import read_versions

    request = ask(conn, {"area": {"boroughs": ["E09000007"]}})
    versions = {layer: v[0] for layer, v in read_versions(conn).items() if layer != "database"}
    box = (528000.0, 182000.0, 530000.0, 184000.0)
    spacing = coverage_settings.spacing_m
    first = distributed.partition_assets(db_url, request, box, versions, spacing)
    assert len(first.assets.qualifying()[1]) > 0
    assert distributed.partition_assets(db_url, request, box, versions, spacing) is first
    newer = {**versions, "assets": versions["assets"] + 1}  # what the client would read after a change
    with pytest.raises(distributed.DataChanged):
        distributed.partition_assets(db_url, request, box, newer, spacing)
