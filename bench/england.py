"""An England-scale synthetic test bed for partitioned coverage (bench only, not the test suite).

``generate`` makes a separate database, ``connectivity_bench_england``, with deterministic,
**labelled-synthetic** premises (~30 million at full size) and assets (~6 million, a third in
service, the rest candidates) over England's extent in EPSG:27700: 3,000 towns placed in a coarse
outline of England with Zipf-like sizes, premises normally spread round them, 15 % rural; the
assets follow the same towns. Nothing in it is real; the tables' comments say so. It is written in
chunks with ``COPY ... (FORMAT BINARY)`` built in numpy (38 bytes a premises row, no Python
object per row), then one GiST index each (PostGIS sorts points for the build).

``--region E0 N0 E1 N1`` keeps only the towns (and rural premises) in a box, at full density:
the per-partition costs are England's, the total is extrapolated by the number of partitions.

``run`` measures a 50/100/200 m coverage report over it on a LocalCluster of worker processes:
one task per square partition (``--partition-m``, default 10 km) reads its own premises
(half-open box) and its in-service assets plus a halo of the largest threshold + 1 m over the
GiST indexes, measures them with the engine's :class:`~geo.coverage.nearest.AssetIndex`
(exact) and returns its counts per threshold and its times; the client adds them up. This is
the partition step of :mod:`geo.coverage.distributed` on premises read per partition (the
service's premises demand travels in the request, which does not scale to 30 million).
It prints the total time, the per-partition times (median, p95, max, by premises) and each
worker's peak memory.

Run: ``flock /tmp/pytest.lock .venv/bin/python bench/england.py generate [--premises N] [--region ...]``
then ``flock /tmp/pytest.lock .venv/bin/python bench/england.py run --workers 2``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

sys.path.insert(0, os.path.dirname(__file__))

from common import machine, server_url, with_dbname  # noqa: E402

NAME = "connectivity_bench_england"
SEED = 18
TOWNS = 3000
RURAL = 0.15
CHUNK = 2_000_000
#: A coarse outline of England in EPSG:27700 metres (about 130,000 km²): synthetic geography.
OUTLINE = shapely.Polygon([
    (135000, 25000), (250000, 45000), (370000, 70000), (530000, 100000), (635000, 140000),
    (600000, 190000), (620000, 210000), (655000, 290000), (600000, 345000), (550000, 340000),
    (560000, 380000), (540000, 420000), (525000, 470000), (490000, 510000), (460000, 530000),
    (440000, 600000), (400000, 655000), (340000, 590000), (320000, 560000), (300000, 520000),
    (340000, 460000), (330000, 390000), (340000, 365000), (330000, 300000), (320000, 250000),
    (350000, 200000), (320000, 170000), (300000, 140000), (240000, 140000), (210000, 100000),
    (170000, 60000),
])  # fmt: skip
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS premises, assets;
CREATE TABLE premises (
    id bigint NOT NULL, x float8 NOT NULL, y float8 NOT NULL,
    geom geometry(Point, 27700) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(x, y), 27700)) STORED);
CREATE TABLE assets (
    id bigint NOT NULL, x float8 NOT NULL, y float8 NOT NULL, in_service boolean NOT NULL,
    geom geometry(Point, 27700) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(x, y), 27700)) STORED);
COMMENT ON TABLE premises IS 'SYNTHETIC premises for benchmarks (bench/england.py), not real data';
COMMENT ON TABLE assets IS 'SYNTHETIC assets for benchmarks (bench/england.py), not real data';
"""


def _log(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def _inside(rng: np.random.Generator, n: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """``n`` uniform points inside the outline and ``box`` (rejection sampling)."""
    shape = OUTLINE.intersection(shapely.box(*box))
    x0, y0, x1, y1 = shape.bounds
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        xy = rng.uniform([x0, y0], [x1, y1], size=(max(2 * (n - have), 1000), 2))
        xy = xy[shapely.contains_xy(shape, xy[:, 0], xy[:, 1])]
        out.append(xy)
        have += len(xy)
    return np.vstack(out)[:n]


def towns(total: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every town's centre, premises count and spread (metres): the same for every region."""
    rng = np.random.default_rng(SEED)
    centre = _inside(rng, TOWNS, OUTLINE.bounds)
    weight = 1 / np.arange(1, TOWNS + 1) ** 0.9
    count = np.floor(weight / weight.sum() * total * (1 - RURAL)).astype(np.int64)
    spread = np.clip(400 * np.sqrt(count / 1000), 300, 15_000)
    return centre, count, spread


def _binary_copy(columns: list[np.ndarray], kinds: str) -> bytes:
    """Rows of numpy columns in PostgreSQL's binary COPY format (``q`` int8, ``d`` float8, ``?`` bool)."""
    size = {"q": 8, "d": 8, "?": 1}
    code = {"q": ">i8", "d": ">f8", "?": "?"}
    fields = [("n", ">i2")]
    for i, k in enumerate(kinds):
        fields += [(f"l{i}", ">i4"), (f"v{i}", code[k])]
    rows = np.empty(len(columns[0]), dtype=fields)
    rows["n"] = len(kinds)
    for i, (k, col) in enumerate(zip(kinds, columns, strict=True)):
        rows[f"l{i}"] = size[k]
        rows[f"v{i}"] = col
    return rows.tobytes()


HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
TRAILER = b"\xff\xff"


def _chunks(total: int, region: tuple[float, float, float, float], salt: int):
    """Chunks of (x, y) points: the towns (centre in ``region``) then the rural points, deterministic."""
    centre, count, spread = towns(total)
    x0, y0, x1, y1 = region
    keep = np.flatnonzero(
        (centre[:, 0] >= x0) & (centre[:, 0] < x1) & (centre[:, 1] >= y0) & (centre[:, 1] < y1)
    )
    group: list[int] = []
    for n, town in enumerate(keep):
        group.append(town)
        if sum(count[group]) >= CHUNK or n == len(keep) - 1:
            rng = np.random.default_rng([SEED, salt, town])
            c = count[group]
            at = np.repeat(np.arange(len(group)), c)
            xy = centre[group][at] + rng.normal(size=(int(c.sum()), 2)) * spread[group][at, None]
            yield xy
            group = []
    rural = int(total * RURAL * OUTLINE.intersection(shapely.box(*region)).area / OUTLINE.area)
    for i, start in enumerate(range(0, rural, CHUNK)):
        yield _inside(np.random.default_rng([SEED, salt, 10_000 + i]), min(CHUNK, rural - start), region)


def generate(url: str, premises: int, assets: int, region: tuple[float, float, float, float]) -> None:
    """Write the tables in chunks (binary COPY), then index and analyse them."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        for table, total, salt in (("premises", premises, 1), ("assets", assets, 2)):
            t, rows = time.perf_counter(), 0
            columns = "id, x, y, in_service" if table == "assets" else "id, x, y"
            query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table), sql.SQL(columns)
            )
            with conn.cursor().copy(query) as copy:
                copy.write(HEADER)
                for xy in _chunks(total, region, salt):
                    ids = np.arange(rows, rows + len(xy)) + (1 if table == "premises" else 10**9)
                    cols = [ids, xy[:, 0], xy[:, 1]]
                    if table == "assets":
                        cols.append(np.random.default_rng([SEED, rows]).random(len(xy)) < 1 / 3)
                    copy.write(_binary_copy(cols, "qdd?" if table == "assets" else "qdd"))
                    rows += len(xy)
                    _log(f"  {table}: {rows:,} rows, {time.perf_counter() - t:.0f} s")
                copy.write(TRAILER)
            t_index = time.perf_counter()
            conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(sql.Identifier(table)))
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
            _log(
                f"{table}: {rows:,} rows copied in {t_index - t:.0f} s, GiST index and ANALYZE "
                f"{time.perf_counter() - t_index:.0f} s"
            )
        sizes = conn.execute(
            "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relname IN ('premises', 'assets')"
        ).fetchall()
        _log(f"on disk (with indexes): {dict(sizes)}")


PREMISES_SQL = """SELECT x, y FROM premises WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 27700)
AND x >= %s AND x < %s AND y >= %s AND y < %s"""
ASSETS_SQL = "SELECT id, x, y FROM assets WHERE in_service AND geom && ST_MakeEnvelope(%s, %s, %s, %s, 27700)"


def _copy_out(conn: psycopg.Connection[Any], query: str, params: list[float], kinds: str) -> np.ndarray:
    """A query's rows through binary ``COPY TO``, decoded by a numpy structured dtype (no row objects)."""
    code = {"q": ">i8", "d": ">f8"}
    fields = [("n", ">i2")]
    for i, k in enumerate(kinds):
        fields += [(f"l{i}", ">i4"), (f"v{i}", code[k])]
    data = bytearray()
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(sql.SQL(query))  # type: ignore[arg-type]
    with conn.cursor().copy(statement, params) as copy:
        for block in copy:
            data += block
    return np.frombuffer(bytes(data[len(HEADER) : -len(TRAILER)]), dtype=fields)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def england_partition(
    url: str, box: tuple[float, float, float, float], thresholds: tuple[float, ...]
) -> dict[str, Any]:
    """One partition on a worker: its premises covered at each threshold, and its times."""
    from geo.coverage.nearest import AssetIndex

    t0 = time.perf_counter()
    x0, y0, x1, y1 = box
    halo = max(thresholds) + 1.0
    with psycopg.connect(url) as conn:
        rows = _copy_out(conn, PREMISES_SQL, [*box, x0, x1, y0, y1], "dd")
        a = _copy_out(conn, ASSETS_SQL, [x0 - halo, y0 - halo, x1 + halo, y1 + halo], "qdd")
    t1 = time.perf_counter()
    q = np.column_stack([rows["v0"], rows["v1"]]).astype(float)
    index = AssetIndex(
        np.column_stack([a["v1"], a["v2"]]).astype(float), a["v0"].astype(np.int64), None, None, 10.0
    )
    ids = a["v0"]
    distance, _ = index.nearest(q, max(thresholds))
    t2 = time.perf_counter()
    return {
        "premises": len(q), "assets": len(ids),
        "covered": [int((distance <= t).sum()) for t in thresholds],
        "read_s": t1 - t0, "measure_s": t2 - t1, "total_s": t2 - t0,
    }  # fmt: skip


def run(url: str, workers: int, size: float, thresholds: tuple[float, ...]) -> None:
    """The report over every partition holding premises, on ``workers`` local worker processes."""
    from distributed import Client, LocalCluster

    with psycopg.connect(url) as conn:
        keys = conn.execute(
            "SELECT floor(x / %s)::int, floor(y / %s)::int, count(*) FROM premises GROUP BY 1, 2 ORDER BY 3 DESC",
            [size, size],
        ).fetchall()
        total_premises = sum(k[2] for k in keys)
    boxes = [(c * size, r * size, (c + 1) * size, (r + 1) * size) for c, r, _ in keys]
    _log(
        f"{total_premises:,} premises in {len(boxes):,} partitions of {size / 1000:g} km; thresholds {thresholds}"
    )
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("geo.coverage.nearest"))  # imports out of the figure
        t = time.perf_counter()
        futures = client.map(england_partition, [url] * len(boxes), boxes, [thresholds] * len(boxes))
        parts = client.gather(futures)
        wall = time.perf_counter() - t
        memory = client.run(_peak_rss_mib)
    covered = np.sum([p["covered"] for p in parts], axis=0)
    times = np.array([p["total_s"] for p in parts])
    per_100k = [p["total_s"] / p["premises"] * 1e5 for p in parts if p["premises"] >= 10_000]
    _log(
        f"total {wall:.1f} s on {workers} workers ({total_premises / wall:,.0f} premises/s); "
        f"covered at {thresholds}: {[round(float(c) / total_premises, 4) for c in covered]}\n"
        f"per partition: median {statistics.median(times):.3f} s, p95 {np.percentile(times, 95):.3f} s, "
        f"max {times.max():.3f} s (premises median {statistics.median([p['premises'] for p in parts]):,.0f}, "
        f"max {max(p['premises'] for p in parts):,}); read {sum(p['read_s'] for p in parts):.1f} s and "
        f"measure {sum(p['measure_s'] for p in parts):.1f} s summed; "
        f"{statistics.median(per_100k):.3f} s per 100,000 premises (median over partitions of >= 10,000)\n"
        f"peak memory per worker: {[round(m) for m in memory.values()]} MiB; client {_peak_rss_mib():.0f} MiB"
    )


def database() -> str:
    """The benchmark database's URL, created if needed (no project migrations: its own two tables)."""
    server = server_url()
    with psycopg.connect(with_dbname(server, "postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [NAME]).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(NAME)))
    return with_dbname(server, NAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--premises", type=int, default=30_000_000, help="England-wide premises")
    gen.add_argument("--assets", type=int, default=6_000_000, help="England-wide assets")
    gen.add_argument(
        "--region", type=float, nargs=4, default=OUTLINE.bounds, metavar=("E0", "N0", "E1", "N1")
    )
    go = sub.add_parser("run")
    go.add_argument("--workers", type=int, default=2)
    go.add_argument("--partition-m", type=float, default=10_000.0)
    go.add_argument("--thresholds", type=float, nargs="+", default=[50.0, 100.0, 200.0])
    args = parser.parse_args()
    url = database()
    _log(f"machine: {machine()}")
    if args.command == "generate":
        _log(f"England outline {OUTLINE.area / 1e6:,.0f} km²; region {args.region}")
        generate(url, args.premises, args.assets, tuple(args.region))
    else:
        run(url, args.workers, args.partition_m, tuple(args.thresholds))


if __name__ == "__main__":
    main()
