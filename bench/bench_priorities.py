"""Prioritisation with a certificate over London: greedy alone, greedy with its LP bound, budgeted.

Target (issue #17): k = 50 over London with its LP bound <= 10 s; the proven gap printed for
k = 10, 50 and 200. The same London postcode demand, candidates and reach matrix as a report
(:func:`geo.coverage.engine.prioritise` on the report's cached candidate index), the plain greedy
(the baseline, as reports ran before) side by side in the same run.

Run: ``flock /tmp/pytest.lock .venv/bin/python bench/bench_priorities.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import psycopg

sys.path.insert(0, os.path.dirname(__file__))

from bench_coverage import machine, prepare  # noqa: E402

from geo.core.settings import CoverageSettings  # noqa: E402
from geo.coverage import compute, demand_layers  # noqa: E402
from geo.coverage.cache import indexed_assets  # noqa: E402
from geo.coverage.costs import candidate_costs  # noqa: E402
from geo.coverage.engine import prioritise  # noqa: E402
from geo.coverage.request import parse_request  # noqa: E402
from geo.coverage.sources import read_versions  # noqa: E402
from geo.reference.boroughs import GSS_CODES  # noqa: E402

RUNS = 3


def timed(work, runs: int = RUNS):
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


def main() -> None:
    url = prepare()
    print(f"machine: {machine()}")  # noqa: T201
    settings = CoverageSettings()
    demand_layers._postcodes()
    body = {"area": {"boroughs": list(GSS_CODES)}, "k": 0, "budget": 50.0}
    result = compute.compute_report(url, parse_request(body, settings), settings.spacing_m)
    request, demand = result.request, result.demand
    with psycopg.connect(url) as conn:
        entry = indexed_assets(url, request, settings.spacing_m, read_versions(conn))
        cpts, cids, clines, clids = entry.assets.candidates()
        costs = candidate_costs(conn, np.concatenate([cids, clids]), request)
    index = entry.candidate_index(settings.spacing_m)
    open_ = int((~(demand.distance <= request.radius) & (demand.households > 0)).sum())
    print(  # noqa: T201
        f"London: {len(demand.xy):,} postcodes ({open_:,} beyond {request.radius:g} m of a qualifying asset), "
        f"candidates {len(cpts):,} points + {len(clines):,} lines/polygons; radius {request.radius:g} m"
    )
    args = (demand.xy, demand.households, demand.distance, cpts, cids, clines, clids)
    common = {"radius": request.radius, "spacing": settings.spacing_m, "index": index, "time_limit": 30.0}
    for k in (10, 50, 200):
        runs = RUNS if k == 50 else 1
        t_plain, _, _ = timed(lambda k=k: prioritise(*args, k=k, **common), runs)
        t_cert, times, table = timed(lambda k=k: prioritise(*args, k=k, certify=True, **common), runs)
        c = table.attrs["certificate"]
        target = f"; target <= 10 s: {'meets' if t_cert <= 10 else 'MISSES'}" if k == 50 else ""
        print(  # noqa: T201
            f"k = {k}: greedy {t_plain:.3f} s; with LP bound {t_cert:.3f} s (runs {[round(t, 3) for t in times]}, "
            f"x{t_cert / t_plain:.1f} the greedy){target}\n"
            f"  added {c['value']:,.0f} households; bound {c['bound']:,.0f} ({c['bound_source']}, LP {c['lp_status']}, "
            f"{c['candidates']:,} candidates x {c['demand_rows']:,} merged demand rows); "
            f"proven gap {100 * c['gap']:.3f}%"
        )
    t_budget, _, table = timed(lambda: prioritise(*args, k=200, costs=costs, budget=50.0, **common), 1)
    c = table.attrs["certificate"]
    print(  # noqa: T201
        f"budgeted (budget 50, default costs, at most 200 sites): {t_budget:.3f} s; {len(table)} sites cost "
        f"{c['spent']:.2f}, added {c['value']:,.0f}; bound {c['bound']:,.0f} ({c['lp_status']}); "
        f"proven gap {100 * c['gap']:.3f}%"
    )


if __name__ == "__main__":
    main()
