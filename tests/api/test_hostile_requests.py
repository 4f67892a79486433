"""Requests made to hurt: each is answered with a 4xx problem document (or a sane 200) in bounded time and memory."""

from __future__ import annotations

import resource
import socket
import threading
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from geo.core.settings import DatabaseSettings, JobSettings, Settings

PROBLEM = "application/problem+json"
BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"


def problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["detail"]
    assert (
        "/work/" not in body["detail"] and "/tmp/" not in body["detail"] and "Traceback" not in body["detail"]
    )
    return body


@pytest.mark.parametrize("edge", ["1e8", "1e9", "1e300"])
def test_huge_bboxes_are_clamped_to_the_service_extent(client, edge):
    started = time.monotonic()
    response = client.get(
        "/collections/street_furniture/items",
        params={"bbox": f"-{edge},-{edge},{edge},{edge}", "bbox-crs": BNG, "limit": 5},
    )
    assert response.status_code == 200, response.text
    assert response.json()["numberReturned"] == 5  # every London asset is inside: the first page
    assert time.monotonic() - started < 20  # was more than 590 s in PostgreSQL


@pytest.mark.parametrize("value", ["nan,0,1,1", "0,0,inf,1", "-inf,-inf,inf,inf", "1,2,3", "a,b,c,d"])
def test_non_finite_or_malformed_bboxes_are_400_everywhere(client, auth, value):
    for path, extra in (
        ("/collections/street_furniture/items", {}),
        ("/pipeline/projects", {}),
        ("/wayleaves", {"bbox-crs": 27700}),
    ):
        body = problem(client.get(path, params={"bbox": value, **extra}, headers=auth("admin")), 400)
        assert "bbox" in body["detail"]


def test_wayleave_bboxes_return_what_is_inside(client, conn, auth):
    asset_id = conn.execute(
        "SELECT id FROM assets WHERE borough_code = 'E09000012' AND retired_at IS NULL ORDER BY id DESC LIMIT 1 OFFSET 5"
    ).fetchone()[0]
    created = client.post(
        "/wayleaves", json={"operator": "Box Fibre", "asset_ids": [asset_id]}, headers=auth("hackney")
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    for params in ({"bbox": "-180,-90,180,90"}, {"bbox": "-1e9,-1e9,1e9,1e9", "bbox-crs": 27700}):
        ids = [
            w["id"]
            for w in client.get(
                "/wayleaves", params={"operator": "Box Fibre", **params}, headers=auth("admin")
            ).json()
        ]
        assert ids == [wid], params


@pytest.mark.parametrize("after", ["²", "1e3", "99999999999999999999", "%00", "1\x00"])
def test_odd_cursors_and_ids_are_400_or_404_never_500(client, after):
    problem(client.get("/collections/street_furniture/items", params={"after": after}), 400)


def test_odd_feature_ids_and_nul_bytes(client, auth):
    problem(client.get("/collections/street_furniture/items/²"), 404)
    problem(client.get("/collections/street_furniture/items/1%00"), 400)
    for path, name in (
        ("/wayleaves", "operator"),
        ("/pipeline/projects", "tag"),
        ("/collections/boroughs/items", "borough"),
    ):
        problem(client.get(path, params={name: "a\x00b"}, headers=auth("admin")), 400)


def an_asset(conn):
    return conn.execute(
        "SELECT id FROM assets WHERE borough_code = 'E09000007' ORDER BY id DESC LIMIT 1 OFFSET 9"
    ).fetchone()[0]


@pytest.mark.parametrize("tag", ["abc", "-1", '"x"', "1, 2", b"\xb2", "W/abc"])
def test_a_malformed_if_match_is_400_and_writes_nothing(client, conn, auth, tag):
    asset_id = an_asset(conn)
    before = conn.execute("SELECT version, owner FROM assets WHERE id = %s", [asset_id]).fetchone()
    problem(
        client.patch(
            f"/assets/{asset_id}",
            json={"owner": "If-Match probe"},
            headers={**auth("camden"), "If-Match": tag},
        ),
        400,
    )
    assert conn.execute("SELECT version, owner FROM assets WHERE id = %s", [asset_id]).fetchone() == before
    problem(
        client.patch("/wayleaves/1", json={"notes": "x"}, headers={**auth("admin"), "If-Match": tag}), 400
    )


def test_a_raw_non_ascii_byte_in_if_match_is_400(live_server, conn, auth):
    asset_id = an_asset(conn)
    key = auth("camden")["Authorization"].encode()
    raw = (
        f"PATCH /assets/{asset_id} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + b"Authorization: "
        + key
        + b"\r\nIf-Match: \xb2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert b"400" in http(live_server, raw).split(b"\r\n", 1)[0]


def test_writes_without_a_key_are_401_before_anything_else(client):
    problem(client.post("/wayleaves/1/transitions", json={"to": "requested"}), 401)
    problem(client.post("/wayleaves/bulk", files={"file": ("x.csv", b"\xff\xfe junk")}), 401)
    problem(client.patch("/assets/1", json={}), 401)


def test_bulk_csv_that_is_not_utf8_is_a_422(client, auth):
    body = problem(
        client.post(
            "/wayleaves/bulk",
            files={"file": ("x.csv", b"wayleave_id,to\n1,requ\xe9sted\n")},
            headers=auth("admin"),
        ),
        422,
    )
    assert "UTF-8" in body["detail"]


def http(base_url: str, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, reading the answer meanwhile (a server that answers early may close before
    all is sent: what it said is kept)."""
    parts = urlsplit(base_url)
    received: list[bytes] = []
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as s:

        def read() -> None:
            try:
                while chunk := s.recv(65536):
                    received.append(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            s.sendall(request)
        except OSError:
            pass  # the server answered and closed: its answer is what counts
        reader.join(timeout)
    return b"".join(received)


def test_a_200_mb_anonymous_body_is_401_before_it_is_read(live_server):
    head = (
        b"POST /coverage/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 209715200\r\nConnection: close\r\n\r\n"
    )
    started = time.monotonic()
    answer = http(live_server, head + b"{" + b" " * 65536)  # the rest never comes
    assert answer.startswith(b"HTTP/1.1 401") and PROBLEM.encode() in answer
    assert time.monotonic() - started < 5  # was 6 s and +1.1 GB


def test_an_oversized_body_with_a_key_is_413_by_its_length_or_as_it_streams(live_server, auth):
    key = auth("admin")["Authorization"].encode()
    declared = (
        b"PATCH /assets/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: "
        + key
        + b"\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n{"
    )
    assert http(live_server, declared).startswith(b"HTTP/1.1 413")
    chunk = b"%x\r\n%s\r\n" % (2**20, b" " * 2**20)
    streamed = (
        b"PATCH /assets/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: "
        + key
        + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunk * 3
        + b"0\r\n\r\n"
    )
    answer = http(live_server, streamed)
    assert answer.startswith(b"HTTP/1.1 413") and b"more than the limit" in answer


def test_thousands_of_tiles_with_long_repeated_filters_keep_the_cache_bounded(client):
    cache = client.app.state.tile_cache
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    borough = ",".join(["E09000007"] * 600)  # 6 KB of one value: normalised to one code
    for i in range(2000):
        response = client.get(
            f"/tiles/street_furniture/22/{2096000 + i}/1394000.mvt", params={"borough": borough}
        )
        assert response.status_code == 200
    assert cache.size <= cache.max_bytes and len(cache) <= cache.max_entries
    assert all(len(repr(key)) < 300 for key in list(cache._tiles)[-2000:])
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 40


def test_an_unexpected_error_is_a_500_problem_without_details(settings, monkeypatch):
    from geo.layers import features

    async def broken(*args, **kwargs):
        raise RuntimeError("/work/main/secret/path exploded")

    monkeypatch.setattr(features, "get_items", broken)
    with TestClient(create_app(settings)) as client:  # answered by the app: nothing raised to here
        response = client.get("/collections/street_furniture/items")
    body = problem(response, 500)
    assert "secret" not in body["detail"] and "exploded" not in body["detail"]
    # Like every answer: the security headers and the request id of its access-log line.
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-request-id"]


def test_a_statement_over_the_timeout_is_a_503(app_db_url, db_url):
    # 1 s: the locked query waits past it; the next one (~50 ms) is well inside it even on a busy machine.
    slow = Settings(db=DatabaseSettings(url=app_db_url, statement_timeout_ms=1000))
    with TestClient(create_app(slow)) as client, psycopg.connect(db_url) as blocker:
        blocker.execute("LOCK TABLE boroughs IN ACCESS EXCLUSIVE MODE")  # the request's query waits on it
        started = time.monotonic()
        response = client.get("/boroughs")
        blocker.rollback()
        body = problem(response, 503)
        assert "statement timeout" in body["detail"] and int(response.headers["retry-after"]) > 0
        assert time.monotonic() - started < 10
        assert client.get("/boroughs").status_code == 200


def test_jobs_past_a_keys_limit_are_429_with_retry_after(isolated, samples):
    from upload_helpers import send, wait

    limited = Settings(
        db=DatabaseSettings(url=isolated.client.app.state.settings.db.url), jobs=JobSettings(per_key=1)
    )
    with TestClient(create_app(limited)) as client, psycopg.connect(isolated.url) as blocker:
        blocker.execute("LOCK TABLE assets IN ACCESS EXCLUSIVE MODE")  # the first job waits on it
        first = send(client, isolated.auth, samples.write("gpkg", name="first"))
        assert first.status_code == 202, first.text
        second = send(client, isolated.auth, samples.write("gpkg", name="second"))
        body = problem(second, 429)
        assert int(second.headers["retry-after"]) > 0 and "jobs queued or running" in body["detail"]
        other = send(
            client, isolated.auth, samples.write("gpkg", name="other"), who="hackney", borough="E09000012"
        )
        assert other.status_code == 202  # the limit is per key
        blocker.rollback()
        assert wait(client, isolated.auth, first.json()["id"])["state"] == "applied"
        wait(client, isolated.auth, other.json()["id"], who="hackney")
        # The key's job ended: room again, once its process is reaped (moments after its state is written).
        third_file = samples.write("gpkg", name="third")
        deadline = time.monotonic() + 10
        while (
            third := send(client, isolated.auth, third_file)
        ).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert third.status_code == 202, third.text
        wait(client, isolated.auth, third.json()["id"])


def test_limits_and_roles_follow_the_route_behind_a_path_prefix(client, settings):
    from api.app import _body_limit
    from api.middleware import _route_roles

    limit = _body_limit(settings)
    behind = {"method": "POST", "path": "/proxied/uploads", "root_path": "/proxied"}
    assert (
        limit(behind)
        == limit({"method": "POST", "path": "/uploads", "root_path": ""})
        > settings.api.max_body_bytes
    )
    assert _route_roles(client.app, behind) == ("admin", "borough")


def test_the_access_log_names_the_key_of_reads_and_writes_never_the_key_or_query(client, keys, auth, caplog):
    caplog.set_level("INFO", logger="connectivity.access")
    me = client.get("/me", headers=auth("camden")).json()
    read = client.get("/wayleaves", params={"operator": "olivia.example@x.org"}, headers=auth("camden"))
    write = client.post("/wayleaves", json={}, headers=auth("camden"))
    anonymous = client.get("/boroughs")
    lines = {
        r.getMessage().split()[0]: r.getMessage() for r in caplog.records if r.name == "connectivity.access"
    }
    for response in (read, write):
        line = lines[response.headers["x-request-id"]]
        assert line.endswith(f"key={me['key_id']}"), line
    assert lines[anonymous.headers["x-request-id"]].endswith("key=-")
    text = "\n".join(lines.values())
    assert keys["camden"] not in text and "olivia" not in text
