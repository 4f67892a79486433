"""London-wide coverage reports on the ``--scale london`` demo, end to end, against two baselines.

Builds (once) the database ``bench_coverage`` on the project's PostGIS (the embedded cluster or
DATABASE_URL's server), migrates it and loads the London demo. Then, warm and in process,
with the same code the service runs (:func:`geo.coverage.compute.compute_report`, from the
database to the finished summary, no prioritisation, nothing stored):

* a 100 m grid (~160,000 cells) and a 50 m grid (~630,000 cells) over the 33 boroughs;
* on the same cells and qualifying assets: geopandas ``sjoin_nearest`` (compute only, data in
  memory) and a PostGIS KNN query (``CROSS JOIN LATERAL ... ORDER BY geom <-> cell LIMIT 1``),
  run on a systematic sample of the cells and extrapolated (said in the output);
* a single-borough report (Camden, postcodes, k=10) through the API (TestClient), stored and
  answered, median of 5.

"Cold" is the first report with the process's caches emptied (the asset index, grids and
borough unions; the postcode file stays loaded), "warm" the median of 3 reports after it, as
a running service sees them. Storage (gap polygons and ``store_result``) is timed apart.
Prints the machine, the sizes, medians and the ratios against the targets of issue 6. Run: ``.venv/bin/python bench/bench_coverage.py``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from urllib.parse import urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from psycopg import sql

from geo.access.principals import Principal
from geo.core.settings import CoverageSettings, DatabaseSettings, Settings
from geo.coverage import cache, compute, demand_layers, sources, store
from geo.coverage.request import parse_request
from geo.db import database
from geo.reference import model
from geo.reference.boroughs import GSS_CODES

NAME = "bench_coverage"
RUNS = 3
BENCH = Principal(role="admin", label="bench")  # who history and the audit trail say wrote


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def prepare() -> str:
    """The URL of the bench database, created, migrated and loaded when needed."""
    from geo.demo import load_demo

    server = database.owner_url(DatabaseSettings())
    with psycopg.connect(_with_db(server, "postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [NAME]).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(NAME)))
    url = _with_db(server, NAME)
    with psycopg.connect(url) as conn:
        model.migrate(conn)
        (n,) = conn.execute("SELECT count(*) FROM assets").fetchone()  # type: ignore[misc]
        if n == 0:
            t = time.perf_counter()
            print("loading the London demo (once)...", flush=True)  # noqa: T201
            load_demo(conn, "london")
            conn.commit()
            print(f"  loaded in {time.perf_counter() - t:.0f} s", flush=True)  # noqa: T201
    return url


def median(fn, runs: int = RUNS) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def machine() -> str:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in open("/proc/meminfo") if x.startswith("MemTotal")) / 2**20
    except OSError:
        mem = float("nan")
    return f"{platform.node()}: {model or platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB, Python {platform.python_version()}"


KNN_SQL = """
SELECT count(*) FILTER (WHERE d <= 50), count(*) FILTER (WHERE d <= 100), count(*) FILTER (WHERE d <= 200), count(*)
FROM bench_cells c
CROSS JOIN LATERAL (
    SELECT ST_Distance(a.geom, c.geom) AS d FROM assets a
    WHERE a.retired_at IS NULL AND a.status = ANY(%(statuses)s)
    ORDER BY a.geom <-> c.geom LIMIT 1) n
"""


def postgis_knn(url: str, xy: np.ndarray, statuses: list[str], step: int) -> tuple[float, int]:
    sample = xy[::step]
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE bench_cells (geom geometry(Point, 27700))")
        with conn.cursor().copy("COPY bench_cells (geom) FROM STDIN") as copy:
            for x, y in sample:
                copy.write_row([f"SRID=27700;POINT({x} {y})"])
        conn.execute("ANALYZE bench_cells")
        t = time.perf_counter()
        conn.execute(KNN_SQL, {"statuses": statuses}).fetchone()
        elapsed = time.perf_counter() - t
    return elapsed * step, len(sample)


def api_single_borough(url: str, runs: int = 5) -> tuple[float, dict]:
    """Median time of ``POST /coverage/reports`` for Camden (postcodes, k=10, computed and stored)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo import access

    async def key() -> str:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            return (await access.create_key(c, "operator", label="bench", actor=BENCH)).key

    headers = {"Authorization": f"Bearer {asyncio.run(key())}"}
    body = {"area": {"boroughs": ["E09000007"]}, "demand": "postcodes", "k": 10}
    timings: dict = {}
    with TestClient(create_app(Settings(db=DatabaseSettings(url=url)))) as client:
        client.post("/coverage/reports", json=body, headers=headers)  # warm: postcodes, grids, imports

        def once() -> None:
            answer = client.post("/coverage/reports", json=body, headers=headers)
            assert answer.status_code == 201 and answer.json()["state"] == "done", answer.text
            timings.update(answer.json()["timings"])

        t, _ = median(once, runs)
    return t, timings


def clear_caches() -> None:
    """Forget what a running service keeps between reports (the postcode file stays loaded)."""
    cache.ASSET_INDEXES.clear()
    cache._PROJECTS.clear()
    for cached in (
        demand_layers._grid,
        demand_layers._cell_households,
        demand_layers._postcodes_in,
        sources._borough_union,
    ):
        cached.cache_clear()


def ratio(value: float, target: float, better: str) -> str:
    ok = value <= target if better == "lower" else value >= target
    return f"{'meets' if ok else 'MISSES'} target {'<=' if better == 'lower' else '>='} {target:g}"


def main() -> None:
    url = prepare()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} (shared: expect noise)")  # noqa: T201
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")  # noqa: T201
    with psycopg.connect(url) as conn:
        counts = dict(
            conn.execute(
                "SELECT kind, count(*) FROM assets WHERE retired_at IS NULL GROUP BY kind"
            ).fetchall()
        )
        km = conn.execute("SELECT sum(ST_Length(geom)) / 1000 FROM assets WHERE kind = 'duct'").fetchone()[0]
    print(f"assets: {counts} (ducts {km:,.0f} km)")  # noqa: T201
    settings = CoverageSettings()
    demand_layers._postcodes()  # the postcode layer is read once per process, like imports
    for cell in (100, 50):
        body = {"area": {"boroughs": list(GSS_CODES)}, "demand": "grid", "cell_size": cell, "k": 0}
        request = parse_request(body, settings)
        clear_caches()
        t = time.perf_counter()
        # Empty caches: reads and indexes the assets.
        cold = compute.compute_report(url, request, settings.spacing_m)
        t_cold = time.perf_counter() - t
        t_ours, result = median(
            lambda request=request: compute.compute_report(url, request, settings.spacing_m)
        )
        request = result.request
        assets = sources.read_assets(url, request)
        pts, pids, lines, lids = assets.qualifying()
        grid = result.demand
        print(  # noqa: T201
            f"\n{cell} m grid: {len(grid.xy):,} cells; qualifying {len(pts):,} points + {len(lines):,} ducts; "
            f"candidates {assets.counts()['candidate_points']:,} points + {assets.counts()['candidate_lines']:,} ducts"
        )
        print(f"  report cold (empty caches: assets read and indexed): {t_cold:.3f} s; stages {cold.timings}")  # noqa: T201
        print(
            f"  report warm (DB -> summary, in process, median of {RUNS}): {t_ours:.3f} s; stages {result.timings}"
        )  # noqa: T201
        shares = {r["threshold_m"]: round(r["area_share"], 5) for r in result.summary["whole_area"]}
        same_cold = cold.summary == result.summary and np.array_equal(cold.demand.distance, grid.distance)
        print(f"  area share covered: {shares}; cold and warm answers identical: {same_cold}")  # noqa: T201
        t = time.perf_counter()
        _ = result.gaps  # the polygons, built for storage only
        t_poly = time.perf_counter() - t
        with psycopg.connect(url) as conn:  # stored in a transaction rolled back
            report_id = store.create_report(conn, request, BENCH)
            t = time.perf_counter()
            store.store_result(conn, report_id, result)
            t_store = time.perf_counter() - t
            conn.rollback()
        print(  # noqa: T201
            f"  storage (not in the figure above): gap polygons {t_poly:.3f} s ({len(result.gaps):,} gaps), "
            f"store_result {t_store:.3f} s"
        )

        cells = gpd.GeoDataFrame(geometry=shapely.points(grid.xy), crs="EPSG:27700")
        frame = gpd.GeoDataFrame(
            {"asset_id": np.concatenate([pids, lids])},
            geometry=np.concatenate([shapely.points(pts), lines]),
            crs="EPSG:27700",
        )
        t_gpd, joined = median(
            lambda cells=cells, frame=frame: gpd.sjoin_nearest(cells, frame, distance_col="d")
        )
        joined = joined[~joined.index.duplicated()]
        d = joined["d"].to_numpy()
        gpd_shares = {t: round(float((d <= t).mean()), 5) for t in request.thresholds}
        same = np.allclose(
            np.where(np.isfinite(grid.distance), grid.distance, 0), np.where(np.isfinite(grid.distance), d, 0)
        )
        print(  # noqa: T201
            f"  geopandas sjoin_nearest (compute only, same cells and assets in memory): median {t_gpd:.3f} s; "
            f"shares {gpd_shares}; distances equal: {same}"
        )

        step = 20 if cell == 50 else 10
        t_knn, sampled = postgis_knn(url, grid.xy, list(request.statuses), step)
        print(  # noqa: T201
            f"  PostGIS KNN LATERAL: 1 run on a 1-in-{step} systematic sample ({sampled:,} cells), "
            f"extrapolated x{step}: {t_knn:.1f} s"
        )
        print(  # noqa: T201
            f"  ratios (warm): report {t_ours:.3f} s ({ratio(t_ours, 0.8, 'lower')} s); "
            f"sjoin_nearest / report {t_gpd / t_ours:.1f}x ({ratio(t_gpd / t_ours, 5, 'higher')}x); "
            f"PostGIS KNN / report {t_knn / t_ours:.0f}x ({ratio(t_knn / t_ours, 20, 'higher')}x)"
        )
        print(  # noqa: T201
            f"  ratios (cold): sjoin_nearest / report {t_gpd / t_cold:.1f}x; PostGIS KNN / report {t_knn / t_cold:.0f}x"
        )
    t_api, timings = api_single_borough(url)
    print(  # noqa: T201
        f"\nsingle-borough report through the API (Camden, postcodes, k=10, computed and stored, TestClient): "
        f"median of 5 {t_api * 1000:.0f} ms ({ratio(t_api * 1000, 300, 'lower')} ms); last stages {timings}"
    )


if __name__ == "__main__":
    main()
