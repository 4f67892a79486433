"""Vector tiles decoded and compared with the database."""

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from geo.core.settings import DatabaseSettings, Settings, TileSettings
from geo.layers.tiles import TileCache, summary_grid

TRAFALGAR_Z14 = (14, 8186, 5448)


def decode(content):
    return mapbox_vector_tile.decode(content) if content else {}


def tile_count(conn, kind, z, x, y, margin=64 / 4096, extra=""):
    return conn.execute(
        f"""SELECT count(*) FROM assets WHERE kind = %s AND retired_at IS NULL {extra}
            AND geom_3857 && ST_TileEnvelope(%s, %s, %s, margin => %s)""",
        [kind, z, x, y, margin],
    ).fetchone()[0]


def test_raw_tile_has_the_layer_the_features_and_their_attributes(client, conn):
    z, x, y = TRAFALGAR_Z14
    response = client.get(f"/tiles/street_furniture/{z}/{x}/{y}.mvt")
    assert (
        response.status_code == 200
        and response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    )
    layers = decode(response.content)
    assert list(layers) == ["street_furniture"]
    layer = layers["street_furniture"]
    assert layer["extent"] == 4096
    assert len(layer["features"]) == tile_count(conn, "street_furniture", z, x, y) > 0
    for feature in layer["features"]:
        px, py = feature["geometry"]["coordinates"]
        assert -64 <= px <= 4096 + 64 and -64 <= py <= 4096 + 64
        assert set(feature["properties"]) == {"subtype", "status"}
    ids = {f["id"] for f in layer["features"]}
    assert ids == {
        r[0]
        for r in conn.execute(
            "SELECT id FROM assets WHERE kind = 'street_furniture' AND geom_3857 && ST_TileEnvelope(%s, %s, %s, margin => %s)",
            [z, x, y, 64 / 4096],
        )
    }


def test_every_layer_serves_tiles(client):
    z, x, y = TRAFALGAR_Z14
    for collection in ("boroughs", "public_buildings", "ducts"):
        layers = decode(client.get(f"/tiles/{collection}/{z}/{x}/{y}.mvt").content)
        assert list(layers) == [collection] and layers[collection]["features"]


def test_below_the_raw_zoom_points_are_clusters_that_count_every_asset(client, conn):
    total = conn.execute(
        "SELECT count(*) FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL"
    ).fetchone()[0]
    # The one tile of zoom 0 holds every cluster once.
    layer = decode(client.get("/tiles/street_furniture/0/0/0.mvt").content)["street_furniture"]
    assert set(layer["features"][0]["properties"]) == {"count"}
    assert sum(f["properties"]["count"] for f in layer["features"]) == total
    z10 = decode(client.get("/tiles/street_furniture/10/511/340.mvt").content)["street_furniture"]
    assert len(z10["features"]) <= 64 * 64
    assert all(f["geometry"]["type"] == "Point" and f["properties"]["count"] >= 1 for f in z10["features"])


def test_filters_apply_to_clusters_and_raw_tiles(client, conn):
    lamps = conn.execute(
        "SELECT count(*) FROM assets WHERE kind = 'street_furniture' AND subtype = 'lamp_post' AND borough_code = 'E09000007'"
    ).fetchone()[0]
    params = {"subtype": "lamp_post", "borough": "E09000007"}
    layer = decode(client.get("/tiles/street_furniture/0/0/0.mvt", params=params).content)["street_furniture"]
    assert sum(f["properties"]["count"] for f in layer["features"]) == lamps > 0
    z, x, y = TRAFALGAR_Z14
    raw = decode(
        client.get(f"/tiles/street_furniture/{z}/{x}/{y}.mvt", params={"subtype": "bus_stop"}).content
    )
    assert raw["street_furniture"]["features"]
    assert all(f["properties"]["subtype"] == "bus_stop" for f in raw["street_furniture"]["features"])
    assert (
        client.get(f"/tiles/street_furniture/{z}/{x}/{y}.mvt", params={"status": "wobbly"}).status_code == 400
    )


def test_ducts_below_the_raw_zoom_are_merged_lines_with_their_length(client, conn):
    total_m = conn.execute(
        "SELECT sum(ST_Length(geom)) FROM assets WHERE kind = 'duct' AND retired_at IS NULL"
    ).fetchone()[0]
    layer = decode(client.get("/tiles/ducts/0/0/0.mvt").content)["ducts"]
    assert all("Line" in f["geometry"]["type"] for f in layer["features"])
    assert sum(f["properties"]["length_m"] for f in layer["features"]) == pytest.approx(total_m, rel=0.001)
    z12 = decode(client.get("/tiles/ducts/12/2046/1362.mvt").content)["ducts"]
    assert z12["features"] and all(f["properties"]["count"] >= 1 for f in z12["features"])


def test_per_tile_feature_cap(settings):
    capped = Settings(db=settings.db, tiles=TileSettings(max_features=5))
    with TestClient(create_app(capped)) as client:
        z, x, y = TRAFALGAR_Z14
        layer = decode(client.get(f"/tiles/street_furniture/{z}/{x}/{y}.mvt").content)["street_furniture"]
        assert len(layer["features"]) == 5


def test_etag_follows_the_data_version_and_gzip_is_offered(client, conn, auth):
    z, x, y = TRAFALGAR_Z14
    url = f"/tiles/street_furniture/{z}/{x}/{y}.mvt"
    first = client.get(url, headers={"Accept-Encoding": "gzip"})
    etag = first.headers["etag"]
    assert first.headers["content-encoding"] == "gzip" and "max-age" in first.headers["cache-control"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    asset_id = decode(client.get(url).content)["street_furniture"]["features"][0]["id"]
    changed = client.patch(f"/assets/{asset_id}", json={"status": "removed"}, headers=auth("admin"))
    assert changed.status_code == 200
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag
    raw = decode(again.content)
    assert (
        next(f for f in raw["street_furniture"]["features"] if f["id"] == asset_id)["properties"]["status"]
        == "removed"
    )


def test_an_etag_is_valid_for_its_own_filters_only(client):
    z, x, y = TRAFALGAR_Z14
    url = f"/tiles/street_furniture/{z}/{x}/{y}.mvt"
    every = client.get(url)
    lamps = client.get(url, params={"subtype": "lamp_post"})
    stops = client.get(url, params={"subtype": "bus_stop"})
    assert len({every.headers["etag"], lamps.headers["etag"], stops.headers["etag"]}) == 3
    # A client that changes the filters but sends the old tag gets the new tile, not a 304.
    assert (
        client.get(
            url, params={"subtype": "bus_stop"}, headers={"If-None-Match": lamps.headers["etag"]}
        ).status_code
        == 200
    )
    assert (
        client.get(
            url, params={"subtype": "lamp_post"}, headers={"If-None-Match": lamps.headers["etag"]}
        ).status_code
        == 304
    )
    clusters = "/tiles/street_furniture/clusters/8/127/85.json"
    assert (
        client.get(clusters, params={"subtype": "lamp_post"}).headers["etag"]
        != client.get(clusters).headers["etag"]
    )


def test_tilejson_and_bad_tiles(client):
    tj = client.get("/tiles/street_furniture.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["tiles"][0].endswith("/tiles/street_furniture/{z}/{x}/{y}.mvt")
    assert tj["vector_layers"][0]["id"] == "street_furniture"
    assert client.get("/tiles/street_furniture/3/8/1.mvt").status_code == 404
    assert client.get("/tiles/street_furniture/23/0/0.mvt").status_code == 404
    assert client.get("/tiles/nothing/1/0/0.mvt").status_code == 404


def test_an_edit_through_the_api_refreshes_the_low_zoom_summaries(client, conn, auth):
    before = client.get("/tiles/public_buildings/0/0/0.mvt")
    asset_id = conn.execute(
        "SELECT id FROM assets WHERE kind = 'public_building' AND borough_code = 'E09000007' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    moved = client.patch(f"/assets/{asset_id}", json={"status": "decommissioned"}, headers=auth("camden"))
    assert moved.status_code == 200
    after = client.get(
        "/tiles/public_buildings/0/0/0.mvt", params={"status": "decommissioned", "borough": "E09000007"}
    )
    layer = decode(after.content)["public_buildings"]
    expected = conn.execute(
        "SELECT count(*) FROM assets WHERE kind = 'public_building' AND status = 'decommissioned' AND borough_code = 'E09000007'"
    ).fetchone()[0]
    assert sum(f["properties"]["count"] for f in layer["features"]) == expected >= 1
    assert after.headers["etag"] != before.headers["etag"]


def test_tile_cache_keeps_recent_tiles_within_its_bytes():
    entry = 100 + len(repr("a")) + TileCache.ENTRY_OVERHEAD  # a 100-byte tile under a one-letter key
    cache = TileCache(max_bytes=8 * entry)
    cache.put("a", b"x" * 100)
    cache.put("b", b"y" * 100)
    assert cache.get("a") == b"x" * 100  # now the most recently used
    for key in "cdefghi":  # nine tiles: the least recently used (b) goes
        cache.put(key, b"z" * 100)
    assert cache.size <= 8 * entry and cache.get("b") is None and cache.get("a") is not None
    cache.put("huge", b"h" * (entry + 1))  # over an eighth of the cache: not kept
    assert cache.get("huge") is None
    assert TileCache(0).get("a") is None


def test_tile_cache_counts_keys_and_empty_tiles_and_caps_entries():
    cache = TileCache(max_bytes=2**20)
    for i in range(10_000):  # empty tiles cost their key and overhead, so they age out too
        cache.put(("street_furniture", 22, i, i, (("borough_code", ("E09000007",)),), "5", True), b"")
    assert cache.size <= 2**20 and len(cache) < 2**20 // TileCache.ENTRY_OVERHEAD
    capped = TileCache(max_bytes=2**30, max_entries=50)
    for i in range(200):
        capped.put(i, b"t")
    assert len(capped) == 50 and capped.get(0) is None and capped.get(199) == b"t"


def test_repeated_tiles_come_from_the_cache_and_a_write_makes_new_ones(client, conn, auth):
    z, x, y = TRAFALGAR_Z14
    url = f"/tiles/street_furniture/{z}/{x}/{y}.mvt?subtype=lamp_post"
    cache = client.app.state.tile_cache
    first = client.get(url)
    kept = len(cache)
    second = client.get(url)
    assert second.content == first.content and len(cache) == kept >= 1
    asset_id = decode(first.content)["street_furniture"]["features"][0]["id"]
    assert (
        client.patch(
            f"/assets/{asset_id}", json={"status": "pending_removal"}, headers=auth("admin")
        ).status_code
        == 200
    )
    third = decode(client.get(url).content)["street_furniture"]["features"]
    assert next(f for f in third if f["id"] == asset_id)["properties"]["status"] == "pending_removal"


def test_time_dependent_wayleave_tiles_carry_no_etag(client):
    z, x, y = TRAFALGAR_Z14
    response = client.get(f"/tiles/wayleaves/{z}/{x}/{y}.mvt")
    assert response.status_code == 200 and "etag" not in response.headers


def test_stale_or_missing_summaries_are_rebuilt_when_the_service_starts(isolated):
    with psycopg.connect(isolated.url) as c:
        c.execute("TRUNCATE tile_point_summaries")
        c.execute("UPDATE tile_summary_builds SET grid = '64/12' WHERE kind = 'street_furniture'")
        c.execute("DELETE FROM tile_summary_builds WHERE kind = 'public_building'")
    with TestClient(create_app(Settings(db=DatabaseSettings(url=isolated.url)))) as client:
        task = client.app.state.summaries_startup

        async def started() -> list[str]:
            return await task

        assert client.portal.call(started) == ["public_building", "street_furniture"]
        layer = decode(client.get("/tiles/street_furniture/8/127/85.mvt").content)["street_furniture"]
        assert sum(f["properties"]["count"] for f in layer["features"]) > 0
    with psycopg.connect(isolated.url) as c:
        builds = dict(c.execute("SELECT kind, grid FROM tile_summary_builds").fetchall())
        counts = dict(
            c.execute(
                """SELECT kind, sum(n) FROM tile_point_summaries
                   WHERE z = 0 AND borough_code IS NULL AND subtype IS NULL AND status IS NULL GROUP BY kind"""
            ).fetchall()
        )
        assets = dict(
            c.execute(
                """SELECT kind, count(*) FROM assets WHERE retired_at IS NULL
                   AND kind IN ('street_furniture', 'public_building') GROUP BY kind"""
            ).fetchall()
        )
    assert builds["street_furniture"] == builds["public_building"] == summary_grid(13) == "32/12"
    assert counts == assets
