"""``GET /exports/ofds``: the OFDS package and its GeoJSON over HTTP, the same for every caller."""

from __future__ import annotations

import copy
import io
import json
import uuid
import zipfile

import psycopg
from libcoveofds.geojson import JSONToGeoJSONConverter
from ofds_checks import validation_problems

from geo.core.settings import OfdsSettings

SECRET = "s3cret-6f1d"
CAMDEN = {"borough": "E09000007"}


def test_the_package_and_its_geojson_parts(isolated):
    client = isolated.client
    answer = client.get("/exports/ofds", params=CAMDEN)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"] == 'attachment; filename="ofds-network.json"'
    package = answer.json()
    assert validation_problems(package) == ([], [], {})
    assert len(package["networks"][0]["spans"]) == 6  # Camden's ducts in the small demo
    converter = JSONToGeoJSONConverter()
    converter.process_package(copy.deepcopy(package))
    expected = {"nodes": converter.get_nodes_geojson(), "spans": converter.get_spans_geojson()}
    for part in ("nodes", "spans"):
        one = client.get("/exports/ofds", params={**CAMDEN, "format": "geojson", "part": part})
        assert one.status_code == 200 and one.headers["content-type"] == "application/geo+json"
        assert one.headers["content-disposition"] == f'attachment; filename="{part}.geojson"'
        assert one.json() == expected[part]
    both = client.get("/exports/ofds", params={**CAMDEN, "format": "geojson"})
    assert both.status_code == 200 and both.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(both.content)) as z:
        assert {name: json.loads(z.read(name)) for name in z.namelist()} == {
            "nodes.geojson": expected["nodes"],
            "spans.geojson": expected["spans"],
        }


def _plant_secrets(url: str) -> int:
    """A cabinet at the start of a Camden duct, and the duct itself, with a secret in extra and changed_by."""
    with psycopg.connect(url, autocommit=True) as conn:
        duct = conn.execute(
            "SELECT id FROM assets WHERE kind = 'duct' AND borough_code = 'E09000007' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            "UPDATE assets SET extra = jsonb_build_object('note', %s::text), changed_by = %s WHERE id = %s",
            [SECRET, SECRET, duct],
        )
        return conn.execute(
            """INSERT INTO assets (borough_code, kind, subtype, source_id, owner, status, geom, extra, changed_by)
               SELECT 'E09000007', 'street_furniture', 'street_cabinet', 'OFDS-SECRET', 'London Borough of Camden',
                      'in_service', ST_Translate(ST_StartPoint(geom), 1, 0), jsonb_build_object('pin', %s::text), %s
               FROM assets WHERE id = %s RETURNING id""",
            [SECRET, SECRET, duct],
        ).fetchone()[0]


def test_no_caller_sees_a_secret_and_every_caller_gets_the_same_bytes(isolated):
    cabinet = _plant_secrets(isolated.url)
    client = isolated.client
    bodies = {}
    for who in ("anonymous", "operator", "hackney", "camden", "admin"):
        headers = {} if who == "anonymous" else isolated.auth(who)
        answer = client.get("/exports/ofds", params=CAMDEN, headers=headers)
        assert answer.status_code == 200, (who, answer.text)
        bodies[who] = answer.content
    assert len(set(bodies.values())) == 1  # the same for every role, and deterministic
    package = json.loads(bodies["admin"])
    network_id = uuid.UUID(package["networks"][0]["id"])
    assert str(uuid.uuid5(network_id, f"asset/{cabinet}")) in {
        n["id"] for n in package["networks"][0]["nodes"]
    }
    assert SECRET not in bodies["admin"].decode()
    zipped = client.get(
        "/exports/ofds", params={**CAMDEN, "format": "geojson"}, headers=isolated.auth("admin")
    )
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
        assert all(SECRET not in z.read(name).decode() for name in z.namelist())


def test_bad_parameters_are_a_400_that_says_where(isolated):
    for params, where in [
        ({"borough": "E09000007,E09000099"}, "query.borough"),
        ({"borough": "E0900000７"}, "query.borough"),  # a full-width digit
        ({"bbox": "nan,51,0,52"}, "query.bbox"),
        ({"bbox": "1,2,3"}, "query.bbox"),
        ({"bbox": "-0.2,51.5,-0.1,51.6", "bbox-crs": "EPSG:3857"}, "query.bbox-crs"),
        ({"format": "shp"}, "query.format"),
        ({"part": "nodes"}, "query.part"),
    ]:
        answer = isolated.client.get("/exports/ofds", params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"][0]["where"] == where, answer.json()
    nul = isolated.client.get("/exports/ofds", params={"borough": "E09000007\x00"})
    assert nul.status_code == 400 and "NUL" in nul.json()["detail"]  # refused before the route
    unknown = isolated.client.get("/exports/ofds", params={"boroughs": "E09000007"})
    assert unknown.status_code == 400 and unknown.json()["detail"].startswith("boroughs: not a parameter")


def test_more_spans_than_the_cap_is_a_413(isolated, monkeypatch):
    monkeypatch.setattr(isolated.client.app.state.settings, "ofds", OfdsSettings(max_spans=5))
    answer = isolated.client.get("/exports/ofds", params=CAMDEN)
    assert answer.status_code == 413 and "more than 5 spans" in answer.json()["detail"]
    assert answer.headers["content-type"] == "application/problem+json"
    monkeypatch.setattr(isolated.client.app.state.settings, "ofds", OfdsSettings(max_spans=6))
    assert isolated.client.get("/exports/ofds", params=CAMDEN).status_code == 200  # exactly at the cap
