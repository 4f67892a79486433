"""Coverage reports through the API: request, progress, every download read back, access."""

from __future__ import annotations

import csv
import io
import re
import time

import pytest

from api.routes.coverage import ListedReport, ReportAnswer
from geo.core.settings import CoverageSettings
from geo.coverage import STEPS

CAMDEN = {"area": {"boroughs": ["E09000007"]}, "k": 5}


@pytest.fixture(scope="module")
def camden(client, auth):
    answer = client.post("/coverage/reports", json=CAMDEN, headers=auth("operator"))
    assert answer.status_code == 201, answer.text
    return answer


def test_a_small_report_is_done_in_the_answer(camden):
    body = camden.json()
    assert body["state"] == "done", body["message"]
    assert camden.headers["location"] == f"/coverage/reports/{body['id']}"
    assert body["parameters"]["area"] == {"boroughs": ["E09000007"]}
    assert body["parameters"]["thresholds"] == [50.0, 100.0, 200.0]
    assert body["data_version"]["assets"] >= 1 and "postcodes" in body["data_version"]["demand"]
    assert {"area", "assets", "nearest", "summary", "gaps", "store"} <= set(body["timings"])
    shares = [r["household_share"] for r in body["summary"]["whole_area"]]
    assert shares == sorted(shares) and 0 < shares[0] <= shares[-1] <= 1
    assert {r["borough_code"] for r in body["summary"]["boroughs"]} == {"E09000007"}


def test_downloads_agree_with_the_summary(client, auth, camden):
    report = camden.json()
    rid = report["id"]
    headers = auth("operator")
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/coverage/reports/{rid}/demand.csv", headers=headers).text))
    )
    whole = {r["threshold_m"]: r for r in report["summary"]["whole_area"]}
    assert len(rows) == whole[100.0]["demand_points"]
    assert sum(float(r["households"]) for r in rows) == pytest.approx(whole[100.0]["households"])
    covered = sum(float(r["households"]) for r in rows if r["distance_m"] and float(r["distance_m"]) <= 100)
    assert covered == pytest.approx(whole[100.0]["covered_households"])

    cells = client.get(f"/coverage/reports/{rid}/cells.geojson", headers=headers)
    assert cells.headers["content-type"].startswith("application/geo+json")
    features = cells.json()["features"]
    assert len(features) == report["summary"]["cells"]
    lon, lat = features[0]["geometry"]["coordinates"][0][0]
    assert -0.6 < lon < 0.4 and 51.2 < lat < 51.8
    assert sum(f["properties"]["area_m2"] for f in features) == pytest.approx(whole[100.0]["area_m2"])

    gaps = client.get(f"/coverage/reports/{rid}/gaps.geojson", headers=headers).json()["features"]
    assert len(gaps) == report["summary"]["gaps"]["count"]
    assert sum(g["properties"]["households"] for g in gaps) == pytest.approx(
        report["summary"]["gaps"]["households"]
    )
    households = [g["properties"]["households"] for g in gaps]
    assert households == sorted(households, reverse=True)

    text = client.get(f"/coverage/reports/{rid}/priorities.csv", headers=headers).text
    prio = list(csv.DictReader(io.StringIO(text)))
    assert 0 < len(prio) <= 5
    gains = [float(p["gain"]) for p in prio]
    assert gains == sorted(gains, reverse=True)
    assert [int(p["rank"]) for p in prio] == list(range(1, len(prio) + 1))
    assert all(p["status"] not in ("in_service", "installed", "commissioned") for p in prio)


def test_report_html_stands_alone(client, auth, camden):
    """report.html stands alone: Leaflet and the page's script and styles are in it, nothing is linked."""
    rid = camden.json()["id"]
    page = client.get(f"/coverage/reports/{rid}/report.html", headers=auth("operator"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"""(src|href)\s*=\s*["']https?://""", html)
    assert "<svg" in html and "@media print" in html and "Camden" in html
    assert '<html lang="en-GB">' in html and "user-scalable=no" not in html
    # Nothing to fetch: no script or stylesheet from /static or anywhere; only data: URLs.
    assert not re.search(r"<script[^>]*\ssrc=", html) and not re.search(r"<link[^>]*stylesheet", html)
    assert "/static/" not in html and "sourceMappingURL" not in html
    assert set(re.findall(r"""(?:src|href)=["']([^"'#]+)""", html)) <= {"data:,"}
    assert all(u.startswith("data:image/png;base64,") for u in re.findall(r"url\(([^)#][^)]*)\)", html))
    assert "Leaflet 1.9.3" in html and "window.L=" in html  # Leaflet inlined
    assert 'id="report-map"' in html and 'id="report-data"' in html


def test_report_html_runs_under_the_apps_policy_and_its_own(client, auth, camden):
    """The app's nonce policy and the page's own <meta> policy (its scripts' hashes, no fetch) both admit it."""
    import base64
    import hashlib

    page = client.get(f"/coverage/reports/{camden.json()['id']}/report.html", headers=auth("operator"))
    html = page.text
    header = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", header).group(1)
    assert "unsafe-eval" not in header and "unsafe-inline" not in header.split("script-src")[1].split(";")[0]
    tags = re.findall(r"<script\b[^>]*>", html)
    assert len(tags) == 3 and all(f'nonce="{nonce}"' in t for t in tags)
    meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    meta = meta.replace("&#x27;", "'")
    assert meta.startswith("default-src 'none';") and "img-src data:" in meta and "connect-src" not in meta
    scripts = re.findall(r"<script nonce=\"[^\"]+\">(.*?)</script>", html, re.S)
    assert len(scripts) == 2
    for code in scripts:
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in meta
    assert not re.search(r"\beval\(|new Function\(", scripts[1])


def test_report_html_says_every_figure_in_words_and_tables(client, auth, camden):
    """No raw dicts; timings in seconds and assets by kind as tables; priorities by name and place."""
    report = camden.json()
    html = client.get(f"/coverage/reports/{report['id']}/report.html", headers=auth("operator")).text
    assert not re.search(r"\{'\w+': ", html) and "Timings (s)" not in html and "Assets: {" not in html
    assert "Time taken, in seconds" in html and re.search(r"<td class=\"num\">\d+\.\d\d s</td>", html)
    counts = report["summary"]["assets"]
    assert f"{counts['qualifying_points']:,}" in html and "Lines (ducts)" in html
    rows = client.get(f"/coverage/reports/{report['id']}/priorities.csv", headers=auth("operator")).text
    ranks = [line.split(",")[0] for line in rows.splitlines()[1:]]
    table = html.split('<table class="priorities">')[1].split("</table>")[0]
    assert re.findall(r'<th scope="row" class="num">(\d+)</th>', table) == ranks
    assert len(re.findall(r"[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}<span", table)) == len(ranks)  # postcodes
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1]):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
        assert len(cells) == 9 and "–" not in (cells[1], cells[2], cells[4]), cells  # name, subtype, borough


def test_every_role_with_a_key_may_request_reports_anonymous_may_not(client, auth):
    body = {"area": {"bbox": [528000, 183000, 529000, 184000]}, "k": 0}
    assert client.post("/coverage/reports", json=body).status_code == 401
    assert client.get("/coverage/reports").status_code == 401
    for who in ("admin", "camden", "operator"):
        answer = client.post("/coverage/reports", json=body, headers=auth(who))
        assert answer.status_code == 201 and answer.json()["state"] == "done", answer.text


def test_other_keys_do_not_see_a_report_admins_do(client, auth, camden):
    rid = camden.json()["id"]
    assert client.get(f"/coverage/reports/{rid}", headers=auth("hackney")).status_code == 404
    assert client.get(f"/coverage/reports/{rid}", headers=auth("admin")).status_code == 200
    listed = client.get("/coverage/reports", headers=auth("operator")).json()
    assert rid in [r["id"] for r in listed]


@pytest.mark.parametrize(
    ("area", "words"),
    [
        ({"boroughs": ["E09000099"]}, "area.boroughs"),
        ({"bbox": [1, 2, 3]}, "area.bbox"),
        ({"geometry": {"type": "Point", "coordinates": [0, 51]}}, "area.geometry"),
        ({"bbox": [51.5, -0.2, 51.6, -0.1]}, "outside London"),
        ({"bbox": [0, 0, 10, 10], "crs": "EPSG:3857"}, "area.crs"),
    ],
)
def test_bad_areas_answer_422_saying_what_is_wrong(client, auth, area, words):
    answer = client.post("/coverage/reports", json={"area": area}, headers=auth("operator"))
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"]


def test_bad_parameters_answer_422(client, auth):
    for body, words in (
        ({**CAMDEN, "thresholds": [50, "far"]}, "thresholds"),
        ({**CAMDEN, "cell_size": 75}, "cell_size"),
        ({**CAMDEN, "statuses": ["lost"]}, "statuses"),
        ({**CAMDEN, "demand": "premises"}, "premises"),
        ({**CAMDEN, "colour": "red"}, "colour"),
    ):
        answer = client.post("/coverage/reports", json=body, headers=auth("operator"))
        assert answer.status_code == 422 and words in answer.json()["detail"], answer.text


def test_premises_sent_with_the_request(client, auth):
    premises = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-0.13 + i * 0.001, 51.535]},
             "properties": {"households": 2}}
            for i in range(20)
        ],
    }  # fmt: skip
    body = {"area": {"boroughs": ["E09000007"]}, "demand": "premises", "premises": premises}
    report = client.post("/coverage/reports", json=body, headers=auth("camden")).json()
    assert report["state"] == "done", report
    assert report["summary"]["households"] == 40 and report["summary"]["demand_points"] == 20
    assert report["parameters"]["premises"]["count"] == 20


def test_a_large_report_runs_in_the_background_with_progress(client, auth):
    app = client.app
    previous = app.state.settings.coverage
    app.state.settings.coverage = CoverageSettings(max_sync_cells=1_000)
    try:
        answer = client.post(
            "/coverage/reports",
            json={"area": {"bbox": [503000, 155000, 562000, 201000]}, "demand": "grid", "k": 3},
            headers=auth("admin"),
        )
    finally:
        app.state.settings.coverage = previous
    assert answer.status_code == 201
    rid = answer.json()["id"]
    assert answer.json()["state"] in ("queued", "running")
    seen = set()
    for _ in range(600):
        record = client.get(f"/coverage/reports/{rid}", headers=auth("admin")).json()
        seen.add((record["state"], record["progress"]["done"]))
        if record["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert record["state"] == "done", record
    assert record["progress"]["done"] == record["progress"]["total"] == len(STEPS)
    assert record["summary"]["cells"] > 200_000
    assert client.get(f"/coverage/reports/{rid}/gaps.geojson", headers=auth("admin")).status_code == 200


def test_reading_results_of_an_unfinished_report_is_a_conflict(client, auth, db_url):
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        key_id = conn.execute("SELECT id FROM api_keys WHERE label = 'test operator'").fetchone()[0]
        rid = conn.execute(
            # Owned by a live process on another host: no reaper marks it interrupted meanwhile.
            """INSERT INTO coverage_reports (parameters, created_by, key_id, owner, heartbeat_at)
               VALUES ('{}', 'test', %s, 'another-host:1:0', now()) RETURNING id""",
            [key_id],
        ).fetchone()[0]
    answer = client.get(f"/coverage/reports/{rid}/demand.csv", headers=auth("operator"))
    assert answer.status_code == 409 and "queued" in answer.json()["detail"]


def test_records_are_what_the_response_models_document(client, auth, camden):
    ReportAnswer.model_validate(camden.json())
    listed = client.get("/coverage/reports", headers=auth("operator")).json()
    for item in listed:
        if item["parameters"]:  # rows inserted by hand in these tests have none
            ListedReport.model_validate(item)
    (mine,) = [item for item in listed if item["id"] == camden.json()["id"]]
    assert {"boroughs", "profile"} & set(mine["summary"]) == set() and mine["summary"]["whole_area"]


def test_a_bad_body_is_a_problem_naming_each_field_and_value(client, auth):
    body = {**CAMDEN, "thresholds": [50, "far"], "k": True, "area": {"bbox": [1, 2, 3]}}
    answer = client.post("/coverage/reports", json=body, headers=auth("operator"))
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    errors = {e["where"]: e for e in answer.json()["errors"]}
    assert (
        errors["body.thresholds.1"]["value"] == "far"
        and "valid number" in errors["body.thresholds.1"]["message"]
    )
    assert errors["body.k"]["value"] is True
    assert errors["body.area"]["message"] == "area.bbox: [1, 2, 3] is not [minx, miny, maxx, maxy]"


def test_priorities_say_which_asset_where_and_the_nearest_postcode(camden, db_url):
    """priority_rows adds the asset's name, subtype, borough and the shipped postcode nearest to it."""
    import asyncio

    import numpy as np
    import pandas as pd
    import psycopg

    from geo.core.settings import DATA_DIR
    from geo.coverage import PRIORITY_COLUMNS, priority_rows

    async def read():
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await priority_rows(conn, camden.json()["id"])

    rows = asyncio.run(read())
    assert rows and all(set(PRIORITY_COLUMNS) <= r.keys() for r in rows)
    postcodes = pd.read_csv(
        DATA_DIR / "london_postcodes_codepoint_2014.csv", usecols=["POSTCODE", "EASTING", "NORTHING"]
    )
    with psycopg.connect(db_url) as conn:
        for r in rows:
            name, subtype, borough = conn.execute(
                """SELECT nullif(btrim(a.name), ''), a.subtype, b.name FROM assets a
                   JOIN boroughs b ON b.code = a.borough_code WHERE a.id = %s""",
                [r["asset_id"]],
            ).fetchone()
            assert (r["name"], r["subtype"], r["borough"]) == (name, subtype, borough)
            assert r["subtype_label"] and r["status_label"]
            d = np.hypot(postcodes["EASTING"] - r["x"], postcodes["NORTHING"] - r["y"])
            nearest = set(postcodes["POSTCODE"][d <= d.min() + 1e-9])  # postcodes may share a centroid
            assert r["postcode"] in nearest
            assert r["postcode_distance_m"] == pytest.approx(float(d.min()), abs=0.06)
