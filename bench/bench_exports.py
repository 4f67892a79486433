"""A whole layer through OGC API Features against GDAL reading it straight from PostgreSQL, and the downloads.

On the ``--scale london`` demo (built once by ``bench/common.py``), the API in a process of its
own (uvicorn, as ``connectivity serve`` runs it), every run in the same session:

- **baseline**: ``ogr2ogr -f GPKG out.gpkg PG:… -sql <the layer's rows>``, GDAL reading the same
  rows and columns from PostgreSQL itself;
- **OAPIF**: ``ogr2ogr -f GPKG out.gpkg OAPIF:<service> street_furniture -oo PAGE_SIZE=10000``
  (GDAL pages through the GeoJSON items; 10,000 is the largest page);
- **f=gpkg**: the layer downloaded as the service's GeoPackage (what a GIS user gets from the
  collection's GeoPackage link), and as GeoParquet and FlatGeobuf, in features per second.

Each figure is the median of ``BENCH_RUNS`` runs (default 3), the ways interleaved; every
output's feature count is checked against the layer's. Targets (issue #16): OAPIF ≥ 0.5 × the
baseline's speed (time of the baseline / time through the API), GeoParquet and FlatGeobuf
≥ 100,000 features/s.

Run: ``.venv/bin/python bench/bench_exports.py``.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import gdal_version, london_database, machine  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LAYER = "street_furniture"
COLUMNS = (
    "id, kind, subtype, source_id, name, owner, status, borough_code, height_m, power_available, power_source, "
    "duct_diameter_mm, duct_spare_capacity_pct, rooftop_access, listed_building, conservation_area, "
    "positional_accuracy_m, survey_quality, last_surveyed, provenance, version, valid_from"
)


def serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": url, "CONNECTIVITY_UPLOAD_DIR": tempfile.mkdtemp()}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.3)


def pg_conninfo(url: str) -> str:
    """``PG:`` connection string of GDAL for ``url``."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    names = {"host": "host", "port": "port", "dbname": "dbname", "user": "user", "password": "password"}
    return "PG:" + " ".join(f"{names[k]}={v}" for k, v in params.items() if k in names)


def ogr2ogr(*args: str) -> None:
    result = subprocess.run(["ogr2ogr", *args], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]


def gpkg_count(path: Path) -> int:
    import pyogrio

    return int(pyogrio.read_info(path)["features"])


def download(base: str, fmt: str, target: Path) -> None:
    with httpx.stream("GET", f"{base}/collections/{LAYER}/items", params={"f": fmt}, timeout=600) as answer:
        assert answer.status_code == 200, answer.read()[:500]
        with target.open("wb") as out:
            for chunk in answer.iter_bytes():
                out.write(chunk)


def count(fmt: str, path: Path) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return gpkg_count(path)


def main() -> None:
    print(machine())
    print(gdal_version())
    url = london_database(lambda step, done, total: None)
    with psycopg.connect(url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL"
        ).fetchone()[0]  # type: ignore[index]
    print(f"layer {LAYER}: {n:,} features; median of {RUNS} runs")
    process, base = serve(url)
    folder = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    sql_text = f"SELECT {COLUMNS}, geom FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL ORDER BY id"
    ways: dict[str, Callable[[Path], None]] = {
        "baseline ogr2ogr PG:": lambda out: ogr2ogr("-f", "GPKG", str(out), pg_conninfo(url), "-sql", sql_text, "-nln", LAYER),
        "ogr2ogr OAPIF:": lambda out: ogr2ogr(
            "-f", "GPKG", str(out), f"OAPIF:{base}", LAYER, "-oo", "PAGE_SIZE=10000"
        ),
        "f=gpkg download": lambda out: download(base, "gpkg", out),
        "f=parquet download": lambda out: download(base, "parquet", out),
        "f=fgb download": lambda out: download(base, "fgb", out),
    }  # fmt: skip
    suffix = {"f=parquet download": "parquet", "f=fgb download": "fgb"}
    times: dict[str, list[float]] = {name: [] for name in ways}
    try:
        download(base, "parquet", folder / "warm.parquet")  # warm-up: the service's first request
        for run in range(RUNS):
            names = list(ways)
            for name in names[run % len(names) :] + names[: run % len(names)]:
                out = folder / f"{run}-{name.split()[0].replace('=', '')}.{suffix.get(name, 'gpkg')}"
                out.unlink(missing_ok=True)
                began = time.perf_counter()
                ways[name](out)
                times[name].append(time.perf_counter() - began)
                got = count(suffix.get(name, "gpkg"), out)
                assert got == n, (name, got, n)
                out.unlink()
    finally:
        process.terminate()
        process.wait(20)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base_time = medians["baseline ogr2ogr PG:"]
    for name, m in medians.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(
            f"  {name:<22} {m:7.2f} s  {n / m:>9,.0f} features/s  speed vs baseline {base_time / m:.2f}x  ({runs})"
        )
    print(
        f"targets: OAPIF >= 0.5x the baseline: {base_time / medians['ogr2ogr OAPIF:']:.2f}x; "
        f"GeoParquet {n / medians['f=parquet download']:,.0f} and FlatGeobuf "
        f"{n / medians['f=fgb download']:,.0f} features/s (>= 100,000)"
    )


if __name__ == "__main__":
    main()
