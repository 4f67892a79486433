"""OGC API Features Part 3: queryables per role and CQL2 filters on items, checked against the database.

Every valid filter is given in both encodings and its features are compared with an independent
answer: a Python predicate over the same rows read straight from the table, or hand-written SQL
for the spatial functions. Every invalid one is a 400 problem saying what and where.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
ITEMS = "/collections/{}/items"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"


def prop(name: str) -> dict[str, str]:
    return {"property": name}


def op(name: str, *args: Any) -> dict[str, Any]:
    return {"op": name, "args": list(args)}


def fetch_all(client, collection, params, headers=None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every feature of every page, and each page's body (without its features)."""
    url, features, pages = ITEMS.format(collection), [], []
    params = {"limit": 10000, **params}
    while url:
        answer = client.get(url, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        features += body.pop("features")
        pages.append(body)
        url, params = next((link["href"] for link in body["links"] if link["rel"] == "next"), None), None
    return features, pages


def ids_of(client, collection, params, headers=None) -> set[Any]:
    features, pages = fetch_all(client, collection, params, headers)
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids))
    if len(pages) == 1:
        assert pages[0]["numberMatched"] == len(ids)
    return set(ids)


@pytest.fixture(scope="module")
def buildings(db_url) -> list[dict[str, Any]]:
    """The public buildings as the table holds them (the rows a Python predicate checks)."""
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            """SELECT id, subtype, status, name, owner, height_m, power_available, rooftop_access,
                      last_surveyed, borough_code, version, valid_from, changed_by, extra, listed_building,
                      positional_accuracy_m
               FROM assets WHERE kind = 'public_building' AND retired_at IS NULL"""
        )
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert len(rows) > 500
    return rows


def where(rows: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> set[int]:
    return {r["id"] for r in rows if predicate(r)}


D = dt.date
#: (cql2-text, cql2-json, the same condition in Python over a row)
VALID: list[tuple[str, Any, Callable[[dict[str, Any]], bool]]] = [
    ("subtype = 'library'", op("=", prop("subtype"), "library"), lambda r: r["subtype"] == "library"),
    (
        "subtype = 'library' OR subtype = 'school' AND height_m > 10",  # AND binds tighter
        op(
            "or",
            op("=", prop("subtype"), "library"),
            op("and", op("=", prop("subtype"), "school"), op(">", prop("height_m"), 10)),
        ),
        lambda r: r["subtype"] == "library" or (r["subtype"] == "school" and r["height_m"] > 10),
    ),
    (
        "NOT (status = 'in_service' AND height_m >= 10)",
        op("not", op("and", op("=", prop("status"), "in_service"), op(">=", prop("height_m"), 10))),
        lambda r: not (r["status"] == "in_service" and r["height_m"] >= 10),
    ),
    (
        "height_m BETWEEN 5 AND 10.5",
        op("between", prop("height_m"), 5, 10.5),
        lambda r: 5 <= r["height_m"] <= 10.5,
    ),
    (
        "subtype IN ('depot', 'fire_station')",
        op("in", prop("subtype"), ["depot", "fire_station"]),
        lambda r: r["subtype"] in ("depot", "fire_station"),
    ),
    (
        "subtype NOT IN ('housing_block', 'school')",
        op("not", op("in", prop("subtype"), ["housing_block", "school"])),
        lambda r: r["subtype"] not in ("housing_block", "school"),
    ),
    ("name LIKE 'Library%'", op("like", prop("name"), "Library%"), lambda r: r["name"].startswith("Library")),
    (
        "name LIKE 'Library _ (%'",
        op("like", prop("name"), "Library _ (%"),
        lambda r: r["name"].startswith("Library ") and r["name"][9:11] == " (",
    ),
    (
        "CASEI(name) LIKE CASEI('%(BROMLEY)%')",
        op("like", op("casei", prop("name")), op("casei", "%(BROMLEY)%")),
        lambda r: "(bromley)" in r["name"].lower(),
    ),
    (
        "CASEI(owner) = CASEI('LONDON BOROUGH OF BROMLEY')",
        op("=", op("casei", prop("owner")), op("casei", "LONDON BOROUGH OF BROMLEY")),
        lambda r: r["owner"].lower() == "london borough of bromley",
    ),
    ("last_surveyed IS NULL", op("isNull", prop("last_surveyed")), lambda r: r["last_surveyed"] is None),
    (
        "last_surveyed IS NOT NULL AND height_m < 5",
        op("and", op("not", op("isNull", prop("last_surveyed"))), op("<", prop("height_m"), 5)),
        lambda r: r["last_surveyed"] is not None and r["height_m"] < 5,
    ),
    (
        "last_surveyed >= DATE('2022-01-01')",
        op(">=", prop("last_surveyed"), {"date": "2022-01-01"}),
        lambda r: r["last_surveyed"] is not None and r["last_surveyed"] >= D(2022, 1, 1),
    ),
    (
        "T_BEFORE(last_surveyed, DATE('2018-01-01'))",
        op("t_before", prop("last_surveyed"), {"date": "2018-01-01"}),
        lambda r: r["last_surveyed"] is not None and r["last_surveyed"] < D(2018, 1, 1),
    ),
    (
        "T_INTERSECTS(last_surveyed, INTERVAL('2020-01-01', '2020-12-31'))",
        op("t_intersects", prop("last_surveyed"), {"interval": ["2020-01-01", "2020-12-31"]}),
        lambda r: r["last_surveyed"] is not None and D(2020, 1, 1) <= r["last_surveyed"] <= D(2020, 12, 31),
    ),
    (
        "T_AFTER(last_surveyed, INTERVAL('..', '2024-06-30'))",
        op("t_after", prop("last_surveyed"), {"interval": ["..", "2024-06-30"]}),
        lambda r: r["last_surveyed"] is not None and r["last_surveyed"] > D(2024, 6, 30),
    ),
    (
        "T_DISJOINT(last_surveyed, INTERVAL('2016-01-01', '2023-12-31'))",
        op("t_disjoint", prop("last_surveyed"), {"interval": ["2016-01-01", "2023-12-31"]}),
        lambda r: (
            r["last_surveyed"] is not None and not D(2016, 1, 1) <= r["last_surveyed"] <= D(2023, 12, 31)
        ),
    ),
    (
        "T_EQUALS(last_surveyed, DATE('2020-07-12'))",
        op("t_equals", prop("last_surveyed"), {"date": "2020-07-12"}),
        lambda r: r["last_surveyed"] == D(2020, 7, 12),
    ),
    (
        "T_INTERSECTS(valid_from, INTERVAL('2000-01-01T00:00:00Z', '..'))",
        op("t_intersects", prop("valid_from"), {"interval": ["2000-01-01T00:00:00Z", ".."]}),
        lambda r: True,
    ),
    (
        "valid_from < TIMESTAMP('2000-01-01T00:00:00Z')",
        op("<", prop("valid_from"), {"timestamp": "2000-01-01T00:00:00Z"}),
        lambda r: False,
    ),
    (
        "listed_building AND NOT rooftop_access",
        op("and", prop("listed_building"), op("not", prop("rooftop_access"))),
        lambda r: r["listed_building"] and not r["rooftop_access"],
    ),
    (
        "rooftop_access = TRUE AND height_m < 15",
        op("and", op("=", prop("rooftop_access"), True), op("<", prop("height_m"), 15)),
        lambda r: r["rooftop_access"] is True and r["height_m"] < 15,
    ),
    (
        "borough_code = 'E09000007' AND version >= 1",
        op("and", op("=", prop("borough_code"), "E09000007"), op(">=", prop("version"), 1)),
        lambda r: r["borough_code"] == "E09000007" and r["version"] >= 1,
    ),
    (
        "height_m > version",
        op(">", prop("height_m"), prop("version")),
        lambda r: r["height_m"] > r["version"],
    ),
    ("\"subtype\" = 'depot'", op("=", prop("subtype"), "depot"), lambda r: r["subtype"] == "depot"),
    ("TRUE", True, lambda r: True),
    (
        "FALSE OR subtype = 'depot'",
        op("or", False, op("=", prop("subtype"), "depot")),
        lambda r: r["subtype"] == "depot",
    ),
    # Injection attempts are values like any other: compared, never run.
    (
        "name = '''; DROP TABLE assets; --'",
        op("=", prop("name"), "'; DROP TABLE assets; --"),
        lambda r: False,
    ),
    ("name = 'O''Brien'", op("=", prop("name"), "O'Brien"), lambda r: False),
    (
        "name LIKE '%'' OR ''1''=''1'",
        op("like", prop("name"), "%' OR '1'='1"),
        lambda r: r["name"].endswith("' OR '1'='1"),
    ),
]


@pytest.mark.parametrize(("text", "document", "predicate"), VALID, ids=[v[0][:60] for v in VALID])
def test_valid_filters_match_the_rows_in_both_encodings(client, buildings, text, document, predicate):
    expected = where(buildings, predicate)
    got_text = ids_of(client, "public_buildings", {"filter": text, "properties": "subtype"})
    got_json = ids_of(
        client,
        "public_buildings",
        {"filter": json.dumps(document), "filter-lang": "cql2-json", "properties": "subtype"},
    )
    assert got_text == expected
    assert got_json == expected


def test_the_table_survives_the_injection_attempts(conn):
    assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] > 1000


def test_id_is_queryable(client, buildings):
    some = sorted(r["id"] for r in buildings)[:3]
    text = f"id IN ({', '.join(map(str, some))})"
    assert ids_of(client, "public_buildings", {"filter": text}) == set(some)
    assert ids_of(client, "boroughs", {"filter": "id = 'E09000007'"}) == {"E09000007"}


SPATIAL = [
    # (filter, filter-crs, collection, SQL over the table it reads)
    (
        "S_INTERSECTS(geometry, BBOX(-0.16, 51.53, -0.13, 51.55))",
        None,
        "street_furniture",
        "kind = 'street_furniture' AND ST_Intersects(geom, ST_Transform(ST_Segmentize("
        "ST_MakeEnvelope(-0.16, 51.53, -0.13, 51.55, 4326), 0.001), 27700))",
    ),
    (
        "S_WITHIN(geometry, POLYGON((528000 183000, 530000 183000, 530000 185000, 528000 185000, 528000 183000)))",
        BNG,
        "street_furniture",
        "kind = 'street_furniture' AND ST_Within(geom, ST_MakeEnvelope(528000, 183000, 530000, 185000, 27700))",
    ),
    (
        "S_DWITHIN(geometry, POINT(-0.1276 51.5072), 750) AND subtype = 'lamp_post'",
        None,
        "street_furniture",
        "kind = 'street_furniture' AND subtype = 'lamp_post' AND ST_DWithin(geom, "
        "ST_Transform(ST_SetSRID(ST_Point(-0.1276, 51.5072), 4326), 27700), 750)",
    ),
    (
        "S_DWITHIN(geometry, POINT(529000 181000), 400)",
        "EPSG:27700",
        "public_buildings",
        "kind = 'public_building' AND ST_DWithin(geom, ST_SetSRID(ST_Point(529000, 181000), 27700), 400)",
    ),
    (
        "S_DISJOINT(geometry, BBOX(-0.5, 51.3, 0.0, 51.7)) AND subtype = 'school'",
        None,
        "public_buildings",
        "kind = 'public_building' AND subtype = 'school' AND ST_Disjoint(geom, ST_Transform(ST_Segmentize("
        "ST_MakeEnvelope(-0.5, 51.3, 0.0, 51.7, 4326), 0.001), 27700))",
    ),
    (
        "S_INTERSECTS(geometry, POLYGON((-0.2 51.45, 0.1 51.45, 0.1 51.6, -0.2 51.6, -0.2 51.45)))",
        None,
        "ducts",
        "kind = 'duct' AND ST_Intersects(geom, ST_Transform(ST_Segmentize("
        "ST_GeomFromText('POLYGON((-0.2 51.45, 0.1 51.45, 0.1 51.6, -0.2 51.6, -0.2 51.45))', 4326), 0.001), 27700))",
    ),
    # A world-wide box: clipped to the service's extent, the same answer as the whole layer.
    ("S_INTERSECTS(geometry, BBOX(-180, -90, 180, 90))", None, "ducts", "kind = 'duct'"),
]


@pytest.mark.parametrize(
    ("text", "crs", "collection", "expected_sql"), SPATIAL, ids=[s[0][:50] for s in SPATIAL]
)
def test_spatial_filters_match_postgis_by_hand(client, conn, text, crs, collection, expected_sql):
    expected = {
        r[0] for r in conn.execute(f"SELECT id FROM assets WHERE retired_at IS NULL AND {expected_sql}")
    }
    conn.rollback()
    params = {"filter": text, "properties": "status"} | ({"filter-crs": crs} if crs else {})
    assert ids_of(client, collection, params) == expected
    assert expected or "Disjoint" in expected_sql


def test_spatial_functions_on_the_boroughs(client):
    westminster = "S_CONTAINS(geometry, POINT(-0.1281 51.5080))"
    assert ids_of(client, "boroughs", {"filter": westminster}) == {"E09000033"}
    box = "S_INTERSECTS(geometry, BBOX(-0.2, 51.5, -0.1, 51.56)) AND NOT S_EQUALS(geometry, geometry)"
    assert ids_of(client, "boroughs", {"filter": box}) == set()
    lat_first = {
        "filter": "S_CONTAINS(geometry, POINT(51.5080 -0.1281))",
        "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326",
    }
    assert ids_of(client, "boroughs", lat_first) == {"E09000033"}  # the EPSG:4326 URI is latitude first
    json_filter = op("s_within", {"type": "Point", "coordinates": [-0.1281, 51.508]}, prop("geometry"))
    assert ids_of(client, "boroughs", {"filter": json.dumps(json_filter), "filter-lang": "cql2-json"}) == {
        "E09000033"
    }


INVALID: list[tuple[dict[str, str], str]] = [
    ({"filter": "colour = 'red'"}, "'colour' is not a queryable of collection 'public_buildings'"),
    ({"filter": "subtype = 5"}, "compares 'subtype' (a string) with 5 (an integer)"),
    ({"filter": "height_m = 'tall'"}, "compares 'height_m' (a number) with 'tall' (a string)"),
    ({"filter": "pg_sleep(10)"}, "'PG_SLEEP' is not a function this service knows"),
    ({"filter": "pg_sleep(1) = 1"}, "'PG_SLEEP' is not a function this service knows"),
    ({"filter": "ACCENTI(name) = 'x'"}, "'ACCENTI' is not a function"),
    ({"filter": "name = 'x'; DROP TABLE assets; --"}, "unexpected ';' at line 1, column 11"),
    ({"filter": '"name"" = 1 OR ""1" = 1'}, "'name\" = 1 OR \"1' is not a queryable"),
    ({"filter": '"na""me" = \'x\''}, "'na\"me' is not a queryable"),
    ({"filter": "height_m + 1 > 2"}, "arithmetic (+) is not supported"),
    ({"filter": "subtype ="}, "the filter ends too early at line 1, column 10"),
    ({"filter": "subtype = 'library' AND"}, "the filter ends too early"),
    ({"filter": "subtype == 'library'"}, "at line 1, column 10"),
    (
        {"filter": "S_INTERSECTS(geometry, POINT(530000 180000))"},
        "not longitude/latitude; for British National Grid add filter-crs",
    ),
    (
        {"filter": "S_INTERSECTS(geometry, POLYGON((0 51, 1 52, 1 51, 0 52, 0 51)))"},
        "is not valid (Self-intersection",
    ),
    ({"filter": "S_EQUALS(geometry, POINT(100 10))"}, "reaches outside Great Britain"),
    ({"filter": "S_INTERSECTS(name, POINT(0 51))"}, "S_INTERSECTS takes geometries; 'name' is a string"),
    ({"filter": "geometry = POINT(0 51)"}, "does not compare geometries"),
    ({"filter": "T_DURING(last_surveyed, INTERVAL('2020-01-01', '..'))"}, "T_DURING compares intervals"),
    (
        {"filter": "T_AFTER(name, DATE('2020-01-01'))"},
        "T_AFTER takes instants or intervals; 'name' is a string",
    ),
    ({"filter": "last_surveyed > TIMESTAMP('yesterday')"}, "'yesterday' is not an RFC 3339 timestamp"),
    ({"filter": "last_surveyed > DATE('2020-02-30')"}, "'2020-02-30' is not a valid date"),
    ({"filter": "T_AFTER(last_surveyed, INTERVAL('2021-01-01', '2020-01-01'))"}, "ends before it starts"),
    ({"filter": "S_DWITHIN(geometry, POINT(-0.1 51.5), -5)"}, "S_DWITHIN's distance is a number of metres"),
    ({"filter": "name"}, "'name' is a string, not a condition"),
    ({"filter": "'x'"}, "is a value, not a condition"),
    ({"filter": "SRID=4326;POINT(0 51) IS NULL"}, "SRID=…; is not CQL2"),
    ({"filter": "name = '" + "x" * 9000 + "'"}, "is longer than the 8192 a filter may have"),
    ({"filter": "NOT (" * 25 + "subtype = 'x'" + ")" * 25}, "nested deeper than 20 levels"),
    ({"filter": "(" * 70 + "subtype = 'x'" + ")" * 70}, "brackets nested 70 deep"),
    ({"filter": "changed_by = 'x'"}, "'changed_by' is not a queryable"),
    ({"filter": "\"extra.storeys\" = '5'"}, "'extra.storeys' is not a queryable"),
    ({"filter": "subtype = 'x'", "filter-crs": "EPSG:3857"}, "filter-crs: 'EPSG:3857' is not supported"),
    ({"filter-crs": "EPSG:3857"}, "filter-crs: 'EPSG:3857' is not supported"),
    ({"filter": "subtype = 'x'", "filter-lang": "sql"}, "filter-lang"),
    ({"filter": json.dumps(op("pg_sleep", 1)), "filter-lang": "cql2-json"}, "'PG_SLEEP' is not a function"),
    (
        {"filter": json.dumps(op("like", prop("name"), "abc\\")), "filter-lang": "cql2-json"},
        "ends with the escape character",
    ),
    (
        {"filter": json.dumps(op("=", prop("subtype"))), "filter-lang": "cql2-json"},
        "$: '=' takes 2 arguments, not 1",
    ),
    (
        {"filter": '{"op": "=", ', "filter-lang": "cql2-json"},
        "not JSON: Expecting property name enclosed in double quotes at line 1",
    ),
    (
        {"filter": json.dumps(op("=", prop("subtype"), None)), "filter-lang": "cql2-json"},
        "$.args[1]: null is not a CQL2 value",
    ),
    (
        {"filter": json.dumps(op("=", prop("name; DROP TABLE assets"), "x")), "filter-lang": "cql2-json"},
        "'name; DROP TABLE assets' is not a queryable",
    ),
    (
        {"filter": json.dumps(op("+", prop("height_m"), 1)), "filter-lang": "cql2-json"},
        "$: arithmetic ('+') is not supported",
    ),
    (
        {"filter": json.dumps(op("a_contains", prop("subtype"), ["x"])), "filter-lang": "cql2-json"},
        "array functions",
    ),
    ({"filter": json.dumps(op("accenti", prop("name"))), "filter-lang": "cql2-json"}, "ACCENTI"),
    (
        {
            "filter": json.dumps(op("and", op("=", prop("subtype"), "x"), {"type": "Circle"})),
            "filter-lang": "cql2-json",
        },
        "$.args[1]: 'Circle' is not a GeoJSON geometry type",
    ),
    (
        {
            "filter": json.dumps(op("s_intersects", prop("geometry"), {"bbox": [1, 2, 0, 3]})),
            "filter-lang": "cql2-json",
        },
        "$.args[1].bbox: the bbox [1, 2, 0, 3] has its minimum above its maximum",
    ),
    (
        {
            "filter": json.dumps(op("t_before", prop("valid_from"), {"timestamp": "2020-01-01"})),
            "filter-lang": "cql2-json",
        },
        "$.args[1].timestamp: '2020-01-01' is not an RFC 3339 timestamp",
    ),
]


@pytest.mark.parametrize(("params", "message"), INVALID, ids=[m[:50] for _, m in INVALID])
def test_bad_filters_are_400_saying_what_and_where(client, params, message):
    answer = client.get(ITEMS.format("public_buildings"), params=params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert message in answer.json()["detail"]


def test_paging_keeps_the_filter_and_every_feature_comes_once(client, conn):
    text = "subtype = 'lamp_post' AND borough_code IN ('E09000007', 'E09000012')"
    features, pages = fetch_all(
        client, "street_furniture", {"filter": text, "limit": 200, "properties": "subtype"}
    )
    expected = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL AND subtype = 'lamp_post' "
            "AND borough_code IN ('E09000007', 'E09000012')"
        )
    }
    conn.rollback()
    ids = [f["id"] for f in features]
    assert len(pages) > 1 and len(ids) == len(set(ids)) and set(ids) == expected
    for page in pages[:-1]:
        next_link = next(link["href"] for link in page["links"] if link["rel"] == "next")
        assert "filter=subtype+%3D+%27lamp_post%27" in next_link
    assert all("numberMatched" not in page for page in pages)  # only given when free (one page)


def test_filter_with_the_old_parameters_and_a_bbox(client, conn):
    params = {"filter": "height_m > 8", "status": "in_service", "bbox": "-0.16,51.53,-0.13,51.55"}
    expected = {
        r[0]
        for r in conn.execute(
            """SELECT id FROM assets WHERE kind = 'street_furniture' AND retired_at IS NULL AND height_m > 8
               AND status = 'in_service' AND ST_Intersects(geom, ST_Transform(ST_Segmentize(
                   ST_MakeEnvelope(-0.16, 51.53, -0.13, 51.55, 4326), 0.001), 27700))"""
        )
    }
    conn.rollback()
    assert expected and ids_of(client, "street_furniture", params) == expected


def test_conformance_and_collection_advertise_filtering(client):
    classes = set(client.get("/conformance").json()["conformsTo"])
    assert {
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
        CQL2 + "basic-cql2",
        CQL2 + "cql2-text",
        CQL2 + "cql2-json",
        CQL2 + "advanced-comparison-operators",
        CQL2 + "case-insensitive-comparison",
        CQL2 + "basic-spatial-functions",
        CQL2 + "basic-spatial-functions-plus",
        CQL2 + "spatial-functions",
        CQL2 + "temporal-functions",
        CQL2 + "property-property",
    } <= classes
    assert not any(
        c.endswith(("/arithmetic", "/array-functions", "/accent-insensitive-comparison")) for c in classes
    )
    links = client.get("/collections/ducts").json()["links"]
    rels = {link["rel"]: link for link in links}
    queryables = rels["http://www.opengis.net/def/rel/ogc/1.0/queryables"]
    assert queryables["href"].endswith("/collections/ducts/queryables")
    assert queryables["type"] == "application/schema+json"


def test_queryables_are_a_json_schema_of_what_items_show(client):
    answer = client.get("/collections/public_buildings/queryables")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/schema+json"
    schema = answer.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/collections/public_buildings/queryables")
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    properties = schema["properties"]
    assert properties["geometry"]["x-ogc-role"] == "primary-geometry"
    assert properties["valid_from"] == {
        "title": "valid_from",
        "type": "string",
        "format": "date-time",
        "description": "When this version of the asset was written.",
        "x-ogc-role": "primary-instant",
    }
    assert properties["last_surveyed"]["format"] == "date"
    assert properties["height_m"]["type"] == "number" and properties["version"]["type"] == "integer"
    assert properties["rooftop_access"]["type"] == "boolean"
    assert "library" in properties["subtype"]["enum"] and "lamp_post" not in properties["subtype"]["enum"]
    assert properties["kind"]["enum"] == ["public_building"]
    assert len(properties["borough_code"]["enum"]) == 33
    assert "QL-A" in properties["survey_quality"]["enum"]
    assert not {"changed_by", "extra", "load_id", "retired_at", "geom_3857"} & set(properties)
    assert not any(name.startswith("extra.") for name in properties)
    # GDAL's OAPIF driver reads the drafts' list, and plain JSON when it asks for it.
    assert {q["id"] for q in schema["queryables"]} == set(properties)
    plain = client.get(
        "/collections/public_buildings/queryables",
        headers={"Accept": "application/geo+json, application/json"},
    )
    assert plain.headers["content-type"] == "application/json" and plain.json() == schema


def test_queryables_per_role_hold_nothing_a_role_cannot_see(client, auth):
    def names(collection, who=None):
        headers = auth(who) if who else None
        return set(client.get(f"/collections/{collection}/queryables", headers=headers).json()["properties"])

    anonymous, operator = names("public_buildings"), names("public_buildings", "operator")
    admin, camden = names("public_buildings", "admin"), names("public_buildings", "camden")
    assert anonymous == operator
    for more in (admin - anonymous, camden - anonymous):
        assert {"changed_by", "extra.storeys"} <= more
        assert all(name == "changed_by" or name.startswith("extra.") for name in more)
    camden_schema = client.get("/collections/public_buildings/queryables", headers=auth("camden")).json()
    assert "only on your borough's assets" in camden_schema["properties"]["changed_by"]["description"]
    for who in (None, "operator", "camden", "admin"):
        wayleaves = names("wayleaves", who)
        assert "operator" not in wayleaves and not any("contact" in n for n in wayleaves)
        assert {"status", "borough_code", "status_since", "days_in_status"} <= wayleaves
        assert "tags" not in names("pipeline_projects", who)  # an array: not comparable
    answer = client.get(ITEMS.format("wayleaves"), params={"filter": "operator = 'x'"}, headers=auth("admin"))
    assert answer.status_code == 400 and "'operator' is not a queryable" in answer.json()["detail"]


def test_restricted_values_filter_only_the_rows_a_role_may_read(client, auth, buildings):
    storeys = "\"extra.storeys\" = '5'"
    five = where(buildings, lambda r: str((r["extra"] or {}).get("storeys")) == "5")
    camden_five = where(
        buildings,
        lambda r: r["borough_code"] == "E09000007" and str((r["extra"] or {}).get("storeys")) == "5",
    )
    assert camden_five and five - camden_five
    assert ids_of(client, "public_buildings", {"filter": storeys}, auth("admin")) == five
    assert ids_of(client, "public_buildings", {"filter": storeys}, auth("camden")) == camden_five
    # NOT never reaches the rows whose value the key cannot read: they are NULL, neither true nor false.
    not_five = where(
        buildings,
        lambda r: r["borough_code"] == "E09000007" and str((r["extra"] or {}).get("storeys")) != "5",
    )
    assert ids_of(client, "public_buildings", {"filter": f"NOT ({storeys})"}, auth("camden")) == not_five
    by = where(buildings, lambda r: r["borough_code"] == "E09000007" and r["changed_by"] == "demo: synthetic")
    assert (
        by
        and ids_of(client, "public_buildings", {"filter": "changed_by = 'demo: synthetic'"}, auth("camden"))
        == by
    )
    for who in (None, "operator"):
        answer = client.get(
            ITEMS.format("public_buildings"), params={"filter": storeys}, headers=auth(who) if who else None
        )
        assert answer.status_code == 400 and "'extra.storeys' is not a queryable" in answer.json()["detail"]


def test_gdal_style_filters_are_understood(client, buildings):
    """What GDAL's OAPIF driver writes for a -where: ILIKE, instants as strings, 'YYYY-MM-DDT' for a date."""
    cases = [
        (
            "(name ILIKE 'library%') AND (height_m > 10)",
            lambda r: r["name"].lower().startswith("library") and r["height_m"] > 10,
        ),
        (
            "last_surveyed >= '2022-01-01T'",
            lambda r: r["last_surveyed"] is not None and r["last_surveyed"] >= D(2022, 1, 1),
        ),
        ("valid_from <= '2999-01-01T00:00:00Z'", lambda r: True),
        ("NOT (name IS NULL)", lambda r: True),
    ]
    for text, predicate in cases:
        got = ids_of(client, "public_buildings", {"filter": text, "filter-lang": "cql-text"})
        assert got == where(buildings, predicate), text


def test_temporal_filter_on_the_change_time(isolated):
    client = isolated.client
    first = client.get(ITEMS.format("public_buildings"), params={"limit": 1}).json()["features"][0]
    changed = client.patch(
        f"/assets/{first['id']}", json={"name": "Renamed for CQL2"}, headers=isolated.auth("admin")
    )
    assert changed.status_code == 200, changed.text
    since = dt.datetime.fromisoformat(changed.json()["valid_from"]).astimezone(dt.UTC)
    before = (since - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids_of(client, "public_buildings", {"filter": f"T_AFTER(valid_from, TIMESTAMP('{before}'))"}) == {
        first["id"]
    }
    assert ids_of(client, "public_buildings", {"filter": f"valid_from >= TIMESTAMP('{before}')"}) == {
        first["id"]
    }
    window = op("t_intersects", prop("valid_from"), {"interval": [since.date().isoformat(), ".."]})
    got = ids_of(client, "public_buildings", {"filter": json.dumps(window), "filter-lang": "cql2-json"})
    assert first["id"] in got
