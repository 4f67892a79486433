"""The upload page's preview of a 30,000-row file: from choosing the file to the error table, in Chromium.

On the ``--scale london`` demo database (``common.london_database()``, built once), the app is
served by uvicorn in this process; a Camden borough key is made for the run. The file holds
30,000 street lights inside Camden (new source ids, 1 % of the rows with an error), written once as
a GeoPackage in British National Grid and as a GeoJSON in WGS84.

* **page**: Playwright + Debian's Chromium on ``/app/uploads``, signed in; the clock runs from
  ``set_input_files`` (choosing the file) through the click on "Preview the upload" until the
  preview's error table and counts are shown (the page's XMLHttpRequest upload, its polling
  every 250 ms, ``errors.geojson``, the rendering); then on until the map is drawn (the
  page's ``rows.geojson``, 5,000 of the rows, with the borough's outline, drawn by Leaflet);
* **API** (the baseline): the same file as a ``POST /uploads`` dry run with httpx, then
  ``GET /uploads/{id}`` every 50 ms until it is previewed; and ``GET /uploads/{id}/rows.geojson``
  (the map's 5,000 rows) alone, after it.

One warm-up run of each first (the job's process, GDAL), then the median of ``BENCH_RUNS`` (3).
Prints the machine, the file sizes, the medians, every run and the ratio page / API.
Run: ``.venv/bin/python bench/bench_upload_page.py`` (``BENCH_ROWS`` to change the size).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pyogrio
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests" / "support"))
os.environ.setdefault("CONNECTIVITY_UPLOAD_DIR", tempfile.mkdtemp(prefix="bench-upload-page-"))
from common import london_database, machine  # noqa: E402

from geo.access.principals import Principal  # noqa: E402
from geo.core.settings import DatabaseSettings, Settings  # noqa: E402
from geo.reference.boroughs import read_boundaries  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "30000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CAMDEN = "E09000007"
WORK = Path(os.environ.get("BENCH_DIR", "/tmp/connectivity-bench-upload-page"))
BENCH = Principal(role="admin", label="bench")


def make_files() -> list[Path]:
    """ROWS points inside Camden with typical street-lighting columns; every 100th row has an error."""
    WORK.mkdir(parents=True, exist_ok=True)
    gpkg, geojson = WORK / f"camden-lights-{ROWS}.gpkg", WORK / f"camden-lights-{ROWS}.geojson"
    if gpkg.exists() and geojson.exists():
        return [gpkg, geojson]
    rng = np.random.default_rng(7)
    outline = read_boundaries().set_index("code").geometry[CAMDEN]
    shapely.prepare(outline)
    x0, y0, x1, y1 = outline.bounds
    x = rng.uniform(x0, x1, ROWS * 3)
    y = rng.uniform(y0, y1, ROWS * 3)
    inside = shapely.contains_xy(outline, x, y)
    x, y = x[inside][:ROWS], y[inside][:ROWS]
    n = np.arange(ROWS)
    frame = gpd.GeoDataFrame(
        {
            "UNITNO": [f"BENCH-PAGE-{i:06d}" for i in n],
            "TYPE": np.where(n % 100 == 0, "Flux capacitor", "Lamp Column"),
            "HEIGHT": np.where(n % 100 == 50, -1.0, np.where(n % 3 == 0, 8.0, 10.0)),
            "STATUS": "Live",
            "LOCN": [f"Street {i % 400}" for i in n],
            "WARD": "Camden",
        },
        geometry=gpd.points_from_xy(np.round(x, 2), np.round(y, 2)),
        crs=27700,
    )
    pyogrio.write_dataframe(frame, gpkg, layer="lights")
    pyogrio.write_dataframe(frame.to_crs(4326), geojson, driver="GeoJSON")
    return [gpkg, geojson]


def camden_key(url: str) -> str:
    from geo import access

    async def make() -> str:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            return (await access.create_key(c, "borough", CAMDEN, "upload page bench", actor=BENCH)).key

    return asyncio.run(make())


def api_once(base: str, key: str, path: Path) -> tuple[float, float]:
    """POST the file as a dry run and poll until it is previewed; then GET its map's rows; seconds of each."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=120) as client:
        start = time.perf_counter()
        with open(path, "rb") as f:
            answer = client.post(
                "/uploads",
                files={"file": (path.name, f)},
                data={"borough": CAMDEN, "kind": "street_furniture", "dry_run": "true"},
                headers=headers,
            )
        assert answer.status_code == 202, answer.text
        while (record := client.get(f"/uploads/{answer.json()['id']}", headers=headers).json())["state"] in (
            "queued",
            "running",
        ):
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        assert record["state"] == "previewed", record
        start = time.perf_counter()
        rows = client.get(f"/uploads/{record['id']}/rows.geojson", params={"limit": 5000}, headers=headers)
        mapped = time.perf_counter() - start
    assert rows.status_code == 200 and rows.json()["numberReturned"] == 5000, rows.text[:200]
    return elapsed, mapped


def page_once(browser: object, base: str, key: str, path: Path) -> tuple[float, float]:
    """Choose the file on the page, preview it, wait for the error table, then the map; seconds to each."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{base}/app/uploads", wait_until="networkidle")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("[data-upload-form]", state="visible")
    page.select_option("#kind", "street_furniture")
    start = time.perf_counter()
    page.set_input_files("#file", str(path))
    page.get_by_role("button", name="Preview the upload").click()
    page.wait_for_selector("[data-errors-rows] tr", state="visible")
    page.wait_for_selector("[data-count=new]", state="visible")
    elapsed = time.perf_counter() - start
    page.locator("[data-map-note]", has_text="Showing").wait_for()
    mapped = time.perf_counter() - start
    shown = page.locator("[data-count=invalid] .app-count__number").inner_text()
    note = page.locator("[data-map-note]").inner_text()
    context.close()
    assert shown.replace(",", "") == str(len(range(0, ROWS, 100)) + len(range(50, ROWS, 100))), shown
    assert note.startswith(f"Showing 5,000 of {ROWS:,} rows"), note
    return elapsed, mapped


def main() -> None:
    """Build the data, serve the app, time the page and the API, print the figures."""
    from browser import launch
    from servers import serving

    url = london_database()
    with psycopg.connect(url) as conn:
        assets = conn.execute("SELECT count(*) FROM assets").fetchone()[0]  # type: ignore[index]
        camden = conn.execute(
            "SELECT count(*) FROM assets WHERE borough_code = %s AND kind = 'street_furniture'", [CAMDEN]
        ).fetchone()[0]  # type: ignore[index]
    files = make_files()
    key = camden_key(url)
    print(machine())
    print(f"database: {assets:,} assets (London demo), {camden:,} of them Camden's street furniture")
    with serving(Settings(db=DatabaseSettings(url=url))) as base, launch() as browser:
        for path in files:
            api_once(base, key, path)  # warm-up: the job's process, GDAL, the stored assets' pages
            page_once(browser, base, key, path)
            api_runs = [api_once(base, key, path) for _ in range(RUNS)]
            page_runs = [page_once(browser, base, key, path) for _ in range(RUNS)]
            api, rows = [r[0] for r in api_runs], [r[1] for r in api_runs]
            page, drawn = [r[0] for r in page_runs], [r[1] for r in page_runs]
            a, p = statistics.median(api), statistics.median(page)
            size = path.stat().st_size / 2**20
            print(
                f"{path.suffix[1:]:>8} {ROWS:,} rows, {size:.1f} MB: page (choose -> error table) median {p:.2f} s "
                f"[{', '.join(f'{t:.2f}' for t in page)}]; API (POST + poll) median {a:.2f} s "
                f"[{', '.join(f'{t:.2f}' for t in api)}]; page / API {p / a:.2f}x (target: page <= 5 s)"
            )
            print(
                f"{'':>8} map: page (choose -> map drawn) median {statistics.median(drawn):.2f} s "
                f"[{', '.join(f'{t:.2f}' for t in drawn)}]; rows.geojson?limit=5000 alone median "
                f"{statistics.median(rows) * 1000:.0f} ms [{', '.join(f'{t * 1000:.0f}' for t in rows)}]"
            )


if __name__ == "__main__":
    main()
