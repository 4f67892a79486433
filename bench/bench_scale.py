"""The London 50 m coverage report on Dask: 1 and 2 local worker processes against one process.

Issue 18's figure: on the ``--scale london`` demo (bench/common.py's database), the 33 boroughs
with a 50 m grid demand (~630,000 cells, k 0), warm, through the service's own
:func:`geo.coverage.compute.compute_report`:

* in process (``CONNECTIVITY_DASK_SCHEDULER`` unset), median of ``BENCH_RUNS`` (default 3);
* on a ``LocalCluster`` of 1 and then 2 worker processes (one thread each), partitions of
  ``CONNECTIVITY_DASK_PARTITION_M`` (default 10 km), median of ``BENCH_RUNS`` after one warm-up
  report per cluster (the workers' demand caches fill in it, as a running cluster's would).

"Compute" is the report's ``nearest`` step on Dask: every partition read (bbox + halo from
PostGIS), indexed and measured, from submit to the last result. The speed-up is its 1-worker
median over its 2-worker median (target >= 1.7 on this 2-core machine); the Dask overhead is the
whole report on 2 workers against the whole report in process. Per-partition times come from
Dask's task stream; peak memory per worker from each worker's ``ru_maxrss``. The answers on
Dask are checked equal to the in-process ones.
Run: ``flock /tmp/pytest.lock .venv/bin/python bench/bench_scale.py``.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import BENCH_DB, london_database, machine, server_url, with_dbname  # noqa: E402

from geo.core.settings import CoverageSettings, DaskSettings  # noqa: E402
from geo.coverage import compute, distributed  # noqa: E402
from geo.coverage.request import parse_request  # noqa: E402
from geo.reference.boroughs import GSS_CODES  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reports(url: str, request: Any, spacing: float, runs: int) -> tuple[list[float], list[float], Any]:
    """Wall time of whole reports and of their ``nearest`` step; the last result."""
    totals, nearest, result = [], [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = compute.compute_report(url, request, spacing)
        totals.append(time.perf_counter() - t)
        nearest.append(result.timings["nearest"])
    return totals, nearest, result


def on_cluster(url: str, request: Any, spacing: float, workers: int) -> dict[str, Any]:
    """Reports on a fresh LocalCluster of ``workers`` processes: times, partitions, memory, result."""
    from distributed import LocalCluster, get_task_stream

    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        os.environ["CONNECTIVITY_DASK_SCHEDULER"] = cluster.scheduler_address
        try:
            client = distributed.client_for(cluster.scheduler_address)
            _reports(url, request, spacing, 1)  # warm-up: imports and the workers' demand caches
            with get_task_stream(client) as stream:
                totals, nearest, result = _reports(url, request, spacing, RUNS)
            parts = [
                s["stop"] - s["start"]
                for task in stream.data
                if str(task["key"]).startswith("partition_task")
                for s in task["startstops"]
                if s["action"] == "compute"
            ]
            memory = client.run(peak_rss_mib)
        finally:
            del os.environ["CONNECTIVITY_DASK_SCHEDULER"]
            distributed.close_clients()
    return {"totals": totals, "nearest": nearest, "parts": parts, "memory": memory, "result": result}


def _same(one: Any, many: Any) -> bool:
    summary = dict(many.summary)
    summary.pop("ran_on")
    return (
        summary == one.summary
        and np.array_equal(one.demand.distance, many.demand.distance)
        and np.array_equal(one.demand.asset_id, many.demand.asset_id)
    )


def _line(name: str, figures: dict[str, Any]) -> None:
    parts = figures["parts"]
    print(  # noqa: T201
        f"{name}: report {statistics.median(figures['totals']):.2f} s, nearest (compute) "
        f"{statistics.median(figures['nearest']):.2f} s  (runs {[round(t, 2) for t in figures['nearest']]}); "
        f"{len(parts) // RUNS} partitions, per partition median {statistics.median(parts):.3f} s, "
        f"max {max(parts):.3f} s, sum {sum(parts) / RUNS:.2f} s a report; "
        f"peak memory per worker {[round(m) for m in figures['memory'].values()]} MiB"
    )


def _database() -> str:
    """The London bench database; as it stands when another change's migration cannot apply to it."""
    from geo.db.database import MigrationError

    try:
        return london_database()
    except MigrationError as exc:
        print(f"note: the bench database is used unmigrated ({exc})")  # noqa: T201
        return with_dbname(server_url(), BENCH_DB)


def main() -> None:
    url = _database()
    print(f"machine: {machine()}")  # noqa: T201
    settings = CoverageSettings()
    os.environ["CONNECTIVITY_DASK_MIN_AREA_SQ_KM"] = "0"
    os.environ.pop("CONNECTIVITY_DASK_SCHEDULER", None)
    body = {"area": {"boroughs": list(GSS_CODES)}, "demand": "grid", "cell_size": 50, "k": 0}
    request = parse_request(body, settings)
    _reports(url, request, settings.spacing_m, 1)  # warm: the asset index, grid and borough union
    totals, nearest, one = _reports(url, request, settings.spacing_m, RUNS)
    request = one.request
    print(  # noqa: T201
        f"London 50 m grid: {len(one.demand.xy):,} cells, partitions of {DaskSettings().partition_m:g} m; "
        f"runs {RUNS}\nin process: report {statistics.median(totals):.2f} s "
        f"(runs {[round(t, 2) for t in totals]}), nearest {statistics.median(nearest):.2f} s; "
        f"peak memory {peak_rss_mib():.0f} MiB; stages {one.timings}"
    )
    figures = {n: on_cluster(url, request, settings.spacing_m, n) for n in (1, 2)}
    for n, f in figures.items():
        _line(f"{n} worker{'s' if n > 1 else ''}", f)
        print(f"  same answer as in process: {_same(one, f['result'])}; stages {f['result'].timings}")  # noqa: T201
    speedup = statistics.median(figures[1]["nearest"]) / statistics.median(figures[2]["nearest"])
    overhead = statistics.median(figures[2]["totals"]) / statistics.median(totals)
    print(  # noqa: T201
        f"speed-up of the compute, 1 -> 2 workers: {speedup:.2f}x "
        f"({'meets' if speedup >= 1.7 else 'MISSES'} target >= 1.7)\n"
        f"Dask overhead: the report on 2 workers takes {overhead:.2f}x the in-process report "
        f"({statistics.median(figures[2]['totals']) - statistics.median(totals):+.2f} s)"
    )


if __name__ == "__main__":
    main()
