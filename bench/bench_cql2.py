"""CQL2-filtered items and tiles against the same filter given with the ``borough``/``subtype``/``status`` parameters.

On the ``--scale london`` demo (built once by ``bench/common.py``), through the app in-process
(TestClient, so HTTP framing is left out and the two differ only in how the filter is read and
written into SQL). Each case reads every page (``limit=1000``, following ``next`` links) and
checks that both ways return the same features; the figure is the median of ``BENCH_RUNS``
runs (default 7, the three ways interleaved) after one warm-up, and the ratio CQL2 / parameters (target: ≤ 1, "no slower").
The cost of reading and translating a filter alone is printed too.

Tiles (``--tiles``, or both by default): the same cases as vector tiles, at the raw zoom (a block of
z14 tiles in central London) and below it (the z8 to z12 tiles over London, from the summaries),
made anew (an app without a tile cache: the database's work) and served again (an app with one:
the cost of reading the filter on a cache hit). Each way's tiles are checked to hold the same
features. One more case gives a filter the summaries cannot answer, to show what counting the
features in the tile costs against the summaries.

Run: ``.venv/bin/python bench/bench_cql2.py [--items | --tiles]``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import london_database, machine, with_dbname  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
CASES: list[tuple[str, str, dict[str, str], str]] = [
    (
        "one borough's lamp posts in service",
        "street_furniture",
        {"borough": "E09000007", "subtype": "lamp_post", "status": "in_service"},
        "borough_code = 'E09000007' AND subtype = 'lamp_post' AND status = 'in_service'",
    ),
    (
        "two boroughs, two subtypes",
        "street_furniture",
        {"borough": "E09000007,E09000012", "subtype": "lamp_post,bus_stop"},
        "borough_code IN ('E09000007', 'E09000012') AND subtype IN ('lamp_post', 'bus_stop')",
    ),
    (
        "every duct not in service",
        "ducts",
        {"status": "proposed,out_of_commission,unknown,abandoned"},
        "status IN ('proposed', 'out_of_commission', 'unknown', 'abandoned')",
    ),
    (
        "London's CCTV columns",
        "street_furniture",
        {"subtype": "cctv_column"},
        "subtype = 'cctv_column'",
    ),
]


def to_json(text: str) -> str:
    """The case's cql2-text as cql2-json (``a = 'x'`` and ``a IN (…)`` joined by AND)."""
    from geo.layers.filtering import parse

    def walk(node: Any) -> Any:
        from pygeofilter import ast

        if isinstance(node, ast.And):
            return {"op": "and", "args": [walk(node.lhs), walk(node.rhs)]}
        if isinstance(node, ast.Equal):
            return {"op": "=", "args": [{"property": node.lhs.name}, node.rhs]}
        if isinstance(node, ast.In):
            return {"op": "in", "args": [{"property": node.lhs.name}, list(node.sub_nodes)]}
        raise ValueError(node)

    return json.dumps(walk(parse(text)))


def read_all(client: Any, collection: str, params: dict[str, str]) -> list[int]:
    url: str | None = f"/collections/{collection}/items"
    query: dict[str, Any] | None = {"limit": 1000, "properties": "subtype,status,borough_code", **params}
    ids: list[int] = []
    while url:
        answer = client.get(url, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        ids += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        query = None
    return ids


#: Tiles: a 12 x 12 block of z14 around Trafalgar Square, and London's tiles at z8, z10 and z12.
RAW_TILES = [(14, x, y) for x in range(8180, 8192) for y in range(5442, 5454)]
LOW_TILES = (
    [(8, x, y) for x in (127, 128) for y in (84, 85)]
    + [(10, x, y) for x in range(510, 513) for y in range(339, 342)]
    + [(12, x, y) for x in range(2042, 2050, 2) for y in range(1358, 1366, 2)]
)
#: A filter the summaries cannot answer (the same features as the parameters ``subtype=cctv_column``).
LIVE_CASE = (
    "London's CCTV columns, as NOT <>",
    "street_furniture",
    {"subtype": "cctv_column"},
    "NOT (subtype <> 'cctv_column')",
)


def tile_content(body: bytes, layer: str) -> list[Any]:
    """A tile's features, comparable across ways of asking (ids, properties, geometries)."""
    import mapbox_vector_tile

    features = mapbox_vector_tile.decode(body)[layer]["features"] if body else []
    return sorted(json.dumps([f.get("id"), f["properties"], f["geometry"]], sort_keys=True) for f in features)


def read_tiles(
    client: Any, collection: str, tiles: list[tuple[int, int, int]], params: dict[str, str]
) -> list[bytes]:
    out = []
    for z, x, y in tiles:
        answer = client.get(f"/tiles/{collection}/{z}/{x}/{y}.mvt", params=params)
        assert answer.status_code == 200, answer.text
        out.append(answer.content)
    return out


def time_tiles(
    client: Any, title: str, collection: str, variants: dict[str, dict[str, str]], tiles: list[Any]
) -> str:
    """One line: each way's median over ``tiles``, after checking they hold the same features."""
    bodies = {name: read_tiles(client, collection, tiles, p) for name, p in variants.items()}  # warm-up
    base = [tile_content(b, collection) for b in bodies["parameters"]]
    for name in variants:
        assert [tile_content(b, collection) for b in bodies[name]] == base, (title, name)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(RUNS):  # interleaved, as for the items
        names = list(variants)
        for name in names[run % len(names) :] + names[: run % len(names)]:
            began = time.perf_counter()
            read_tiles(client, collection, tiles, variants[name])
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    b = medians["parameters"]
    ways = ", ".join(f"{n} {m * 1000:.1f} ms ({m / b:.2f}x)" for n, m in medians.items() if n != "parameters")
    return f"{title} ({collection}): parameters {b * 1000:.1f} ms, {ways}"


def bench_tiles(app_url: str) -> None:
    """Tiles with each case's filter given the three ways, made anew and from the cache."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.core.settings import DatabaseSettings, Settings, TileSettings

    print(f"\ntiles: {len(RAW_TILES)} z14 tiles, {len(LOW_TILES)} z8-z12 tiles; median of {RUNS} runs")
    for cache_mb, label in ((0, "made anew"), (64, "from the cache")):
        settings = Settings(db=DatabaseSettings(url=app_url), tiles=TileSettings(cache_mb=cache_mb))
        with TestClient(create_app(settings)) as client:
            for group, tiles in (("z14", RAW_TILES), ("z8-z12", LOW_TILES)):
                for title, collection, params, text in CASES:
                    variants = {
                        "parameters": params,
                        "cql2-text": {"filter": text},
                        "cql2-json": {"filter": to_json(text), "filter-lang": "cql2-json"},
                    }
                    print(f"{label}, {group}: " + time_tiles(client, title, collection, variants, tiles))
            title, collection, params, text = LIVE_CASE
            variants = {"parameters": params, "cql2-text": {"filter": text}}
            print(f"{label}, z8-z12: " + time_tiles(client, title, collection, variants, LOW_TILES))


def main() -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.core.settings import DatabaseSettings, Settings
    from geo.db import database
    from geo.layers.collections import get_collection
    from geo.layers.filtering import parse, translate
    from geo.layers.filtering.queryables import Queryable, Queryables

    owner = london_database()
    app_url = with_dbname(database.database_url(DatabaseSettings(), start=False), owner.rsplit("/", 1)[1])
    print(machine())
    if "--tiles" in sys.argv:
        bench_tiles(app_url)
        return
    print(f"median of {RUNS} runs after one warm-up; every page of limit=1000, in-process (TestClient)\n")
    with TestClient(create_app(Settings(db=DatabaseSettings(url=app_url)))) as client:
        total = client.get("/collections/street_furniture/items", params={"limit": 1}).status_code
        assert total == 200
        for title, collection, params, text in CASES:
            variants = {
                "parameters": params,
                "cql2-text": {"filter": text},
                "cql2-json": {"filter": to_json(text), "filter-lang": "cql2-json"},
            }
            answers = {name: read_all(client, collection, p) for name, p in variants.items()}  # warm-up
            assert answers["parameters"] == answers["cql2-text"] == answers["cql2-json"], title
            # Interleaved, so that a change of load on a shared machine falls on the three alike.
            times: dict[str, list[float]] = {name: [] for name in variants}
            for run in range(RUNS):
                names = list(variants)
                for name in names[run % 3 :] + names[: run % 3]:
                    began = time.perf_counter()
                    read_all(client, collection, variants[name])
                    times[name].append(time.perf_counter() - began)
            medians = {name: statistics.median(values) for name, values in times.items()}
            base = medians["parameters"]
            print(
                f"{title} ({collection}, {len(answers['parameters'])} features): parameters {base * 1000:.1f} ms, "
                f"cql2-text {medians['cql2-text'] * 1000:.1f} ms ({medians['cql2-text'] / base:.2f}x), "
                f"cql2-json {medians['cql2-json'] * 1000:.1f} ms ({medians['cql2-json'] / base:.2f}x)"
            )

    queryables = Queryables(
        get_collection("street_furniture"),
        {n: Queryable(n, "string", column=n) for n in ("borough_code", "subtype", "status")},
    )
    text = CASES[1][3]
    start, n = time.perf_counter(), 2000
    for _ in range(n):
        translate(parse(text), queryables)
    print(f"\nreading and translating {text!r}: {(time.perf_counter() - start) / n * 1e6:.0f} µs a filter")
    if "--items" not in sys.argv:
        bench_tiles(app_url)


if __name__ == "__main__":
    main()
