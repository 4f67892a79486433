"""OGC API Features contract, checked against the database."""

import csv
import io

import pytest

BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
CAMDEN_BBOX_84 = "-0.16,51.53,-0.13,51.55"
LONDON_BBOX_84 = "-0.52,51.28,0.34,51.70"


def db_ids(conn, where, params=()):
    return {r[0] for r in conn.execute(f"SELECT id FROM assets WHERE retired_at IS NULL AND {where}", params)}


def all_pages(client, url, params):
    ids, pages = [], 0
    while url:
        body = client.get(url, params=params).json()
        params = None  # the next link carries them
        ids += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        pages += 1
    return ids, pages


def test_landing_page_and_conformance(client):
    landing = client.get("/").json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["data"].endswith("/collections")
    classes = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in classes
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in classes


def test_collections_describe_every_layer(client):
    body = client.get("/collections").json()
    ids = [c["id"] for c in body["collections"]]
    assert ids[:4] == ["boroughs", "public_buildings", "street_furniture", "ducts"]
    for c in body["collections"][:4]:
        west, south, east, north = c["extent"]["spatial"]["bbox"][0]
        assert -0.6 < west < east < 0.4 and 51.2 < south < north < 51.8
        assert BNG in c["crs"] and c["storageCrs"] == BNG
        assert any(link["rel"] == "items" for link in c["links"])
    assert client.get("/collections/ducts").json()["id"] == "ducts"
    missing = client.get("/collections/lamps")
    assert missing.status_code == 404 and "collections: boroughs" in missing.json()["detail"]


def test_items_are_geojson_in_wgs84_with_the_right_media_type(client):
    response = client.get("/collections/street_furniture/items", params={"limit": 3})
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == 3
    for feature in body["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert -0.6 < lon < 0.4 and 51.2 < lat < 51.8
        assert "crs" not in feature["geometry"]
        assert feature["properties"]["kind"] == "street_furniture"


def test_bbox_in_both_crss_matches_the_database(client, conn):
    expected = db_ids(
        conn,
        """kind = 'street_furniture' AND ST_Intersects(geom, ST_Transform(
               ST_Segmentize(ST_MakeEnvelope(-0.16, 51.53, -0.13, 51.55, 4326), 0.001), 27700))""",
    )
    ids, _ = all_pages(client, "/collections/street_furniture/items", {"bbox": CAMDEN_BBOX_84, "limit": 1000})
    assert len(ids) == len(set(ids)) and set(ids) == expected and expected
    bng = db_ids(
        conn,
        "kind = 'street_furniture' AND ST_Intersects(geom, ST_MakeEnvelope(528000, 183000, 530000, 185000, 27700))",
    )
    ids, _ = all_pages(
        client,
        "/collections/street_furniture/items",
        {"bbox": "528000,183000,530000,185000", "bbox-crs": BNG, "limit": 1000},
    )
    assert set(ids) == bng and bng


def test_output_in_british_national_grid_on_request(client):
    body = client.get("/collections/street_furniture/items", params={"limit": 1, "crs": BNG}).json()
    x, y = body["features"][0]["geometry"]["coordinates"]
    assert 500_000 < x < 565_000 and 155_000 < y < 205_000
    one = client.get(f"/collections/street_furniture/items/{body['features'][0]['id']}", params={"crs": BNG})
    assert one.headers["content-crs"] == f"<{BNG}>"


def test_epsg_4326_bbox_is_latitude_first(client):
    lat_first = client.get(
        "/collections/boroughs/items",
        params={"bbox": "51.53,-0.16,51.55,-0.13", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
    ).json()
    lon_first = client.get("/collections/boroughs/items", params={"bbox": CAMDEN_BBOX_84}).json()
    assert [f["id"] for f in lat_first["features"]] == [f["id"] for f in lon_first["features"]]


def test_property_filters_and_selection(client, conn):
    params = {
        "borough": "E09000007",
        "subtype": "lamp_post,cctv_column",
        "status": "in_service",
        "limit": 10000,
    }
    body = client.get(
        "/collections/street_furniture/items", params={**params, "properties": "subtype,status,borough_code"}
    ).json()
    expected = db_ids(
        conn,
        "kind = 'street_furniture' AND borough_code = 'E09000007' AND subtype IN ('lamp_post', 'cctv_column') AND status = 'in_service'",
    )
    assert {f["id"] for f in body["features"]} == expected and expected
    for f in body["features"]:
        assert set(f["properties"]) == {"subtype", "status", "borough_code"}
    assert body["numberMatched"] == len(expected)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bbox": "1,2,3"}, "bbox: '1,2,3' must be four finite numbers"),
        ({"bbox": "530000,180000,531000,181000"}, "is not longitude/latitude"),
        ({"bbox": "0,1,-1,2"}, "minimum above its maximum"),
        ({"subtype": "lamp"}, "subtype: 'lamp' is not one of"),
        ({"borough": "E09000099"}, "'E09000099' is not a London authority GSS code"),
        ({"properties": "colour"}, "properties: colour not in collection"),
        ({"crs": "EPSG:999"}, "crs: 'EPSG:999' is not supported"),
        ({"datetime": "yesterday"}, "datetime: 'yesterday' is not an RFC 3339 date-time"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "10001"}, "query.limit"),
        ({"after": "abc"}, "after: 'abc' is not a feature id"),
    ],
)
def test_bad_parameters_are_400_saying_what_and_where(client, params, message):
    response = client.get("/collections/street_furniture/items", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert message in response.json()["detail"]


def test_paging_reaches_every_feature_exactly_once(client, conn):
    ids, pages = all_pages(client, "/collections/boroughs/items", {"limit": 5})
    assert ids == sorted(ids) and len(ids) == 33 and len(set(ids)) == 33 and pages == 7
    expected = db_ids(conn, "kind = 'duct'")
    ids, pages = all_pages(client, "/collections/ducts/items", {"limit": 37, "properties": "status"})
    assert len(ids) == len(expected) and set(ids) == expected
    assert pages == -(-len(expected) // 37) or pages == -(-len(expected) // 37) + 1


def test_datetime_filters_on_the_last_change(client, conn, auth):
    asset_id = conn.execute(
        "SELECT max(id) FROM assets WHERE kind = 'public_building' AND borough_code = 'E09000007'"
    ).fetchone()[0]
    changed = client.patch(
        f"/assets/{asset_id}", json={"name": "Renamed library"}, headers=auth("camden")
    ).json()
    since = changed["valid_from"]
    body = client.get(
        "/collections/public_buildings/items", params={"datetime": f"{since}/..", "limit": 10000}
    ).json()
    assert asset_id in [f["id"] for f in body["features"]]
    assert all(f["properties"]["valid_from"] >= since[:19] for f in body["features"])
    before = client.get(
        "/collections/public_buildings/items", params={"datetime": "../2000-01-01T00:00:00Z"}
    ).json()
    assert before["features"] == []


def test_one_feature_and_a_missing_one(client):
    camden = client.get("/collections/boroughs/items/E09000007").json()
    assert camden["type"] == "Feature" and camden["properties"]["name"] == "Camden"
    assert camden["geometry"]["type"] == "MultiPolygon"
    assert client.get("/collections/boroughs/items/E09000099").status_code == 404
    assert client.get("/collections/ducts/items/abc").status_code == 404


def test_a_bbox_page_transforms_its_box_once_even_in_a_generic_plan(db_url):
    """After five runs a prepared statement may switch to a generic plan; the box must stay computed once."""
    import asyncio

    import psycopg

    from geo.core.query import Bbox
    from geo.layers import features
    from geo.layers.collections import get_collection

    collection = get_collection("street_furniture")
    query = features.ItemsQuery(bbox=Bbox(tuple(float(v) for v in CAMDEN_BBOX_84.split(","))), limit=20)

    async def pages() -> tuple[list[bytes], str]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            statements = []
            execute = c.execute

            async def capture(statement, params=None, **kw):
                statements.append((statement, params))
                return await execute(statement, params, **kw)

            c.execute = capture  # type: ignore[method-assign]
            custom = await features.get_items(c, collection, query)
            await execute("SET plan_cache_mode = force_generic_plan")
            generic = await features.get_items(c, collection, query)
            plans = []
            for statement, params in statements:  # every statement with the box
                if params and "b0" in params:
                    text = statement if isinstance(statement, str) else statement.as_string(c)
                    cur = await execute(f"EXPLAIN {text}", params, prepare=True)
                    plans.append("\n".join(r[0] for r in await cur.fetchall()))
            return [custom.features, generic.features], plans

    (custom, generic), plans = asyncio.run(pages())
    assert custom == generic and custom.count(b'"Feature"') == 20
    assert plans and all("CTE b" in plan and plan.count("st_transform") <= 1 for plan in plans)


@pytest.mark.parametrize(
    ("collection", "kind", "bbox", "params"),
    [
        ("street_furniture", "street_furniture", CAMDEN_BBOX_84, {"limit": 37}),
        ("ducts", "duct", LONDON_BBOX_84, {"limit": 3, "properties": "status"}),
        ("public_buildings", "public_building", LONDON_BBOX_84, {"limit": 50}),
        ("street_furniture", "street_furniture", CAMDEN_BBOX_84, {"limit": 25, "subtype": "lamp_post"}),
        (
            "street_furniture",
            "street_furniture",
            CAMDEN_BBOX_84,
            {"limit": 25, "filter": "status <> 'proposed'"},
        ),
    ],
)
def test_bbox_pages_are_in_place_order_and_reach_every_feature_in_the_box_once(
    client, conn, collection, kind, bbox, params
):
    box = f"ST_Transform(ST_Segmentize(ST_MakeEnvelope({bbox}, 4326), 0.001), 27700)"
    expected = db_ids(conn, f"kind = %s AND ST_Intersects(geom, {box})", [kind])
    if "subtype" in params:
        expected &= db_ids(conn, "subtype = 'lamp_post'")
    if "filter" in params:
        expected &= db_ids(conn, "status IS DISTINCT FROM 'proposed'") - db_ids(conn, "status IS NULL")
    ids, pages = all_pages(client, f"/collections/{collection}/items", {"bbox": bbox, **params})
    assert len(expected) > params["limit"] and len(ids) == len(set(ids)) and set(ids) == expected
    keys = dict(
        conn.execute("SELECT id, asset_cell_key(geom) FROM assets WHERE id = ANY(%s)", [ids]).fetchall()
    )
    assert [(keys[i], i) for i in ids] == sorted((keys[i], i) for i in ids)
    assert pages == -(-len(expected) // params["limit"])


def test_a_bbox_page_links_to_the_next_by_key_and_id_and_only_takes_such_a_cursor(client):
    first = client.get(
        "/collections/street_furniture/items", params={"bbox": CAMDEN_BBOX_84, "limit": 5}
    ).json()
    href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    after = href.split("after=")[1].split("&")[0].replace("%3A", ":")
    key, ident = (int(v) for v in after.split(":"))
    assert ident == first["features"][-1]["id"] and key > 0
    second = client.get(href).json()
    assert not {f["id"] for f in first["features"]} & {f["id"] for f in second["features"]}
    wrong = client.get(
        "/collections/street_furniture/items", params={"bbox": CAMDEN_BBOX_84, "after": str(ident)}
    )
    assert wrong.status_code == 400 and "key:id" in wrong.json()["detail"]
    assert client.get("/collections/street_furniture/items", params={"after": after}).status_code == 400
    # Layers without place keys keep id order and id cursors with a bbox.
    boroughs = client.get("/collections/boroughs/items", params={"bbox": CAMDEN_BBOX_84, "limit": 2}).json()
    assert "after=E" in next(link["href"] for link in boroughs["links"] if link["rel"] == "next")


def test_a_file_with_a_bbox_limit_and_cursor_holds_the_geojson_page_in_its_order(client):
    params = {"bbox": CAMDEN_BBOX_84, "limit": 25}
    first = client.get("/collections/street_furniture/items", params=params).json()
    href = next(link["href"] for link in first["links"] if link["rel"] == "next").replace(
        "http://testserver", ""
    )
    second = client.get(href).json()
    rows = csv.DictReader(io.StringIO(client.get(href + "&f=csv").text.lstrip("\ufeff")))
    ids = [int(row["id"]) for row in rows]
    assert ids == [f["id"] for f in second["features"]] and len(ids) == 25


@pytest.mark.parametrize(
    "after", ["1:²", "1:2:3", ":", "1:", "99999999999999999999:1", "1:-", "１:2", "1_0:2", " 1:2"]
)
def test_a_bbox_cursor_that_is_not_two_ints_is_a_400(client, after):
    answer = client.get(
        "/collections/street_furniture/items", params={"bbox": CAMDEN_BBOX_84, "after": after}
    )
    assert answer.status_code == 400 and "key:id" in answer.json()["detail"], answer.text


@pytest.mark.parametrize(
    ("bbox", "crs"),
    [
        ("-0.14,51.53,-0.14,51.54", None),  # no width
        ("-0.14,51.53,-0.14,51.53", None),  # a point
        ("-180,-90,180,90", None),  # the world (clamped to the service's extent)
        ("1.5,52.5,1.6,52.6", None),  # beyond London and the key square
        ("529000,182000,529000.5,210000", "EPSG:27700"),  # half a metre wide, 28 km tall
    ],
)
def test_odd_boxes_page_as_the_database_finds_them(client, conn, bbox, crs):
    params = {
        "bbox": bbox,
        "limit": 500,
        **({"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/27700"} if crs else {}),
    }
    ids, _ = all_pages(client, "/collections/street_furniture/items", params)
    first = client.get("/collections/street_furniture/items", params=params)
    assert first.status_code == 200
    srid = 27700 if crs else 4326
    box = f"ST_Transform(ST_Segmentize(ST_MakeEnvelope({bbox}, {srid}), {100 if crs else 0.001}), 27700)"
    if bbox.startswith("-180"):
        assert len(ids) == len(set(ids)) and set(ids) == db_ids(conn, "kind = 'street_furniture'")
    else:
        assert sorted(ids) == sorted(
            db_ids(conn, f"kind = 'street_furniture' AND ST_Intersects(geom, {box})")
        )
