"""Vector tiles and a features page: this service against tipg, side by side on the same data.

On the ``--scale london`` demo (built once by ``bench/common.py``). Both servers run under
uvicorn with the same set-up (2 worker processes, uvloop + httptools) and are loaded by
``wrk`` with 16 connections over a spread of London tiles per zoom. tipg serves the same
street-furniture rows from the same Web Mercator column with the same attributes (through a
view on ``assets``). Ours runs twice: without its tile cache (each request makes its tile,
as tipg's do) and as shipped (finished tiles kept per worker). Run: ``.venv/bin/python bench/bench_tiles.py`` (installs tipg into
``bench/.venv-tipg`` on first use).
"""

from __future__ import annotations

import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import london_database, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIPG_VENV = ROOT / "bench" / ".venv-tipg"
ZOOMS = (8, 10, 12, 14, 16)
PROPS = ("id", "subtype", "status")  # the same attributes our tiles carry (geo.layers.collections)
DURATION = int(os.environ.get("BENCH_SECONDS", "10"))
# Two connections per worker, kept open (PERFORMANCE.md: on 2 cores a pool of 2 beat 4 or 8).
POOL = {"CONNECTIVITY_DB_POOL_MIN_SIZE": "2", "CONNECTIVITY_DB_POOL_MAX_SIZE": "2"}
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
#: ``features``: only the features pages (the tiles take most of the run).
ONLY = os.environ.get("BENCH_ONLY", "")
VIEW = f"""
DROP VIEW IF EXISTS tipg_street_furniture;
CREATE VIEW tipg_street_furniture AS
SELECT {", ".join(PROPS)}, geom_3857 FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL
"""


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def london_tiles(url: str, z: int, count: int = 40) -> list[tuple[int, int, int]]:
    """Tiles over the assets themselves (a random sample of their positions), without repeats."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(geom, 4326) AS p FROM assets
               WHERE kind = 'street_furniture' AND id % 997 = 0) s"""
        ).fetchall()
    random.Random(z).shuffle(rows)
    tiles: list[tuple[int, int, int]] = []
    for lon, lat in rows:
        t = tile_of(lon, lat, z)
        if t not in tiles:
            tiles.append(t)
        if len(tiles) == count:
            break
    return tiles


def ensure_tipg() -> Path:
    if not (TIPG_VENV / "bin" / "uvicorn").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run(
            [str(TIPG_VENV / "bin" / "pip"), "install", "-q", "tipg", "uvicorn[standard]"], check=True
        )
    return TIPG_VENV / "bin" / "uvicorn"


def start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not start: {cmd}\n{proc.stderr.read().decode() if proc.stderr else ''}")


def wrk(base: str, paths: list[str], seconds: int = DURATION) -> dict[str, float]:
    """requests/s, p50 and p99 (ms) of wrk with 16 connections cycling through ``paths``."""
    lua = "paths = {" + ",".join(f'"{p}"' for p in paths) + "}\ni = 0\n"
    lua += "request = function()\n  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", f.name, base],
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "errors": int(errors.group(1)) if errors else 0}


def median_wrk(base: str, paths: list[str]) -> dict[str, float]:
    wrk(base, paths, seconds=5)  # warm-up, not counted: connections opened, caches filled
    runs = [wrk(base, paths) for _ in range(RUNS)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def sizes_and_single_latency(base: str, paths: list[str]) -> tuple[int, int, float]:
    """Largest and median tile size (bytes), and the worst median single-request latency (ms)."""
    sizes, worst = [], 0.0
    with httpx.Client(base_url=base, timeout=30) as client:
        for p in paths:
            times = []
            for _ in range(5):
                start = time.perf_counter()
                body = client.get(p).content
                times.append((time.perf_counter() - start) * 1000)
            sizes.append(len(body))
            worst = max(worst, statistics.median(times))
    return max(sizes), int(statistics.median(sizes)), worst


def main() -> None:
    print(machine())
    url = london_database(lambda step, done, total: print(f"  building the London demo: {step}", flush=True))
    with psycopg.connect(url) as conn:
        conn.execute(VIEW)
        conn.commit()
        n = conn.execute("SELECT count(*) FROM assets WHERE kind = 'street_furniture'").fetchone()[0]  # type: ignore[index]
    print(
        f"street furniture: {n:,} points; {DURATION} s per wrk run, median of {RUNS} runs, 16 connections\n"
    )
    tipg = ensure_tipg()
    asyncpg_url = url.replace("postgresql://", "postgresql://", 1)
    # Ours twice: without the tile cache (every request makes its tile, as tipg does) and as
    # shipped (finished tiles kept per worker, keyed by the data version).
    ours = start(
        [str(ROOT / ".venv/bin/uvicorn"), "api.app:create_app", "--factory", "--workers", "2", "--no-access-log",
         "--host", "127.0.0.1", "--port", "8101", "--log-level", "warning"],
        {"DATABASE_URL": url, **POOL, "CONNECTIVITY_TILES_CACHE_MB": "0"}, 8101,
    )  # fmt: skip
    cached = start(
        [str(ROOT / ".venv/bin/uvicorn"), "api.app:create_app", "--factory", "--workers", "2", "--no-access-log",
         "--host", "127.0.0.1", "--port", "8103", "--log-level", "warning"],
        {"DATABASE_URL": url, **POOL}, 8103,
    )  # fmt: skip
    theirs = start(
        [str(tipg), "tipg.main:app", "--workers", "2", "--no-access-log", "--host", "127.0.0.1", "--port", "8102",
         "--log-level", "warning"],
        {"DATABASE_URL": asyncpg_url, "TIPG_DB_TABLES": '["public.tipg_street_furniture"]',
         "TIPG_DB_EXCLUDE_FUNCTION_SCHEMAS": '["public"]', "TIPG_SET_MVT_LAYERNAME": "true"}, 8102,
    )  # fmt: skip
    props = ",".join(p for p in PROPS if p != "id")
    try:
        print(f"{'zoom':>4} {'tiles':>5} | {'ours req/s':>10} {'p50':>6} {'p99':>6} {'max KB':>7} {'med KB':>6} {'1-req ms':>8} | "
              f"{'tipg req/s':>10} {'p50':>6} {'p99':>6} {'max KB':>7} | {'ratio':>5} | "
              f"{'cached req/s':>12} {'p99':>6} {'ratio':>6}")  # fmt: skip
        for z in ZOOMS if ONLY != "features" else []:
            tiles = london_tiles(url, z)
            our_paths = [f"/tiles/street_furniture/{z}/{x}/{y}.mvt" for z, x, y in tiles]
            tipg_paths = [
                f"/collections/public.tipg_street_furniture/tiles/WebMercatorQuad/{z}/{x}/{y}"
                f"?geom-column=geom_3857&properties={props}"
                for z, x, y in tiles
            ]
            a, b, c = (
                median_wrk("http://127.0.0.1:8101", our_paths),
                median_wrk("http://127.0.0.1:8102", tipg_paths),
                median_wrk("http://127.0.0.1:8103", our_paths),
            )
            a_max, a_median, a_single = sizes_and_single_latency("http://127.0.0.1:8101", our_paths)
            b_max, _, _ = sizes_and_single_latency("http://127.0.0.1:8102", tipg_paths)
            print(
                f"{z:>4} {len(tiles):>5} | {a['rps']:>10.0f} {a['p50']:>6.1f} {a['p99']:>6.1f} {a_max / 1024:>7.1f} {a_median / 1024:>6.1f} "
                f"{a_single:>8.1f} | {b['rps']:>10.0f} {b['p50']:>6.1f} {b['p99']:>6.1f} {b_max / 1024:>7.1f} | "
                f"{a['rps'] / b['rps']:>5.2f} | {c['rps']:>12.0f} {c['p99']:>6.1f} {c['rps'] / b['rps']:>6.2f}"
                + (
                    f"  (non-2xx: ours {a['errors']:.0f}, tipg {b['errors']:.0f})"
                    if a["errors"] or b["errors"]
                    else ""
                )
            )
        bbox = "-0.15,51.50,-0.10,51.53"
        page = median_wrk(
            "http://127.0.0.1:8101", [f"/collections/street_furniture/items?bbox={bbox}&limit=100"]
        )
        tpage = median_wrk(
            "http://127.0.0.1:8102",
            [f"/collections/public.tipg_street_furniture/items?bbox={bbox}&limit=100"],
        )
        print(
            f"\nfeatures page (bbox {bbox}, limit 100): ours {page['rps']:.0f} req/s p99 {page['p99']:.1f} ms; "
            f"tipg {tpage['rps']:.0f} req/s p99 {tpage['p99']:.1f} ms; ratio {page['rps'] / tpage['rps']:.2f}"
        )
    finally:
        for proc in (ours, theirs, cached):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
