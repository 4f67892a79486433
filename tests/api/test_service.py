def test_health_reports_postgis_migrations_and_counts(client, conn):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["database"] == "reachable"
    assert body["postgis"].startswith("3.")
    assert body["migration_level"] == body["migrations_expected"] >= 1
    assert body["boroughs"] == 33
    expected = dict(
        conn.execute("SELECT kind, count(*) FROM assets WHERE retired_at IS NULL GROUP BY kind").fetchall()
    )
    assert body["assets"] == expected


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/health" in spec["paths"] and "/assets/{asset_id}" in spec["paths"]


def test_the_change_body_and_the_asset_record_follow_the_asset_model(client):
    from geo import assets
    from geo.reference.model import load_model

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    changes = schemas["AssetChanges"]
    assert list(changes["properties"]) == [f.name for f in assets.changeable_fields()]
    assert "source_id" not in changes["properties"] and changes["additionalProperties"] is False
    assert changes["properties"]["status"]["enum"] == sorted(load_model().statuses)
    height = changes["properties"]["height_m"]["anyOf"][0]
    assert (height["type"], height["minimum"], height["maximum"]) == ("number", 0.1, 400)
    assert "Only for duct assets" in changes["properties"]["duct_diameter_mm"]["description"]
    record = next(schemas[name] for name in ("Asset-Output", "Asset") if name in schemas)
    assert list(record["properties"]) == [*assets.ATTRIBUTES, "geometry"]
    assert all(field.get("description") for field in record["properties"].values())


def test_boroughs_list(client):
    rows = client.get("/boroughs").json()
    assert len(rows) == 33
    camden = next(r for r in rows if r["code"] == "E09000007")
    assert camden["name"] == "Camden" and camden["inner_london"] is True
    west, south, east, north = camden["bbox"]
    assert -0.22 < west < east < -0.10 and 51.51 < south < north < 51.58  # WGS84, lon/lat order
    assert camden["assets"] > 0


def test_errors_are_problem_json_saying_what_was_wrong(client, auth):
    missing = client.get("/assets/987654321")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no asset has id 987654321"

    bad = client.get("/assets/not-a-number")
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["where"] == "path.asset_id"
    assert bad.json()["errors"][0]["value"] == "not-a-number"

    unknown_route = client.get("/no/such/thing")
    assert (
        unknown_route.status_code == 404
        and unknown_route.headers["content-type"] == "application/problem+json"
    )


def test_a_started_app_keeps_its_startup_objects_out_of_full_garbage_collections(settings):
    import gc

    from fastapi.testclient import TestClient

    from api.app import create_app

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)):
        # Modules, settings and the app are frozen: a full collection no longer walks them.
        assert gc.get_freeze_count() > 10_000
