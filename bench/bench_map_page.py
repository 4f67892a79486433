"""``/map`` first render in Chromium on the London-scale demo, beside fetching its tiles alone.

First render: from navigation to the moment every tile layer on the map has its tiles and the
labels are placed (the HTML, the scripts and styles, the embedded boroughs, the first tiles and
clusters). Each run is a fresh browser context, so nothing is cached. Three views: London (the
choropleth, zoom 10), a borough framed (``?borough=E09000007``, each asset at zoom 13) and the
middle zoom (grid clusters, zoom 12). The baseline is the same tile and cluster requests the
page made, fetched by ``httpx`` over 6 connections (a browser's per-host limit) with nothing
else: what the tiles alone cost. Target (the web-app issue): first render <= 1.5 s.

Run: ``.venv/bin/python bench/bench_map_page.py`` (builds the London demo once, see ``common.py``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from browser import launch  # noqa: E402
from common import london_database, machine, with_dbname  # noqa: E402

from geo.core.settings import DatabaseSettings  # noqa: E402
from geo.db import database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("BENCH_PORT", "8097"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
VIEWS = {
    "London, zoom 10 (choropleth)": "/map",
    "Camden framed, zoom 13 (each asset)": "/map?borough=E09000007",
    "zoom 12 (grid clusters)": "/map#map=12/51.53500/-0.14000",
}
SETTLED = """() => { const cm = window.connectivityMap;
    return cm && ![...Object.values(cm.layers), cm.clusters].some((l) => cm.map.hasLayer(l) && l.isLoading())
        && document.querySelector('[data-legend] *') !== null; }"""


def serve(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "CONNECTIVITY_API_PORT": str(PORT)}
    command = [
        str(ROOT / ".venv/bin/uvicorn"),
        "--factory",
        "api.app:create_app",
        "--port",
        str(PORT),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("the service did not start")


def first_render(browser: object, path: str) -> tuple[float, list[str], int]:
    """Seconds to a settled map, the tile URLs it asked for, and the bytes it received."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    tiles: list[str] = []
    page.on("request", lambda r: tiles.append(r.url) if "/tiles/" in r.url or "/map/wards" in r.url else None)
    start = time.perf_counter()
    page.goto(f"http://127.0.0.1:{PORT}{path}", wait_until="domcontentloaded")
    while not page.evaluate(SETTLED):
        page.wait_for_timeout(10)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    seconds = time.perf_counter() - start
    received = page.evaluate(
        "() => performance.getEntriesByType('resource').reduce((n, e) => n + e.transferSize, 0)"
    )
    context.close()
    return seconds, tiles, int(received)


async def fetch_all(urls: list[str]) -> float:
    """Seconds to fetch ``urls`` over 6 connections, gzip accepted, nothing cached."""
    limits = httpx.Limits(max_connections=6)
    async with httpx.AsyncClient(limits=limits, headers={"Accept-Encoding": "gzip"}) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client.get(u, headers={"Cache-Control": "no-cache"}) for u in urls))
        return time.perf_counter() - start


def main() -> None:
    print(machine())
    owner = london_database(lambda step, done, total: print(f"  demo: {step} ({done}/{total})", flush=True))
    with psycopg.connect(owner) as conn:
        counts = dict(
            conn.execute(
                "SELECT kind, count(*) FROM assets WHERE retired_at IS NULL GROUP BY kind"
            ).fetchall()
        )
    print(f"data: {', '.join(f'{n:,} {k}' for k, n in sorted(counts.items()))}")
    app_url = with_dbname(database.database_url(DatabaseSettings(), start=False), owner.rsplit("/", 1)[1])
    server = serve(app_url)
    try:
        measured = {}
        with launch() as browser:
            first_render(browser, "/map")  # the service's first page warms its modules and pool
            for name, path in VIEWS.items():
                measured[name] = [first_render(browser, path) for _ in range(RUNS)]
        # After the browser: Playwright's sync API holds this thread's event loop while it runs.
        for name, runs in measured.items():
            times = [r[0] for r in runs]
            urls = runs[-1][1]
            baseline = statistics.median(asyncio.run(fetch_all(urls)) for _ in range(RUNS))
            median = statistics.median(times)
            print(
                f"{name}: first render median {median:.3f} s ({', '.join(f'{t:.3f}' for t in times)}), "
                f"{len(urls)} tile/cluster/ward requests, {runs[-1][2] / 1024:.0f} KiB received; "
                f"tiles alone {baseline:.3f} s; render / tiles {median / baseline if baseline else float('nan'):.1f}x; "
                f"target 1.5 s: {'met' if median <= 1.5 else 'NOT met'}"
            )
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
