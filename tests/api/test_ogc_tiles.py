"""OGC API Tiles (tile matrix set, tilesets, tiles) and CQL2 filters on tiles, decoded and compared with the database."""

import json
import math
import subprocess
from urllib.parse import urlencode
from urllib.request import urlopen

import mapbox_vector_tile
import pytest

from geo.layers.collections import COLLECTIONS

TRAFALGAR_Z14 = (14, 8186, 5448)
HALF_WORLD = 20037508.342789244
TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
MVT = "application/vnd.mapbox-vector-tile"


def decode(content):
    return mapbox_vector_tile.decode(content) if content else {}


def features_of(response, layer):
    assert response.status_code == 200, response.text
    return decode(response.content).get(layer, {"features": []})["features"]


def ogc(collection, z, x, y):
    """The OGC API Tiles URL of tile z/x/y: row (y) before column (x)."""
    return f"/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def in_tile(conn, kind, tile, condition="true", params=()):
    z, x, y = tile
    return {
        r[0]
        for r in conn.execute(
            f"""SELECT id FROM assets WHERE kind = %s AND retired_at IS NULL AND ({condition})
                AND geom_3857 && ST_TileEnvelope(%s, %s, %s, margin => %s)""",
            [kind, *params, z, x, y, 64 / 4096],
        )
    }


def count_of(conn, kind, condition, params=()):
    return conn.execute(
        f"SELECT count(*) FROM assets WHERE kind = %s AND retired_at IS NULL AND ({condition})",
        [kind, *params],
    ).fetchone()[0]


def test_the_tile_matrix_set_is_web_mercator_quad_in_tms_2_json(client):
    listing = client.get("/tileMatrixSets").json()
    assert [t["id"] for t in listing["tileMatrixSets"]] == ["WebMercatorQuad"]
    href = listing["tileMatrixSets"][0]["links"][0]["href"]
    assert href.endswith("/tileMatrixSets/WebMercatorQuad")
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    assert tms["uri"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    matrices = tms["tileMatrices"]
    assert [m["id"] for m in matrices] == [str(z) for z in range(25)]
    z0, z14 = matrices[0], matrices[14]
    assert z0["matrixWidth"] == z0["matrixHeight"] == 1 and z14["matrixWidth"] == 2**14
    assert math.isclose(z0["cellSize"], 156543.03392804097) and math.isclose(
        z0["scaleDenominator"], 559082264.0287178
    )
    assert math.isclose(z14["cellSize"] * 2**14, z0["cellSize"])
    assert z14["pointOfOrigin"] == [-HALF_WORLD, HALF_WORLD] and z14["cornerOfOrigin"] == "topLeft"
    missing = client.get("/tileMatrixSets/WorldCRS84Quad")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert "WebMercatorQuad" in missing.json()["detail"]


@pytest.mark.parametrize("collection", list(COLLECTIONS))
def test_every_collection_has_a_vector_tileset(client, settings, collection):
    listing = client.get(f"/collections/{collection}/tiles").json()
    (entry,) = listing["tilesets"]
    assert entry["dataType"] == "vector" and entry["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    rels = {link["rel"]: link["href"] for link in entry["links"]}
    assert rels["self"].endswith(f"/collections/{collection}/tiles/WebMercatorQuad")
    assert rels[TILING_SCHEME].endswith("/tileMatrixSets/WebMercatorQuad")

    tileset = client.get(f"/collections/{collection}/tiles/WebMercatorQuad").json()
    assert tileset["dataType"] == "vector" and tileset["crs"].endswith("/EPSG/0/3857")
    (item,) = [link for link in tileset["links"] if link["rel"] == "item"]
    assert item["type"] == MVT and item["templated"] is True
    assert item["href"].endswith(
        f"/collections/{collection}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
    )
    (layer,) = tileset["layers"]
    assert layer["id"] == collection and layer["minTileMatrix"] == "0"
    assert layer["maxTileMatrix"] == str(settings.tiles.max_zoom)
    assert set(layer["propertiesSchema"]["properties"]) == set(COLLECTIONS[collection].tile_properties)
    collection_doc = client.get(f"/collections/{collection}").json()
    tiles_link = [link for link in collection_doc["links"] if link["rel"] == TILESETS_VECTOR]
    assert tiles_link and tiles_link[0]["href"].endswith(f"/collections/{collection}/tiles")


def test_tileset_limits_hold_the_data_and_the_template_gives_the_tiles(client):
    tileset = client.get("/collections/street_furniture/tiles/WebMercatorQuad").json()
    limits = {lim["tileMatrix"]: lim for lim in tileset["tileMatrixSetLimits"]}
    assert set(limits) == {str(z) for z in range(23)}
    assert limits["0"] == {
        "tileMatrix": "0",
        "minTileRow": 0,
        "maxTileRow": 0,
        "minTileCol": 0,
        "maxTileCol": 0,
    }
    z, x, y = TRAFALGAR_Z14
    z14 = limits["14"]
    assert z14["minTileCol"] <= x <= z14["maxTileCol"] and z14["minTileRow"] <= y <= z14["maxTileRow"]
    west, south = tileset["boundingBox"]["lowerLeft"]
    assert -0.6 < west < 0 < 51.2 < south
    template = next(link["href"] for link in tileset["links"] if link["rel"] == "item")
    url = template.replace("{tileMatrix}", str(z)).replace("{tileRow}", str(y)).replace("{tileCol}", str(x))
    assert features_of(client.get(url), "street_furniture")


def test_the_landing_page_links_the_tile_matrix_sets_and_conformance_declares_tiles(client):
    links = client.get("/").json()["links"]
    assert any(
        link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
        and link["href"].endswith("/tileMatrixSets")
        for link in links
    )
    conforms = set(client.get("/conformance").json()["conformsTo"])
    base = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
    assert {
        base + c for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt", "oas30")
    } <= conforms
    assert "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset" in conforms
    paths = client.get("/openapi.json").json()["paths"]
    assert "/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}" in paths
    assert "/tileMatrixSets/{tileMatrixSetId}" in paths


@pytest.mark.parametrize(
    ("collection", "tile"),
    [
        ("street_furniture", TRAFALGAR_Z14),
        ("street_furniture", (8, 127, 85)),
        ("ducts", (10, 511, 340)),
        ("boroughs", (9, 255, 170)),
    ],
)
def test_ogc_tiles_are_the_same_bytes_cache_and_etag_as_tiles(client, collection, tile):
    z, x, y = tile
    cache = client.app.state.tile_cache
    ours = client.get(f"/tiles/{collection}/{z}/{x}/{y}.mvt")
    kept = len(cache)
    standard = client.get(ogc(collection, z, x, y))
    assert standard.status_code == ours.status_code == 200
    assert standard.content == ours.content and standard.content
    assert standard.headers["etag"] == ours.headers["etag"]
    assert len(cache) == kept  # the same cache entry served it
    again = client.get(ogc(collection, z, x, y), headers={"If-None-Match": ours.headers["etag"]})
    assert again.status_code == 304
    gzipped = client.get(ogc(collection, z, x, y), headers={"Accept-Encoding": "gzip"})
    assert gzipped.content == ours.content  # decompressed by the client


@pytest.mark.parametrize(
    ("tms", "z", "row", "col", "status"),
    [
        ("WebMercatorQuad", 23, 0, 0, 404),
        ("WebMercatorQuad", 3, 0, 8, 404),
        ("WebMercatorQuad", 3, 8, 0, 404),
        ("WebMercatorQuad", -1, 0, 0, 404),
        ("WebMercatorQuad", 2, -1, 0, 404),
        ("WebMercatorQuad", 10**20, 0, 0, 404),
        ("WebMercatorQuad", "abc", 0, 0, 400),
        ("WebMercatorQuad", 1.5, 0, 0, 400),
        ("WorldCRS84Quad", 0, 0, 0, 404),
    ],
)
def test_tiles_outside_the_matrix_are_problems(client, tms, z, row, col, status):
    answer = client.get(f"/collections/street_furniture/tiles/{tms}/{z}/{row}/{col}")
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json" and answer.json()["detail"]


def test_unknown_collections_and_parameters_are_problems(client):
    assert client.get("/collections/nope/tiles").status_code == 404
    assert client.get("/collections/nope/tiles/WebMercatorQuad/0/0/0").status_code == 404
    answer = client.get(ogc("street_furniture", 0, 0, 0), params={"filtre": "x"})
    assert answer.status_code == 400 and "filtre" in answer.json()["detail"]


# CQL2 filters on tiles ---------------------------------------------------------------------------------
LAMPS = "subtype = 'lamp_post'"
LAMPS_JSON = json.dumps({"op": "=", "args": [{"property": "subtype"}, "lamp_post"]})


@pytest.mark.parametrize(
    "url",
    [
        f"/tiles/street_furniture/{TRAFALGAR_Z14[0]}/{TRAFALGAR_Z14[1]}/{TRAFALGAR_Z14[2]}.mvt",
        ogc("street_furniture", *TRAFALGAR_Z14),
    ],
)
def test_a_filtered_tile_holds_only_the_matching_features(client, conn, url):
    every = features_of(client.get(url), "street_furniture")
    lamps = features_of(client.get(url, params={"filter": LAMPS}), "street_furniture")
    assert {f["id"] for f in lamps} == in_tile(
        conn, "street_furniture", TRAFALGAR_Z14, "subtype = 'lamp_post'"
    )
    assert 0 < len(lamps) < len(every)
    assert {f["properties"]["subtype"] for f in lamps} == {"lamp_post"}
    as_json = client.get(url, params={"filter": LAMPS_JSON, "filter-lang": "cql2-json"})
    assert as_json.content == client.get(url, params={"filter": LAMPS}).content
    either = "subtype = 'lamp_post' OR status <> 'in_service'"
    mixed = features_of(client.get(url, params={"filter": either}), "street_furniture")
    assert {f["id"] for f in mixed} == in_tile(conn, "street_furniture", TRAFALGAR_Z14, either)
    near = "S_DWITHIN(geometry, POINT(-0.1281 51.5080), 150)"
    close = features_of(client.get(url, params={"filter": near}), "street_furniture")
    expected = in_tile(
        conn,
        "street_furniture",
        TRAFALGAR_Z14,
        "ST_DWithin(geom, ST_Transform(ST_SetSRID(ST_MakePoint(-0.1281, 51.5080), 4326), 27700), 150)",
    )
    assert {f["id"] for f in close} == expected and 0 < len(expected) < len(every)


def test_two_filters_never_share_a_cache_entry_or_an_etag(client):
    url = ogc("street_furniture", *TRAFALGAR_Z14)
    cache = client.app.state.tile_cache
    lamps_filter, stops_filter = "subtype IN ('lamp_post')", "subtype IN ('bus_stop')"  # asked nowhere else
    plain = client.get(url)
    before = len(cache)
    lamps = client.get(url, params={"filter": lamps_filter})
    stops = client.get(url, params={"filter": stops_filter})
    assert len({lamps.content, stops.content, plain.content}) == 3
    assert len({lamps.headers["etag"], stops.headers["etag"], plain.headers["etag"]}) == 3
    assert len(cache) == before + 2
    # Asked again, each gets its own bytes back from the cache (no new entry).
    assert client.get(url, params={"filter": stops_filter}).content == stops.content
    assert client.get(url, params={"filter": lamps_filter}).content == lamps.content
    assert client.get(url).content == plain.content
    assert len(cache) == before + 2
    # The same filter written otherwise is the same SQL: the same entry and ETag.
    spaced = client.get(url, params={"filter": "subtype in ( 'lamp_post' )"})
    assert spaced.headers["etag"] == lamps.headers["etag"] and len(cache) == before + 2
    # An ETag is valid for its own filter only.
    with_tag = {"If-None-Match": lamps.headers["etag"]}
    assert client.get(url, params={"filter": lamps_filter}, headers=with_tag).status_code == 304
    assert client.get(url, params={"filter": stops_filter}, headers=with_tag).status_code == 200
    assert client.get(url, headers=with_tag).status_code == 200


def test_below_the_raw_zoom_a_filter_of_boroughs_subtypes_statuses_reads_the_summaries(client, conn):
    params = {"subtype": "lamp_post", "borough": "E09000007"}
    cql = "subtype = 'lamp_post' AND borough_code IN ('E09000007')"
    by_params = client.get("/tiles/street_furniture/0/0/0.mvt", params=params)
    by_cql = client.get(ogc("street_furniture", 0, 0, 0), params={"filter": cql})
    assert by_cql.content == by_params.content
    counts = [f["properties"]["count"] for f in features_of(by_cql, "street_furniture")]
    assert (
        sum(counts)
        == count_of(conn, "street_furniture", "subtype = 'lamp_post' AND borough_code = 'E09000007'")
        > 0
    )
    # With the parameters too: both apply (here nothing is left).
    both = client.get(ogc("street_furniture", 0, 0, 0), params={"filter": cql, "borough": "E09000012"})
    assert features_of(both, "street_furniture") == []


def _cells(features):
    return sorted((f["properties"]["count"], tuple(f["geometry"]["coordinates"])) for f in features)


@pytest.mark.parametrize("tile", [(0, 0, 0), (10, 511, 340), (12, 2046, 1362)])
def test_below_the_raw_zoom_any_other_filter_is_counted_from_the_features_as_the_summaries_would(
    client, conn, tile
):
    z, x, y = tile
    # The same selection, once as the summaries can read it and once in a form they cannot.
    summary = client.get(ogc("street_furniture", z, x, y), params={"filter": LAMPS})
    live = client.get(ogc("street_furniture", z, x, y), params={"filter": "NOT (subtype <> 'lamp_post')"})
    summary_cells, live_cells = (
        _cells(features_of(summary, "street_furniture")),
        _cells(features_of(live, "street_furniture")),
    )
    assert [c for c, _ in live_cells] == [c for c, _ in summary_cells] and live_cells
    for (_, a), (_, b) in zip(live_cells, summary_cells, strict=True):
        assert abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1
    assert live.headers["etag"] != summary.headers["etag"]
    if z == 0:
        assert sum(c for c, _ in live_cells) == count_of(conn, "street_furniture", "subtype = 'lamp_post'")


def test_clusters_take_the_filter_too(client, conn):
    url = "/tiles/street_furniture/clusters/0/0/0.json"
    summary = client.get(url, params={"subtype": "lamp_post"}).json()["cells"]
    live = client.get(url, params={"filter": "NOT (subtype <> 'lamp_post')"})
    assert live.status_code == 200, live.text
    cells = live.json()["cells"]
    assert [(c["i"], c["j"], c["count"]) for c in cells] == [(c["i"], c["j"], c["count"]) for c in summary]
    assert sum(c["count"] for c in cells) == count_of(conn, "street_furniture", "subtype = 'lamp_post'")
    bad = client.get(url, params={"filter": "subtype = "})
    assert bad.status_code == 400


def test_a_line_layer_below_the_raw_zoom_merges_the_matching_lines(client, conn):
    z, x, y = 10, 511, 340
    condition = "status <> 'in_service'"
    answer = features_of(client.get(ogc("ducts", z, x, y), params={"filter": condition}), "ducts")
    expected = len(in_tile(conn, "duct", (z, x, y), condition))
    if expected == 0:
        assert answer == []
    else:
        assert len(answer) == 1 and answer[0]["properties"]["count"] == expected
        assert answer[0]["properties"]["length_m"] > 0
    unfiltered = features_of(client.get(ogc("ducts", z, x, y)), "ducts")
    assert sum(f["properties"]["count"] for f in unfiltered) >= expected


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"filter": "subtype = = 'x'"}, "line 1, column"),
        ({"filter": "colour = 'red'"}, "'colour' is not a queryable"),
        ({"filter": "{not json", "filter-lang": "cql2-json"}, "not JSON"),
        ({"filter": LAMPS, "filter-crs": "EPSG:9999"}, "filter-crs"),
        ({"filter": LAMPS, "filter-lang": "sql"}, "filter-lang"),
        ({"filter": "subtype = 'x'; DROP TABLE assets"}, "filter"),
    ],
)
def test_a_bad_filter_is_a_400_saying_where(client, params, says):
    for url in (ogc("street_furniture", *TRAFALGAR_Z14), "/tiles/street_furniture/0/0/0.mvt"):
        answer = client.get(url, params=params)
        assert answer.status_code == 400, answer.text
        assert (
            answer.headers["content-type"] == "application/problem+json" and says in answer.json()["detail"]
        )


def test_a_role_filters_only_by_what_it_may_see(client, conn, auth):
    by = "changed_by = 'demo: synthetic'"
    url = ogc("street_furniture", 0, 0, 0)
    anonymous = client.get(url, params={"filter": by})
    assert anonymous.status_code == 400 and "'changed_by' is not a queryable" in anonymous.json()["detail"]
    assert client.get(url, params={"filter": by}, headers=auth("operator")).status_code == 400
    admin = client.get(url, params={"filter": by}, headers=auth("admin"))
    camden = client.get(url, params={"filter": by}, headers=auth("camden"))
    total = count_of(conn, "street_furniture", "changed_by = 'demo: synthetic'")
    in_camden = count_of(
        conn, "street_furniture", "changed_by = 'demo: synthetic' AND borough_code = 'E09000007'"
    )
    assert sum(f["properties"]["count"] for f in features_of(admin, "street_furniture")) == total
    assert sum(f["properties"]["count"] for f in features_of(camden, "street_furniture")) == in_camden
    assert 0 < in_camden < total
    # A borough key's filter on a value it sees only on its own rows is another filter: another entry and ETag.
    assert camden.headers["etag"] != admin.headers["etag"] and camden.content != admin.content
    hackney = client.get(url, params={"filter": by}, headers=auth("hackney"))
    assert hackney.headers["etag"] not in (admin.headers["etag"], camden.headers["etag"])


# GDAL as a client --------------------------------------------------------------------------------------
def _gdal_version():
    out = subprocess.run(
        ["ogrinfo", "--version"], capture_output=True, text=True
    ).stdout  # "GDAL 3.6.2, released …"
    return tuple(int(p) for p in out.split()[1].rstrip(",").split(".")[:2])


def _tile_bounds_3857(z, x, y):
    size = 2 * HALF_WORLD / 2**z
    west, north = -HALF_WORLD + x * size, HALF_WORLD - y * size
    return west, north - size, west + size, north


def test_gdal_ogcapi_driver_finds_the_vector_tiles(live_server, client):
    """``ogrinfo OGCAPI:…/collections/street_furniture -oo API=TILES`` follows collection -> tilesets ->
    tileset -> tile matrix set, and (GDAL 3.7 and later) reads the tiles of a zoom as a layer."""
    z, x, y = TRAFALGAR_Z14
    west, south, east, north = _tile_bounds_3857(z, x, y)
    inset = (east - west) / 10  # the area of this one tile
    result = subprocess.run(
        ["ogrinfo", "--debug", "ON", "-ro", "-al", "-q", "-oo", "API=TILES",
         "-oo", f"MINX={west + inset}", "-oo", f"MINY={south + inset}",
         "-oo", f"MAXX={east - inset}", "-oo", f"MAXY={north - inset}",
         f"OGCAPI:{live_server}/collections/street_furniture", f"Zoom level {z}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    fetched = [
        line[len("HTTP: Fetch(") : -1]
        for line in result.stderr.splitlines()
        if line.startswith("HTTP: Fetch(")
    ]
    base = f"{live_server}/collections/street_furniture"
    assert fetched[:4] == [
        base,
        f"{base}/tiles",
        f"{base}/tiles/WebMercatorQuad",
        f"{live_server}/tileMatrixSets/WebMercatorQuad",
    ]
    assert "ERROR" not in result.stderr, result.stderr
    if _gdal_version() < (3, 7):
        # GDAL 3.6's InitWithTilesAPI builds layers for map tiles only: having parsed the tile matrix
        # set (checked: no error above) it returns without a layer for vector tiles (fixed in 3.7).
        pytest.skip("GDAL < 3.7 reads no vector tiles through OGC API Tiles; the discovery above is checked")
    assert result.returncode == 0, result.stderr
    expected = decode(client.get(f"/tiles/street_furniture/{z}/{x}/{y}.mvt").content)["street_furniture"][
        "features"
    ]
    assert result.stdout.count("OGRFeature(") == len(expected) > 0


def test_gdal_reads_our_tile_matrix_set(live_server, tmp_path):
    """GDAL's own TMS parser (the COG driver's TILING_SCHEME, given our URL) tiles a raster on our WebMercatorQuad."""
    source, target = tmp_path / "in.tif", tmp_path / "out.tif"
    subprocess.run(
        ["gdal_create", "-of", "GTiff", "-outsize", "64", "64", "-bands", "1", "-a_srs", "EPSG:3857",
         "-a_ullr", "-14500", "6711000", "-13500", "6710000", str(source)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    url = f"{live_server}/tileMatrixSets/WebMercatorQuad"
    made = subprocess.run(
        ["gdal_translate", "-q", "-of", "COG", "-co", f"TILING_SCHEME={url}", str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0 and "ERROR" not in made.stderr, made.stderr
    info = json.loads(
        subprocess.run(["gdalinfo", "-json", str(target)], capture_output=True, text=True, timeout=60).stdout
    )
    ulx, res, _, uly, _, _ = info["geoTransform"]
    zoom = round(math.log2(2 * HALF_WORLD / 256 / res))
    assert math.isclose(res, 2 * HALF_WORLD / 256 / 2**zoom)  # a cellSize of our matrices
    tile = 256 * res  # the raster starts on a tile corner of that zoom
    assert math.isclose((ulx + HALF_WORLD) / tile, round((ulx + HALF_WORLD) / tile), abs_tol=1e-6)
    assert math.isclose((HALF_WORLD - uly) / tile, round((HALF_WORLD - uly) / tile), abs_tol=1e-6)


@pytest.mark.parametrize("cql", [None, LAMPS])
def test_gdal_mvt_driver_reads_an_ogc_tile_fetched_over_http(live_server, client, tmp_path, cql):
    z, x, y = TRAFALGAR_Z14
    path = ogc("street_furniture", z, x, y) + (f"?{urlencode({'filter': cql})}" if cql else "")
    with urlopen(live_server + path, timeout=30) as answer:  # a real HTTP request to the running service
        assert answer.headers["Content-Type"] == MVT
        tile = tmp_path / "tile.mvt"
        tile.write_bytes(answer.read())
    result = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-q", "-oo", "CLIP=NO", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}", str(tile)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = features_of(client.get(path), "street_furniture")
    assert result.stdout.count("OGRFeature(") == len(expected) > 0
    assert result.stdout.count("subtype (String) = lamp_post") == sum(
        f["properties"]["subtype"] == "lamp_post" for f in expected
    )
    if cql:
        assert "subtype (String) = bus_stop" not in result.stdout
