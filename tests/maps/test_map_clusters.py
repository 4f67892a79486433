"""Grid clusters (``/tiles/{collection}/clusters/{z}/{x}/{y}.json``) and the counts the choropleth is shaded by."""

from __future__ import annotations

import asyncio

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from geo.layers import mapdata

CAMDEN_Z12 = (12, 2046, 1361)


def summary_counts(client: TestClient, collection: str, z: int, x: int, y: int, **params: str) -> list[int]:
    body = client.get(f"/tiles/{collection}/{z}/{x}/{y}.mvt", params=params).content
    layer = mapbox_vector_tile.decode(body).get(collection, {"features": []}) if body else {"features": []}
    return [f["properties"]["count"] for f in layer["features"]]


def clusters(client: TestClient, collection: str, z: int, x: int, y: int, **params: str) -> dict:
    r = client.get(f"/tiles/{collection}/clusters/{z}/{x}/{y}.json", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("collection", ["street_furniture", "public_buildings"])
def test_a_cluster_tile_counts_what_the_summary_tile_counts_in_16_cells(
    client: TestClient, collection: str
) -> None:
    z, x, y = CAMDEN_Z12
    tile = clusters(client, collection, z, x, y)
    assert (tile["collection"], tile["z"], tile["x"], tile["y"], tile["cells_per_side"]) == (
        collection,
        z,
        x,
        y,
        4,
    )
    cells = tile["cells"]
    assert 0 < len(cells) <= 16
    assert sum(c["count"] for c in cells) == sum(summary_counts(client, collection, z, x, y)) > 0
    for c in cells:
        assert 0 <= c["i"] < 4 and 0 <= c["j"] < 4 and c["count"] >= 1
        # The mean position lies in the cell it counts: a symbol kept in its cell never crosses a tile edge.
        assert c["i"] * 64 <= c["x"] <= (c["i"] + 1) * 64 and c["j"] * 64 <= c["y"] <= (c["j"] + 1) * 64
    assert len({(c["i"], c["j"]) for c in cells}) == len(cells)


def test_filters_narrow_the_clusters_as_they_narrow_the_tiles(client: TestClient) -> None:
    z, x, y = CAMDEN_Z12
    every = sum(c["count"] for c in clusters(client, "street_furniture", z, x, y)["cells"])
    params = {"subtype": "bus_stop", "status": "in_service,unknown"}
    some = sum(c["count"] for c in clusters(client, "street_furniture", z, x, y, **params)["cells"])
    assert 0 < some < every
    assert some == sum(summary_counts(client, "street_furniture", z, x, y, **params))
    outside = clusters(client, "street_furniture", z, x, y, borough="E09000004")  # Bexley: far from Camden
    assert outside["cells"] == []


def test_a_whole_zoom_0_tile_holds_every_clustered_asset(client: TestClient) -> None:
    assert sum(c["count"] for c in clusters(client, "street_furniture", 0, 0, 0)["cells"]) == sum(
        summary_counts(client, "street_furniture", 0, 0, 0)
    )


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/tiles/street_furniture/clusters/13/4093/2723.json", 400, "from zoom 13"),
        ("/tiles/street_furniture/clusters/12/5000/1361.json", 404, "tile"),
        ("/tiles/ducts/clusters/12/2046/1361.json", 404, "no clusters"),
        ("/tiles/wayleaves/clusters/12/2046/1361.json", 404, "no clusters"),
        ("/tiles/nothing/clusters/12/2046/1361.json", 404, "no collection"),
        ("/tiles/street_furniture/clusters/12/2046/1361.json?status=wobbly", 400, "status"),
    ],
)
def test_bad_cluster_tiles(client: TestClient, path: str, status: int, words: str) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and words in r.json()["detail"]


def test_cluster_tiles_revalidate_by_the_summaries_build(client: TestClient) -> None:
    z, x, y = CAMDEN_Z12
    first = client.get(f"/tiles/street_furniture/clusters/{z}/{x}/{y}.json")
    etag = first.headers["etag"]
    assert "clusters" in etag and "max-age" in first.headers["cache-control"]
    again = client.get(f"/tiles/street_furniture/clusters/{z}/{x}/{y}.json", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_the_count_matrix_sums_to_the_summaries_of_each_kind(client: TestClient, db_url: str) -> None:
    async def read() -> dict:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await mapdata.count_matrix(conn)

    matrix = asyncio.run(read())
    assert set(matrix) == {"boroughs", "kinds", "subtypes", "statuses", "rows"}
    assert sorted(matrix["boroughs"]) == matrix["boroughs"] and len(matrix["boroughs"]) == 33
    totals: dict[str, int] = {}
    for b, k, s, st, n in matrix["rows"]:
        assert matrix["boroughs"][b].startswith("E09") and matrix["subtypes"][s] and matrix["statuses"][st]
        totals[matrix["kinds"][k]] = totals.get(matrix["kinds"][k], 0) + n
    assert totals["street_furniture"] == sum(summary_counts(client, "street_furniture", 0, 0, 0))
    assert totals["public_building"] == sum(summary_counts(client, "public_buildings", 0, 0, 0))
    ducts = mapbox_vector_tile.decode(client.get("/tiles/ducts/0/0/0.mvt").content)["ducts"]["features"]
    assert totals["duct"] == sum(f["properties"]["count"] for f in ducts)
