"""GDAL (Debian's gdal-bin) as a real OGC API Features and MVT client of the running service."""

import json
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest

BBOX = ("-0.16", "51.53", "-0.13", "51.55")


def gdal(*args, timeout=120):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ogrinfo_lists_the_collections(live_server):
    out = gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server}")
    for collection in ("boroughs", "public_buildings", "street_furniture", "ducts"):
        assert collection in out


def test_ogrinfo_reads_a_collection(live_server):
    out = gdal(
        "ogrinfo",
        "-ro",
        "-al",
        "-so",
        "-oo",
        "PAGE_SIZE=1000",
        f"OAPIF:{live_server}/collections/boroughs",
        "boroughs",
    )
    assert "Feature Count: 33" in out
    assert "name: String" in out and "Geometry: Multi Polygon" in out


def test_ogr2ogr_with_a_bbox_reads_the_features_the_api_returns(live_server, client, tmp_path):
    target = tmp_path / "camden.geojson"
    gdal(
        "ogr2ogr", "-f", "GeoJSON", str(target), f"OAPIF:{live_server}", "street_furniture",
        "-spat", *BBOX, "-oo", "PAGE_SIZE=1000",
    )  # fmt: skip
    read = json.loads(target.read_text())["features"]
    key = ("borough_code", "source_id")  # unique per feature of the layer
    gdal_ids = [tuple(f["properties"][k] for k in key) for f in read]
    api_ids = []
    url, params = "/collections/street_furniture/items", {"bbox": ",".join(BBOX), "limit": 1000}
    while url:
        body = client.get(url, params=params).json()
        api_ids += [tuple(f["properties"][k] for k in key) for f in body["features"]]
        url, params = next((link["href"] for link in body["links"] if link["rel"] == "next"), None), None
    assert len(api_ids) > 100
    assert sorted(gdal_ids) == sorted(api_ids)


@pytest.mark.parametrize(
    ("collection", "tile"), [("street_furniture", (14, 8186, 5448)), ("ducts", (14, 8186, 5448))]
)
def test_gdal_mvt_driver_opens_a_tile(live_server, client, tmp_path, collection, tile):
    z, x, y = tile
    path = tmp_path / f"{collection}.pbf"
    path.write_bytes(client.get(f"/tiles/{collection}/{z}/{x}/{y}.mvt").content)
    out = gdal("ogrinfo", "-ro", "-al", "-so", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}", str(path))
    assert f"Layer name: {collection}" in out
    import mapbox_vector_tile

    expected = len(mapbox_vector_tile.decode(path.read_bytes())[collection]["features"])
    assert f"Feature Count: {expected}" in out


def _ogr2ogr_where(live_server, tmp_path, collection, where, *extra):
    """``ogr2ogr -where`` through GDAL's OAPIF driver: the features it wrote, and the filters it sent."""
    target = tmp_path / f"{collection}.geojson"
    # GDAL (3.6 to 3.9 at least) writes a -where as CQL text only when this option is set or when
    # the OpenAPI document's items path is /collections/{collectionId}/items with a filter-lang
    # parameter (ours names the path parameter collection_id). It then sends the parts of the
    # -where whose properties the collection's queryables list, and evaluates the rest itself.
    result = subprocess.run(
        ["ogr2ogr", "--config", "OGR_OAPIF_ALLOW_CQL_TEXT", "YES", "--debug", "ON", "-f", "GeoJSON", str(target),
         f"OAPIF:{live_server}", collection, "-where", where, "-oo", "PAGE_SIZE=1000", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sent = []
    for line in result.stderr.splitlines():
        if line.startswith("HTTP: Fetch(") and "filter=" in line:
            query = parse_qs(urlsplit(line[len("HTTP: Fetch(") : -1]).query)
            sent.append((query["filter"][0], query["filter-lang"][0]))
    return json.loads(target.read_text())["features"], sent


def _api_features(client, params):
    body = client.get(
        "/collections/{}/items".format(params.pop("collection")), params={"limit": 10000, **params}
    )
    assert body.status_code == 200, body.text
    assert "next" not in {link["rel"] for link in body.json()["links"]}
    return body.json()["features"]


@pytest.mark.parametrize(
    ("collection", "where", "sent", "spat"),
    [
        (
            "public_buildings",
            "subtype = 'school' AND height_m > 10",
            "(subtype = 'school') AND (height_m > 10)",
            (),
        ),
        (
            "public_buildings",
            "status <> 'in_service' OR name LIKE 'Library%'",
            "(status <> 'in_service') OR (name LIKE 'Library%')",
            (),
        ),
        (
            "public_buildings",
            "name ILIKE 'library%' AND NOT (last_surveyed IS NULL)",
            "(name ILIKE 'library%') AND (NOT ((last_surveyed IS NULL)))",
            (),
        ),
        (
            "street_furniture",
            "subtype = 'lamp_post' AND owner <> 'x'",
            "(subtype = 'lamp_post') AND (owner <> 'x')",
            BBOX,
        ),
    ],
)
def test_ogr2ogr_where_becomes_a_cql2_filter_the_server_runs(
    live_server, client, tmp_path, collection, where, sent, spat
):
    read, filters = _ogr2ogr_where(
        live_server, tmp_path, collection, where, *(("-spat", *spat) if spat else ())
    )
    assert filters and set(filters) == {(sent, "cql-text")}
    params = {"collection": collection, "filter": sent} | ({"bbox": ",".join(spat)} if spat else {})
    api = _api_features(client, params)
    key = ("borough_code", "source_id")  # unique per feature of a layer
    assert sorted(tuple(f["properties"][k] for k in key) for f in read) == sorted(
        tuple(f["properties"][k] for k in key) for f in api
    )
    everything = _api_features(
        client, {"collection": collection} | ({"bbox": ",".join(spat)} if spat else {})
    )
    assert 0 < len(api) < len(everything)


def test_ogr2ogr_sends_what_cql_can_say_and_filters_the_rest_itself(live_server, client, tmp_path):
    """GDAL writes no IN: it sends the date part (as 'YYYY-MM-DDT') and evaluates the IN on its side."""
    read, filters = _ogr2ogr_where(
        live_server,
        tmp_path,
        "public_buildings",
        "subtype IN ('library', 'school') AND last_surveyed >= '2022/01/01'",
    )
    assert filters == [("last_surveyed >= '2022-01-01T'", "cql-text")]
    text = "subtype IN ('library', 'school') AND last_surveyed >= DATE('2022-01-01')"
    api = _api_features(client, {"collection": "public_buildings", "filter": text})
    assert api and sorted(f["properties"]["source_id"] for f in read) == sorted(
        f["properties"]["source_id"] for f in api
    )
