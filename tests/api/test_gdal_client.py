"""GDAL (Debian's gdal-bin) as a real OGC API Features and MVT client of the running service."""

import json
import subprocess

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
