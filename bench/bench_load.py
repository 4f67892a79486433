"""The service under load: 64 clients for 60 s, a realistic mix, errors, latency per kind and memory.

On the ``--scale london`` demo (built once by ``bench/common.py``), with 300 wayleaves of one
operator and one coverage report of that operator's. The service runs as in production:
uvicorn, 2 worker processes, a pool of 2 connections each, the trust layer on (guard, security
headers, access log to a file). 64 clients (two client processes of 32, so that the load
generator itself is not one core's worth of Python) send, at random by weight:

- 70 % vector tiles (street furniture, zooms 10-16, over the assets' own positions);
- 20 % features pages with a bbox (street furniture, 100 a page, ~500 m boxes over London);
- 10 % wayleave and report reads by the operator's key (``/wayleaves``, ``/wayleaves/{id}``,
  ``/coverage/reports/{id}`` and its ``gaps.geojson``).

It prints, per kind, the requests, errors (any answer but 2xx/304, and any failed request), the
median and 99th percentile latency, and the workers' resident memory before and after. Run:
``.venv/bin/python bench/bench_load.py`` (``BENCH_SECONDS`` to change the 60 s).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from bench_tiles import london_tiles  # noqa: E402
from common import london_database, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
CLIENTS = 64
PROCESSES = 2
PORT = 8111
MIX = (("tiles", 0.70), ("features", 0.20), ("reads", 0.10))
OPERATOR = "Load Fibre"


def prepare(url: str) -> dict[str, object]:
    """Keys, wayleaves and a report to read; the paths of each kind."""
    from geo import access

    actor = access.Principal(role="admin", label="bench")  # who the audit trail says made the keys

    async def keys() -> tuple[str, str]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            key = await access.create_key(c, "operator", label="load benchmark", actor=actor)
            await access.bind_operator(c, key.id, OPERATOR, actor=actor)
            admin = await access.create_key(c, "admin", label="load benchmark admin", actor=actor)
            return key.key, admin.key

    operator, admin = asyncio.run(keys())
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM wayleaves WHERE operator = %s", [OPERATOR]).fetchone()[0]  # type: ignore[index]
        assets = [r[0] for r in conn.execute(
            "SELECT id FROM assets WHERE kind = 'street_furniture' AND id % 1777 = 0 ORDER BY id LIMIT 300"
        )]  # fmt: skip
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
        for asset_id in assets[have:]:
            created = client.post(
                "/wayleaves", json={"operator": OPERATOR, "asset_ids": [asset_id]}, headers=headers
            )
            created.raise_for_status()
        report = client.post(
            "/coverage/reports", json={"area": {"boroughs": ["E09000007"]}},
            headers={"Authorization": f"Bearer {operator}"},
        )  # fmt: skip
        report.raise_for_status()
        wayleaves = [
            w["id"] for w in client.get("/wayleaves", headers={"Authorization": f"Bearer {operator}"}).json()
        ]
    report_id = report.json()["id"]
    tiles = [
        f"/tiles/street_furniture/{z}/{x}/{y}.mvt"
        for zoom in (10, 12, 14, 15, 16)
        for z, x, y in london_tiles(url, zoom)
    ]
    rng = random.Random(7)
    features = []
    for _ in range(200):
        lon, lat = rng.uniform(-0.30, 0.10), rng.uniform(51.42, 51.60)
        features.append(
            f"/collections/street_furniture/items?bbox={lon:.5f},{lat:.5f},{lon + 0.007:.5f},{lat + 0.0045:.5f}&limit=100"
        )
    reads = (
        ["/wayleaves?limit=100"] * 3 + [f"/wayleaves/{w}" for w in wayleaves[:50]]
        + [f"/coverage/reports/{report_id}", f"/coverage/reports/{report_id}/gaps.geojson"] * 5
    )  # fmt: skip
    return {"paths": {"tiles": tiles, "features": features, "reads": reads}, "operator": operator}


async def clients(base: str, paths: dict[str, list[str]], operator: str, n: int, seconds: float, seed: int):
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    results: dict[str, list[float]] = {k: [] for k in kinds}
    errors: dict[str, int] = dict.fromkeys(kinds, 0)
    samples: dict[str, list[str]] = {k: [] for k in kinds}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)

    async def one(i: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + i)
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            path = rng.choice(paths[kind])
            headers = (
                {"Authorization": f"Bearer {operator}", "Accept-Encoding": "gzip"}
                if kind == "reads"
                else {"Accept-Encoding": "gzip"}
            )
            sent = time.perf_counter()
            try:
                response = await client.get(path, headers=headers)
                ok = response.status_code < 300 or response.status_code == 304
            except httpx.HTTPError as exc:
                ok, response = False, None
                if len(samples[kind]) < 3:
                    samples[kind].append(f"{path}: {type(exc).__name__}")
            results[kind].append(time.perf_counter() - sent)
            if not ok:
                errors[kind] += 1
                if response is not None and len(samples[kind]) < 3:
                    samples[kind].append(f"{path}: {response.status_code} {response.text[:120]}")

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(i, client) for i in range(n)))
    return results, errors, samples


def client_process(args: tuple) -> tuple:
    return asyncio.run(clients(*args))


def worker_rss_mb(main_pid: int) -> float:
    """Resident memory of the uvicorn workers (the main process's children), in MB."""
    out = subprocess.run(
        ["ps", "-o", "pid=,rss=", "--ppid", str(main_pid)], capture_output=True, text=True
    ).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.strip()) / 1024


def main() -> None:
    print(machine())
    url = london_database(lambda step, done, total: print(f"  building the London demo: {step}", flush=True))
    # As `connectivity serve` runs it: migrations checked, root given up, the access log on (to a file).
    log = tempfile.NamedTemporaryFile(prefix="connectivity-access-", suffix=".log", delete=False)
    env = {
        **os.environ, "DATABASE_URL": url, "CONNECTIVITY_API_PORT": str(PORT), "CONNECTIVITY_API_WORKERS": "2",
        "CONNECTIVITY_DB_POOL_MIN_SIZE": "2", "CONNECTIVITY_DB_POOL_MAX_SIZE": "2",
    }  # fmt: skip
    service = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-m", "cli.main", "serve", "--no-demo"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if service.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        setup = prepare(url)
        paths, operator = setup["paths"], setup["operator"]
        base = f"http://127.0.0.1:{PORT}"
        print(f"{CLIENTS} clients in {PROCESSES} processes for {SECONDS} s; mix {dict(MIX)}; "
              f"{len(paths['tiles'])} tiles, {len(paths['features'])} bboxes, {len(paths['reads'])} reads")  # type: ignore[index]  # fmt: skip
        # Warm-up, not counted: connections opened, the tile cache filled as a running service's would be.
        asyncio.run(clients(base, paths, operator, 16, 10, 99))  # type: ignore[arg-type]
        before = worker_rss_mb(service.pid)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(PROCESSES) as pool:
            started = time.monotonic()
            parts = pool.map(
                client_process,
                [(base, paths, operator, CLIENTS // PROCESSES, SECONDS, p) for p in range(PROCESSES)],
            )
            elapsed = time.monotonic() - started
        after = worker_rss_mb(service.pid)
        total = 0
        print(f"\n{'kind':>9} {'requests':>9} {'req/s':>7} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for kind, _ in MIX:
            times = sorted(t for r, _, _ in parts for t in r[kind])
            errors = sum(e[kind] for _, e, _ in parts)
            total += len(times)
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("nan")
            print(f"{kind:>9} {len(times):>9,} {len(times) / elapsed:>7.0f} {errors:>7} "
                  f"{statistics.median(times) * 1000 if times else float('nan'):>8.1f} {p99 * 1000:>8.1f}")  # fmt: skip
            for sample in [s for _, _, smp in parts for s in smp[kind]][:3]:
                print(f"          e.g. {sample}")
        print(f"{'all':>9} {total:>9,} {total / elapsed:>7.0f}")
        print(
            f"\nworker memory (2 workers, resident): {before:.0f} MB before, {after:.0f} MB after ({after - before:+.0f} MB)"
        )
        lines = sum(1 for line in open(log.name) if "connectivity.access" in line or " GET " in line)
        print(f"access log: {lines:,} lines written")
    finally:
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
        os.unlink(log.name)


if __name__ == "__main__":
    main()
