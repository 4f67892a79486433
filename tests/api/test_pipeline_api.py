"""The Pipeline API: import, filters, the map layer, the unplaced list, placing projects, personal data."""

import csv
import io
import json
from pathlib import Path

import mapbox_vector_tile
import psycopg
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "pipeline"
PERSONAL = {"owner", "owner_email", "created_by", "modified_by", "changed_by"}
SECRET = "olivia.example@lbbd.gov.uk"


def send(isolated, name, who="admin", **form):
    return isolated.client.post(
        "/pipeline/imports",
        files={"file": (name, (FIXTURES / name).read_bytes())},
        data={k: str(v).lower() for k, v in form.items()},
        headers=isolated.auth(who),
    )


@pytest.fixture(scope="module")
def loaded(isolated):
    rejected = send(isolated, "projects.json")
    assert rejected.status_code == 422 and rejected.json()["state"] == "rejected"
    r = send(isolated, "projects.json", skip_invalid=True)
    assert r.status_code == 201, r.text
    assert send(isolated, "PipelineReports_locations.csv", skip_invalid=True).status_code == 201
    return isolated


def test_import_record_and_errors_csv(loaded):
    c = loaded.client
    listed = c.get("/pipeline/projects", params={"limit": 1}, headers=loaded.auth("admin")).json()
    assert listed["count"] == 1 and listed["next_after"] is not None
    record = c.post(
        "/pipeline/imports", files={"file": ("projects.json", (FIXTURES / "projects.json").read_bytes())},
        data={"skip_invalid": "true"}, headers=loaded.auth("admin"),
    ).json()  # fmt: skip
    assert record["counts"]["unchanged"] == 15 and record["counts"]["new"] == 0
    again = c.get(f"/pipeline/imports/{record['id']}", headers=loaded.auth("admin")).json()
    assert again["state"] == "applied"
    errors = list(
        csv.DictReader(
            io.StringIO(
                c.get(f"/pipeline/imports/{record['id']}/errors.csv", headers=loaded.auth("admin")).text
            )
        )
    )
    assert [(e["row"], e["source_id"], e["column"]) for e in errors] == [
        ("13", "113", "ProjectStart"),
        ("13", "113", "ProjectEnd"),
    ]


@pytest.mark.parametrize("number", ["\u00b2", "\u0661", "99999999999999999999", 10**20])
def test_ids_and_statuses_that_are_not_plain_integers_are_row_errors(loaded, number):
    """``str.isdigit`` passes ``²``, ``int`` takes ``١``, and 20 digits overflow bigint."""
    c, admin = loaded.client, loaded.auth("admin")
    row = {"Id": number, "Title": "Odd numbers", "ProjectStatus": number, "OrganisationId": number}
    sent = c.post(
        "/pipeline/imports", files={"file": ("odd.json", json.dumps([row]).encode())}, headers=admin
    )
    assert sent.status_code == 422 and sent.json()["state"] == "rejected", sent.text
    errors = c.get(f"/pipeline/imports/{sent.json()['id']}/errors.csv", headers=admin).text
    found = {(e["column"], e["value"]) for e in csv.DictReader(io.StringIO(errors))}
    assert found == {("Id", str(number)), ("ProjectStatus", str(number)), ("OrganisationId", str(number))}


@pytest.mark.parametrize("who", ["operator", "camden"])
def test_only_admins_import_and_read_imports(loaded, who):
    assert send(loaded, "projects.json", who=who).status_code == 403
    assert loaded.client.get("/pipeline/imports/1", headers=loaded.auth(who)).status_code == 403
    assert loaded.client.post("/pipeline/imports", files={"file": ("p.json", b"[]")}).status_code == 401
    assert loaded.client.get("/pipeline/imports/1").status_code == 401


def test_personal_data_absent_for_everyone_but_admins(loaded):
    c = loaded.client
    for who in ("operator", "camden", None):
        headers = loaded.auth(who) if who else {}
        for params in ({}, {"format": "geojson"}, {"format": "csv"}):
            body = c.get("/pipeline/projects", params=params, headers=headers)
            assert body.status_code == 200 and SECRET not in body.text and "Olivia" not in body.text
        rows = c.get("/pipeline/projects", headers=headers).json()["projects"]
        assert rows and not (PERSONAL & set().union(*(r.keys() for r in rows)))
        header = c.get("/pipeline/projects", params={"format": "csv"}, headers=headers).text.splitlines()[0]
        assert "owner" not in header
        one = c.get(f"/pipeline/projects/{rows[0]['id']}", headers=headers).json()
        assert not (PERSONAL & one.keys())
        unplaced = c.get("/pipeline/unplaced", headers=headers).text
        assert "@" not in unplaced.replace("@context", "")
        items = c.get("/collections/pipeline_projects/items", params={"limit": 1000}, headers=headers)
        assert items.status_code == 200 and SECRET not in items.text and "Olivia" not in items.text
    admin = c.get("/pipeline/projects", headers=loaded.auth("admin"))
    assert SECRET in admin.text and "Olivia Example" in admin.text
    assert SECRET in c.get("/pipeline/projects", params={"format": "csv"}, headers=loaded.auth("admin")).text
    # The map layer has no personal data for anyone, admins included.
    assert SECRET not in c.get("/collections/pipeline_projects/items", headers=loaded.auth("admin")).text


def test_the_collection_serves_features_and_tiles(loaded):
    c = loaded.client
    items = c.get("/collections/pipeline_projects/items", params={"limit": 1000}).json()
    props = [f["properties"] for f in items["features"]]
    assert {p["placement"] for p in props} == {"borough", "exact"}  # London-wide and unplaced are not drawn
    assert len(props) == 11 + 2 + 1  # borough-wide JSON projects, two sites, one Camden library
    camden = c.get(
        "/collections/pipeline_projects/items", params={"borough": "E09000007", "status": "Live"}
    ).json()
    assert {f["properties"]["title"] for f in camden["features"]} == {"Smart lamp columns"}
    assert c.get("/collections/pipeline_projects/items", params={"phase": "Build"}).json()["features"]
    assert c.get("/collections/pipeline_projects/items", params={"status": "in_service"}).status_code == 400
    # The City's air-quality project, drawn inside the City: its tile carries it, without personal data.
    feature = next(f for f in items["features"] if f["properties"]["title"] == "Air quality network")
    lon, lat = feature["geometry"]["coordinates"]
    import math

    z = 14
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    r = c.get(f"/tiles/pipeline_projects/{z}/{x}/{y}.mvt", headers=loaded.auth("operator"))
    assert r.status_code == 200
    layer = mapbox_vector_tile.decode(r.content)["pipeline_projects"]
    titles = {f["properties"]["title"]: f["properties"] for f in layer["features"]}
    assert titles["Air quality network"]["tags_text"] == "Air quality, Sensors"
    assert all(not (PERSONAL & p.keys()) for p in titles.values())
    low = c.get("/tiles/pipeline_projects/9/255/170.mvt")
    assert low.status_code == 200 and mapbox_vector_tile.decode(low.content)["pipeline_projects"]["features"]


def test_filters_and_bbox(loaded):
    c = loaded.client
    live = c.get("/pipeline/projects", params={"status": "Live,Beta", "phase": "Build"}).json()["projects"]
    assert {p["pipeline_id"] for p in live} == {101, 107, 109, 116}
    assert {
        p["pipeline_id"] for p in c.get("/pipeline/projects", params={"tag": "wi-fi"}).json()["projects"]
    } == {102, 115}
    dated = c.get("/pipeline/projects", params={"start": "2022-04-01", "placement": "borough,london"}).json()[
        "projects"
    ]
    # Open-ended projects, and those ending on or after the start (River level sensors ends 2022-05-01).
    assert {p["pipeline_id"] or p["title"] for p in dated} == {102, 106, 108, 109, 110, 114, "Library hub"}
    kc = c.get("/pipeline/projects", params={"borough": "E09000020"}).json()["projects"]
    assert {p["pipeline_id"] for p in kc} == {104, 105}
    # Richmond, around the riverside site (EPSG:27700): the site, and Richmond's borough-wide project.
    near = c.get(
        "/pipeline/projects", params={"bbox": "517800,174800,518100,175100", "bbox-crs": "EPSG:27700"}
    ).json()
    assert {p["title"] for p in near["projects"]} == {"Riverside sensors", "River level sensors"}
    wide = c.get(
        "/pipeline/projects",
        params={"bbox": "-0.306,51.460,-0.301,51.463", "london_wide": "true", "format": "geojson"},
    ).json()
    assert {f["properties"]["title"] for f in wide["features"]} == {
        "Riverside sensors", "River level sensors", "Connected London small cells", "Street works data"
    }  # fmt: skip
    assert c.get("/pipeline/projects", params={"bbox": "1,2,3"}).status_code == 400
    assert c.get("/pipeline/projects", params={"status": "Gamma"}).status_code == 400


def test_unplaced_list_with_reasons(loaded):
    listed = loaded.client.get("/pipeline/unplaced").json()
    reasons = {p["title"]: p["unplaced_reason"] for p in listed["projects"]}
    assert reasons == {
        "Chatbot pilot": "'Acme Digital Ltd' not recognised",
        "Leeds open data portal": "'Leeds City Council' is not a London organisation",
    }


def test_explicit_location_override(loaded):
    c = loaded.client
    chatbot = next(p for p in c.get("/pipeline/unplaced").json()["projects"] if p["title"] == "Chatbot pilot")
    url = f"/pipeline/projects/{chatbot['id']}/location"
    point = {"type": "Point", "coordinates": [530000, 182000]}
    assert c.put(url, json=point, headers=loaded.auth("camden")).status_code == 403  # no borough yet
    assert c.put(url, json=point).status_code == 401
    placed = c.put(url, json=point, headers=loaded.auth("admin"))
    assert placed.status_code == 200, placed.text
    assert placed.json()["placement"] == "exact" and placed.json()["borough_code"] == "E09000007"
    assert "Chatbot pilot" not in {p["title"] for p in c.get("/pipeline/unplaced").json()["projects"]}
    items = c.get("/collections/pipeline_projects/items", params={"borough": "E09000007"}).json()
    assert "Chatbot pilot" in {f["properties"]["title"] for f in items["features"]}
    # Now in Camden: Camden may move it, Hackney may not; a point in Paris is refused.
    wgs = {"type": "Point", "coordinates": [-0.14, 51.54]}
    assert c.put(url, json=wgs, headers=loaded.auth("hackney")).status_code == 403
    assert c.put(url, json=wgs, headers=loaded.auth("camden")).status_code == 200
    paris = c.put(url, json={"type": "Point", "coordinates": [2.35, 48.85]}, headers=loaded.auth("admin"))
    assert paris.status_code == 422 and "not in London" in paris.json()["detail"]
    assert c.get("/pipeline/projects/999999").status_code == 404


def test_coverage_reports_list_and_draw_the_projects_in_their_area(loaded):
    c, admin = loaded.client, loaded.auth("admin")
    projects = c.get("/pipeline/projects", params={"borough": "E09000007"}).json()["projects"]
    expected = {p["title"] for p in projects}
    assert expected
    answer = c.post("/coverage/reports", json={"area": {"boroughs": ["E09000007"]}, "k": 0}, headers=admin)
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "done", answer.json()["message"]
    listed = answer.json()["summary"]["pipeline_projects"]
    assert expected <= {p["title"] for p in listed}
    assert {p["match"] for p in listed} <= {"exact", "borough", "london"}
    assert all("owner" not in p and "owner_email" not in p for p in listed)
    html = c.get(f"/coverage/reports/{answer.json()['id']}/report.html", headers=admin).text
    assert "Pipeline projects in the area" in html
    for title in expected:
        assert title.replace("&", "&amp;") in html


def test_typed_answers_are_the_stored_values(loaded):
    """The response models document the answers without changing them: same keys, values, nulls and times."""
    c = loaded.client
    for who in ("admin", "operator"):
        rows = c.get("/pipeline/projects", headers=loaded.auth(who)).json()["projects"]
        features = c.get("/pipeline/projects", params={"format": "geojson"}, headers=loaded.auth(who)).json()
        plain = [f["properties"] for f in features["features"]]  # written without the models
        assert [{k: v for k, v in r.items() if k not in ("geometry", "location")} for r in rows] == plain
        assert [r["geometry"] for r in rows] == [f["geometry"] for f in features["features"]]
        assert (who == "admin") == all(PERSONAL <= r.keys() for r in rows)
        one = c.get(f"/pipeline/projects/{rows[0]['id']}", headers=loaded.auth(who)).json()
        assert one == rows[0]
    record = c.get("/pipeline/imports/1", headers=loaded.auth("admin")).json()
    with psycopg.connect(loaded.url) as conn:
        stored = conn.execute(
            "SELECT counts, created_at, finished_at FROM pipeline_imports WHERE id = 1"
        ).fetchone()
    assert record["counts"] == stored[0]
    assert (record["created_at"], record["finished_at"]) == (stored[1].isoformat(), stored[2].isoformat())


def test_the_location_body(loaded):
    """A geometry or a Feature sets the site; null clears it; what is not GeoJSON is a 422 naming the field."""
    c, admin = loaded.client, loaded.auth("admin")
    project = next(
        p for p in c.get("/pipeline/unplaced").json()["projects"] if p["title"] == "Leeds open data portal"
    )
    url = f"/pipeline/projects/{project['id']}/location"
    feature = {
        "type": "Feature",
        "properties": {"name": "x"},
        "geometry": {"type": "Point", "coordinates": [530000, 182000]},
    }
    placed = c.put(url, json=feature, headers=admin)
    assert placed.status_code == 200 and placed.json()["placement"] == "exact", placed.text
    assert placed.json()["location"]["type"] == "Point"
    cleared = c.put(url, content=b"null", headers={**admin, "Content-Type": "application/json"})
    assert cleared.status_code == 200 and cleared.json()["placement"] == "unplaced"
    assert (
        cleared.json()["location"] is None and cleared.json()["unplaced_reason"] == project["unplaced_reason"]
    )
    circle = c.put(url, json={"type": "Circle", "coordinates": [0, 0]}, headers=admin)
    assert circle.status_code == 422 and "body.type" in circle.json()["detail"]
    broken = c.put(url, json={"type": "Polygon", "coordinates": [[1, 2]]}, headers=admin)
    assert broken.status_code == 422 and "not a valid GeoJSON geometry" in broken.json()["detail"]
