"""The hostile files, sent through the API as a borough would: a 4xx, nothing of the server in any answer, nothing written."""

from __future__ import annotations

import json
import resource
import time
import zipfile

import psycopg
import pytest
from fastapi.testclient import TestClient
from upload_helpers import send, wait

from api.app import create_app
from geo.core.settings import DatabaseSettings, Settings, UploadSettings

PASSWD = "/etc/passwd"
VRT = f"""<OGRVRTDataSource><OGRVRTLayer name="pw"><SrcDataSource>CSV:{PASSWD}</SrcDataSource>
<SrcSQL dialect="sqlite">SELECT field_1 AS name, 'PW' || rowid AS source_id, MakePoint(530000, 180000) AS geometry
FROM passwd</SrcSQL></OGRVRTLayer></OGRVRTDataSource>""".encode()


@pytest.fixture(scope="module")
def client(isolated):
    return isolated.client


@pytest.fixture(scope="module")
def auth(isolated):
    return isolated.auth


def snapshot(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*), coalesce(sum(version), 0), max(id) FROM assets").fetchone()


def nothing_of_the_server(text: str) -> None:
    assert "root:" not in text and "/bin/bash" not in text and "nologin" not in text
    assert "/var/uploads" not in text and "/tmp/" not in text and "/work/" not in text


def hostile(tmp_path):
    files = dict.fromkeys(("x.geojson", "x.json", "x.gpkg", "x.fgb", "x.kml", "x.xlsx", "x.csv"), VRT)
    kmz = tmp_path / "x.kmz"
    with zipfile.ZipFile(kmz, "w") as zf:
        zf.writestr("doc.kml", VRT)
    files["x.kmz"] = kmz.read_bytes()
    files["link.kml"] = (
        b'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document><NetworkLink><Link>'
        b"<href>/vsicurl/http://127.0.0.1:9/a.kml</href></Link></NetworkLink></Document></kml>"
    )
    files["xxe.kml"] = (
        b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&x;</name></Placemark></Document></kml>'
    )
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n")
    files["wide.csv"] = wide.read_bytes()
    return files


def test_every_hostile_file_is_a_clear_4xx_with_nothing_of_the_server(isolated, client, auth, tmp_path):
    before = snapshot(isolated.url)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, data in hostile(tmp_path).items():
        path = tmp_path / "sent" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        started = time.monotonic()
        response = send(client, auth, path, kind="street_furniture", dry_run="true")
        took = time.monotonic() - started
        if response.status_code == 202:  # read as text (a CSV of XML lines): row errors, never the file
            record = wait(client, auth, response.json()["id"])
            assert record["state"] == "rejected", (name, record)
            text = (
                json.dumps(record)
                + client.get(f"/uploads/{record['id']}/errors.csv", headers=auth("camden")).text
            )
        else:
            assert response.status_code == 422, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            text = response.text
            assert name in response.json()["detail"]
        nothing_of_the_server(text)
        assert took < 30, (name, took)
    assert snapshot(isolated.url) == before
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    assert grown < 150, f"the hostile files grew the service by {grown:.0f} MB"


def test_a_file_that_needs_more_memory_than_allowed_is_stopped_and_rejected(isolated, tmp_path):
    """300,000 distinct properties in a 4 MB GeoJSON: GDAL builds a schema of them (0.4 GB); the
    first look at the file runs in a process of its own, stopped at the memory limit."""
    props = ",".join(f'"k{i}":1' for i in range(300_000))
    path = tmp_path / "wide.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{' + props + "},"
        '"geometry":{"type":"Point","coordinates":[-0.14,51.54]}}]}'
    )
    tight = Settings(db=DatabaseSettings(url=isolated.app_url), upload=UploadSettings(max_memory_mb=300))
    before = snapshot(isolated.url)
    with TestClient(create_app(tight)) as client:
        response = send(client, isolated.auth, path, kind="street_furniture")
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "reading the file was stopped" in detail and "300 MB" in detail
    assert snapshot(isolated.url) == before
