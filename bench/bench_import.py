"""Importing a 500,000-point GeoPackage: ``connectivity import`` against ``ogr2ogr -f PostgreSQL``.

Three cases, each in a fresh database of the same server (PostgreSQL's default durability):
(a) into an empty assets table, (b) the same file again with nothing changed, (c) into a table
that already holds 500,000 other assets (indexes in place). In the same run, ogr2ogr loads the
same file into a fresh table with its default spatial index. Both run as separate processes
(ours is the CLI, interpreter start included); peak memory is the child's maximum RSS. The
ratio is of the medians; "paired" is the median of each run's own ratio (ogr2ogr and ours a
minute apart on the same shared machine), which the machine's noise moves less.
Run: ``.venv/bin/python bench/bench_import.py`` (``BENCH_ROWS`` to change the size).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyogrio
import shapely
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from common import gdal_version, machine, server_url, with_dbname  # noqa: E402

from geo.reference import model
from geo.reference.boroughs import load_boroughs, read_boundaries  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_ROWS", "500000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BOROUGH = "E09000006"  # Bromley, the largest borough
OTHER = "E09000017"  # Hillingdon, for case (c)
WORK = Path(os.environ.get("BENCH_DIR", "/tmp/connectivity-bench-import"))


def make_file(path: Path, borough: str, prefix: str, seed: int) -> None:
    """ROWS points inside ``borough`` with about eight typical attributes, in EPSG:27700."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    outline = read_boundaries().set_index("code").geometry[borough]
    x0, y0, x1, y1 = outline.bounds
    xs, ys = [], []
    shapely.prepare(outline)
    while sum(len(x) for x in xs) < ROWS:
        x = rng.uniform(x0, x1, ROWS)
        y = rng.uniform(y0, y1, ROWS)
        inside = shapely.contains_xy(outline, x, y)
        xs.append(x[inside])
        ys.append(y[inside])
    x = np.round(np.concatenate(xs)[:ROWS], 2)
    y = np.round(np.concatenate(ys)[:ROWS], 2)
    frame = pd.DataFrame(
        {
            "UNITNO": [f"{prefix}{i:07d}" for i in range(ROWS)],
            "TYPE": rng.choice(["Lamp Column", "CCTV", "Traffic Signal", "Street Cabinet"], ROWS),
            "HEIGHT": np.where(
                rng.random(ROWS) < 0.05, np.nan, rng.choice([5.0, 6.0, 8.0, 10.0, 12.0], ROWS)
            ),
            "HAS_POWER": rng.random(ROWS) < 0.9,
            "OWNER": rng.choice(["Bromley Council", "TfL", "Private"], ROWS),
            "STATUS": rng.choice(["In Service", "Planned", "Out of service"], ROWS, p=[0.9, 0.05, 0.05]),
            "STREET": rng.choice([f"Street {i}" for i in range(2000)], ROWS),
            "SURVEYED": pd.to_datetime("2015-01-01") + pd.to_timedelta(rng.integers(0, 3650, ROWS), unit="D"),
        }
    )
    frame["SURVEYED"] = frame["SURVEYED"].dt.date
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x, y), crs=27700)
    tmp = path.with_suffix(".tmp.gpkg")
    pyogrio.write_dataframe(gdf, tmp, layer="street_lighting")
    # Rewritten by Debian's ogr2ogr (GPKG 1.2), so the baseline reads it without a version warning.
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(path), str(tmp)], check=True)
    tmp.unlink()


def fresh_database(name: str) -> str:
    server = server_url()
    with psycopg.connect(with_dbname(server, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(server, name)
    with psycopg.connect(url) as conn:
        model.migrate(conn)
        load_boroughs(conn)
        conn.commit()
    return url


def settle(url: str) -> None:
    """What autovacuum would do between loads, and a checkpoint, so runs start alike."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def ours(url: str, path: Path, borough: str) -> tuple[float, float]:
    cli = str(ROOT / ".venv" / "bin" / "connectivity")
    return timed(
        [cli, "import", str(path), "--borough", borough, "--kind", "street_furniture"],
        {"DATABASE_URL": url, "CONNECTIVITY_UPLOAD_DIR": str(WORK / "uploads"), "COLUMNS": "200"},
    )


def ogr2ogr(url: str, path: Path) -> tuple[float, float]:
    return timed(["ogr2ogr", "-f", "PostgreSQL", f"PG:{url}", str(path), "-nln", "ogr_points", "-overwrite"])


def peak_rss_of_one(url: str, path: Path, borough: str) -> float:
    """Peak RSS of one import in a child (RUSAGE_CHILDREN keeps the maximum over all children)."""
    code = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cli = str(ROOT / ".venv" / "bin" / "connectivity")
    out = subprocess.run(
        [sys.executable, "-c", code, cli, "import", str(path), "--borough", borough, "--kind", "street_furniture"],
        env={**os.environ, "DATABASE_URL": url, "CONNECTIVITY_UPLOAD_DIR": str(WORK / "uploads")},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.strip()) / 1024


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    print(machine())
    print(gdal_version())
    points = WORK / f"bromley_{ROWS}.gpkg"
    others = WORK / f"hillingdon_{ROWS}.gpkg"
    make_file(points, BOROUGH, "BR", 1)
    make_file(others, OTHER, "HI", 2)
    print(
        f"file: {points.name}, {ROWS:,} points, {points.stat().st_size / 2**20:.0f} MB; median of {RUNS} runs\n"
    )
    results: dict[str, list[float]] = {k: [] for k in ("ogr", "a", "b", "c")}
    peaks: list[float] = []
    for run in range(RUNS):
        url = fresh_database("bench_import_ogr")
        results["ogr"].append(ogr2ogr(url, points)[0])
        url = fresh_database("bench_import")
        t, _ = ours(url, points, BOROUGH)
        results["a"].append(t)
        settle(url)
        t, _ = ours(url, points, BOROUGH)
        results["b"].append(t)
        url = fresh_database("bench_import")
        ours(url, others, OTHER)  # untimed: the 500,000 other assets
        settle(url)
        t, _ = ours(url, points, BOROUGH)
        results["c"].append(t)
        print(f"  run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()), flush=True)
    url = fresh_database("bench_import")
    peaks.append(peak_rss_of_one(url, points, BOROUGH))
    base = statistics.median(results["ogr"])
    print(f"\n{'case':<52} {'seconds':>8} {'rows/s':>9} {'ogr2ogr/ours':>13} {'paired':>7}")
    print(
        f"{'ogr2ogr -f PostgreSQL (fresh table, default GiST)':<52} {base:>8.2f} {ROWS / base:>9.0f} {'':>13}"
    )
    labels = {
        "a": "(a) ours into an empty assets table",
        "b": "(b) ours, the same file again (nothing changed)",
        "c": "(c) ours into a table holding 500,000 other assets",
    }
    targets = {"a": 0.7, "b": 1.5, "c": 0.5}
    for key, label in labels.items():
        t = statistics.median(results[key])
        ratio = base / t
        # Each run's own ratio too: ogr2ogr and ours see the same moment of a shared machine.
        paired = statistics.median(o / x for o, x in zip(results["ogr"], results[key], strict=True))
        verdict = "meets" if ratio >= targets[key] else "misses"
        print(
            f"{label:<52} {t:>8.2f} {ROWS / t:>9.0f} {ratio:>13.2f} {paired:>7.2f}  ({verdict} target {targets[key]})"
        )
    print(f"\npeak memory of one import (CLI process): {max(peaks):.0f} MB (target <= 1024 MB)")
    with psycopg.connect(with_dbname(server_url(), "postgres"), autocommit=True) as admin:
        for name in ("bench_import", "bench_import_ogr"):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
