"""What the map asks for besides tiles: place search, where a point is, the wards, an asset's wayleaves."""

from __future__ import annotations

import gzip
import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo.reference import places

CAMDEN = "E09000007"


def found(client: TestClient, q: str, **params: object) -> list[dict]:
    r = client.get("/places", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return r.json()["places"]


# Postcodes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("q", ["NW1 2DB", "nw12db", "  nw1   2db ", "NW12DB"])
def test_a_full_postcode_is_the_one_answer_at_its_centroid(client: TestClient, q: str) -> None:
    [place] = found(client, q)
    assert place["kind"] == "postcode" and place["id"] == place["label"] == "NW1 2DB"
    # Code-Point Open: NW1 2DB is at 529933, 182660 (Euston Road), about -0.1270, 51.5300.
    assert place["lon"] == pytest.approx(-0.127, abs=0.002) and place["lat"] == pytest.approx(
        51.530, abs=0.002
    )
    assert place["borough_code"] == CAMDEN and place["bbox"] is None


def test_a_district_is_framed_and_its_postcodes_follow(client: TestClient) -> None:
    results = found(client, "NW1", limit=5)
    district = results[0]
    assert district["kind"] == "postcode_district" and district["id"] == "NW1"
    west, south, east, north = district["bbox"]
    assert west < district["lon"] < east and south < district["lat"] < north
    assert [p["kind"] for p in results[1:]] == ["postcode"] * 4
    assert all(p["id"].startswith("NW1 ") for p in results[1:])


def test_a_partial_inward_code_keeps_its_space(client: TestClient) -> None:
    results = found(client, "SE1 7", limit=20)
    assert results and all(p["id"].startswith("SE1 7") for p in results)  # never SE17 ...


def test_postcode_prefixes_are_binary_searches_of_the_sorted_codes() -> None:
    index = places.postcodes()
    assert len(index) == 181_216
    assert list(index.codes) == sorted(index.codes)
    hits = index.starting("EC1A 1", 1000)
    assert hits and all(str(index.codes[i]).startswith("EC1A 1") for i in hits)
    brute = [i for i, c in enumerate(index.codes) if str(c).startswith("EC1A 1")]
    assert hits == brute


# Boroughs, wards, assets -------------------------------------------------------------------------------
def test_boroughs_and_wards_by_name(client: TestClient) -> None:
    results = found(client, "camden")
    kinds = [p["kind"] for p in results]
    assert results[0]["kind"] == "borough" and results[0]["id"] == CAMDEN and results[0]["label"] == "Camden"
    assert "ward" in kinds  # Camden Town with Primrose Hill
    ward = next(p for p in results if p["kind"] == "ward")
    assert ward["label"] == "Camden Town with Primrose Hill" and ward["detail"] == "Ward in Camden"
    west, south, east, north = ward["bbox"]
    assert west < ward["lon"] < east and south < ward["lat"] < north  # the label point lies inside
    [gospel] = [p for p in found(client, "Gospel Oak") if p["kind"] == "ward"]
    assert gospel["id"] == "E05000134" and gospel["borough_code"] == CAMDEN


def test_an_asset_by_its_source_id_or_by_words_of_its_name(
    client: TestClient, conn: psycopg.Connection
) -> None:
    asset_id, source_id, name = conn.execute(
        """SELECT id, source_id, name FROM assets WHERE borough_code = %s AND kind = 'public_building'
           AND retired_at IS NULL AND name LIKE 'Library%%' ORDER BY id LIMIT 1""",
        [CAMDEN],
    ).fetchone()
    by_id = found(client, source_id.lower())
    assert by_id[0]["kind"] == "asset" and by_id[0]["id"] == str(asset_id)
    assert by_id[0]["layer"] == "public_buildings" and by_id[0]["bbox"] is not None  # a polygon: framed
    words = name.split(" ")[:2]  # "Library 159"
    by_name = [
        p for p in found(client, f"{words[0][:4]} {words[1]} camden", limit=50) if p["kind"] == "asset"
    ]
    assert str(asset_id) in [p["id"] for p in by_name]
    assert all("Camden" in p["label"] and "Library" in p["detail"] for p in by_name)


def test_a_retired_asset_is_not_found(isolated) -> None:
    with psycopg.connect(isolated.url, autocommit=True) as c:
        source_id = c.execute(
            "UPDATE assets SET retired_at = now() WHERE id = (SELECT min(id) FROM assets WHERE kind = 'street_furniture') "
            "RETURNING source_id"
        ).fetchone()[0]
    assert not [
        p for p in found(isolated.client, source_id) if p["id"] == source_id or p["label"] == source_id
    ]


def test_a_pipeline_project_by_its_title(isolated) -> None:
    with psycopg.connect(isolated.url, autocommit=True) as c:
        project_id = c.execute(
            """INSERT INTO pipeline_projects (title, organisation, source, placement, borough_code)
               VALUES ('Kentish Town gigabit vouchers', 'London Borough of Camden', 'api', 'borough', %s)
               RETURNING id""",
            [CAMDEN],
        ).fetchone()[0]
    [project] = [p for p in found(isolated.client, "gigabit vouch") if p["kind"] == "project"]
    assert project["id"] == str(project_id) and project["layer"] == "pipeline_projects"
    assert project["borough_code"] == CAMDEN and "placed in its borough" in project["detail"]


def test_every_kind_found_is_represented_within_the_limit(client: TestClient) -> None:
    results = found(client, "camden", limit=3)
    assert len(results) == 3 and {"borough", "ward", "asset"} <= {p["kind"] for p in results}


# Bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": "x"}, "at least 2"),
        ({"q": "   a  "}, "at least 2"),
        ({"q": "a" * 101}, "at most 100"),
        ({"q": "NW1", "limit": 0}, "limit"),
        ({"q": "NW1", "limit": 51}, "limit"),
        ({"q": "NW1", "limit": "ten"}, "limit"),
        ({"q": "NW1", "limit": "²"}, "limit"),  # a digit to str.isdigit, not to int
        ({"q": "NW1", "limit": "1" * 400}, "limit"),
        ({"q": "ab\x01"}, "control characters"),
        ({}, "q"),
    ],
)
def test_bad_searches_are_400_problems(client: TestClient, params: dict, words: str) -> None:
    r = client.get("/places", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]


def test_a_query_reaches_sql_only_as_bound_words(client: TestClient) -> None:
    assert places.name_query("Library') & !x:* | (camden") == "library:* & x:* & camden:*"
    assert places.name_query("%%%") is None
    for q in ("%", "'; DROP TABLE assets; --", "a\\b", "_x_", "!!", "& | !"):
        r = client.get("/places", params={"q": q * 2})
        assert r.status_code == 200, (q, r.text)


# Where a point is ---------------------------------------------------------------------------------------
def test_nearest_names_the_postcode_ward_and_borough_of_a_point(client: TestClient) -> None:
    r = client.get("/places/nearest", params={"lon": -0.1627, "lat": 51.5455})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ward"] == "Belsize" and body["ward_code"] == "E05000128" and body["borough_code"] == CAMDEN
    assert body["postcode"].startswith("NW3") and body["distance_m"] < 200
    index = places.postcodes()
    from geo.core.crs import transformer

    x, y = transformer(4326, 27700).transform(-0.1627, 51.5455)
    brute = min(range(len(index)), key=lambda i: (index.x[i] - x) ** 2 + (index.y[i] - y) ** 2)
    assert body["postcode"] == str(index.codes[brute])


@pytest.mark.parametrize(
    "params",
    [
        {"lon": 2, "lat": 51.5},
        {"lon": -0.1, "lat": 53},
        {"lon": "x", "lat": 51.5},
        {"lon": "nan", "lat": 51.5},
        {"lon": "-0.1", "lat": "inf"},
        {"lon": "²", "lat": 51.5},
        {},
    ],
)
def test_nearest_outside_london_or_without_a_point_is_400(client: TestClient, params: dict) -> None:
    r = client.get("/places/nearest", params=params)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")


# Wards ----------------------------------------------------------------------------------------------------
def test_the_wards_are_625_named_outlines_with_a_label_inside_each(client: TestClient) -> None:
    r = client.get("/map/wards.geojson")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    data = r.json()
    assert len(data["features"]) == 625
    import shapely

    for f in data["features"]:
        props = f["properties"]
        assert set(props) == {"code", "name", "borough_code", "borough", "label"}
        assert props["borough_code"].startswith("E09") and props["name"]
        shape = shapely.geometry.shape(f["geometry"])
        assert shape.is_valid and shape.buffer(1e-4).contains(shapely.Point(props["label"]))
    assert len({f["properties"]["borough_code"] for f in data["features"]}) == 33
    assert any(f["properties"]["name"] == "Gospel Oak" for f in data["features"])


def test_the_wards_are_sent_gzipped_and_revalidated(client: TestClient) -> None:
    plain = client.get("/map/wards.geojson", headers={"Accept-Encoding": "identity"})
    zipped = client.get("/map/wards.geojson", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and zipped.headers["content-encoding"] == "gzip"
    assert json.loads(zipped.content) == json.loads(plain.content)  # httpx decoded it
    assert len(gzip.compress(plain.content)) < len(plain.content) / 3
    etag = plain.headers["etag"]
    again = client.get("/map/wards.geojson", headers={"If-None-Match": etag})
    assert again.status_code == 304 and "max-age" in again.headers["cache-control"]


# An asset's wayleaves -----------------------------------------------------------------------------------
def test_an_assets_wayleaves_say_status_and_days_but_never_the_operator(isolated) -> None:
    with psycopg.connect(isolated.url, autocommit=True) as c:
        asset_id, other = [
            r[0]
            for r in c.execute(
                "SELECT id FROM assets WHERE borough_code = %s AND kind = 'street_furniture' ORDER BY id LIMIT 2",
                [CAMDEN],
            )
        ]
    body = {
        "operator": "Secret Fibre",
        "asset_ids": [asset_id],
        "site_name": "Map site",
        "contact_name": "Pat",
    }
    created = isolated.client.post("/wayleaves", json=body, headers=isolated.auth("camden"))
    assert created.status_code == 201, created.text
    r = isolated.client.get(f"/map/assets/{asset_id}/wayleaves")
    assert r.status_code == 200, r.text
    [w] = r.json()
    assert w["id"] == created.json()["id"] and w["status"] == "identified" and w["site_name"] == "Map site"
    assert w["days_in_status"] == 0 and "Secret Fibre" not in r.text and "Pat" not in r.text
    assert isolated.client.get(f"/map/assets/{other}/wayleaves").json() == []
    assert isolated.client.get("/map/assets/999999999/wayleaves").status_code == 404
    assert isolated.client.get("/map/assets/abc/wayleaves").status_code == 400
