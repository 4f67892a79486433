"""Webhooks over HTTP, against a receiver on 127.0.0.1: signatures, retries after 500s, redaction
per key, registration checks, the delivery log, deletion, and one event per kind of object."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from fastapi.testclient import TestClient
from servers import with_dbname

from geo import access, webhooks
from geo.core.settings import DatabaseSettings, Settings, WebhookSettings
from tests.conftest import create_database, drop_database, make_keys

CAMDEN, HACKNEY = "E09000007", "E09000012"
SECRETS = ("Jane Landlord", "jane@example.org", "020 7946 0000", "a note about the caretaker")


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers what each path is told to."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = defaultdict(list)
        self.plan: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.received[self.path].append({"headers": dict(self.headers), "body": body})
                    plan = receiver.plan[self.path]
                    status = plan.pop(0) if plan else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str) -> list[dict]:
        """The payloads posted to ``path``, in the order they came."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.received[path]]

    def wait(self, path: str, count: int, seconds: float = 15) -> list[dict]:
        """The requests to ``path`` once there are ``count`` of them."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received[path]) >= count:
                    return list(self.received[path])
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.received[path])} deliveries, not {count}")


@pytest.fixture(scope="module")
def hooks(admin_url, server_url, app_server_url, template):
    """A database and app of the module's own, its sender fast (short backoff) and allowed loopback URLs."""
    from api.app import create_app

    name = create_database(admin_url, template)
    url = with_dbname(server_url, name)
    keys = make_keys(url)

    async def operators() -> dict[str, str]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            out = {}
            for op in ("Fibre A", "Other Fibre"):
                new = await access.create_key(c, "operator", label=f"{op} key", actor=access.SYSTEM)
                await access.bind_operator(c, new.id, op, actor=access.SYSTEM)
                out[op] = new.key
            return out

    keys |= {"fibre_a": (ops := asyncio.run(operators()))["Fibre A"], "other_op": ops["Other Fibre"]}
    settings = Settings(
        db=DatabaseSettings(url=with_dbname(app_server_url, name)),
        webhook=WebhookSettings(
            allow_private=True,
            poll_s=0.05,
            backoff_base_s=0.05,
            backoff_max_s=0.2,
            timeout_s=2,
            max_per_key=5,
        ),
    )
    receiver = Receiver()
    with TestClient(create_app(settings)) as client:
        yield SimpleNamespace(
            client=client,
            url=url,
            receiver=receiver,
            auth=lambda who: {"Authorization": f"Bearer {keys[who]}"},
        )
    receiver.server.shutdown()
    drop_database(admin_url, name)


def in_order(requests):
    """The events of received requests in the order they happened (they may arrive out of order)."""
    return sorted((json.loads(r["body"]) for r in requests), key=lambda e: e["created_at"])


def register(hooks, who: str, path: str, events=None) -> dict:
    body = {"url": hooks.receiver.base + path, **({"events": events} if events is not None else {})}
    response = hooks.client.post("/webhooks", json=body, headers=hooks.auth(who))
    assert response.status_code == 201, response.text
    return response.json()


def asset_of(hooks, borough: str) -> int:
    with psycopg.connect(hooks.url) as c:
        return c.execute(
            "SELECT id FROM assets WHERE borough_code = %s AND retired_at IS NULL ORDER BY id LIMIT 1",
            [borough],
        ).fetchone()[0]


def new_wayleave(hooks, who: str = "camden", borough: str = CAMDEN, operator: str = "Fibre A") -> dict:
    body = {
        "operator": operator, "asset_ids": [asset_of(hooks, borough)], "site_name": "Hook block",
        "notes": SECRETS[3], "contact_name": SECRETS[0], "contact_email": SECRETS[1], "contact_phone": SECRETS[2],
    }  # fmt: skip
    response = hooks.client.post("/wayleaves", json=body, headers=hooks.auth(who))
    assert response.status_code == 201, response.text
    return response.json()


def log_of(hooks, who: str, webhook_id: int, **params) -> dict:
    response = hooks.client.get(f"/webhooks/{webhook_id}/deliveries", params=params, headers=hooks.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


def until(check, seconds: float = 15):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_deliveries_are_signed_and_carry_the_event(hooks):
    hook = register(hooks, "camden", "/signed", ["wayleave.created"])
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["wayleave.created"]
    wayleave = new_wayleave(hooks)
    (request,) = hooks.receiver.wait("/signed", 1)
    body, headers = request["body"], request["headers"]
    # The signature, computed here from the secret shown once (not by the service's own code).
    t, v1 = (part.split("=", 1)[1] for part in headers["X-Connectivity-Signature"].split(","))
    expected = hmac.new(hook["secret"].encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected) and abs(time.time() - int(t)) < 60
    assert webhooks.verify(hook["secret"], body, headers["X-Connectivity-Signature"])
    assert not webhooks.verify("whsec_" + "x" * 43, body, headers["X-Connectivity-Signature"])
    assert not webhooks.verify(hook["secret"], body + b" ", headers["X-Connectivity-Signature"])
    payload = json.loads(body)
    assert headers["X-Connectivity-Event"] == payload["type"] == "wayleave.created"
    assert headers["X-Connectivity-Event-Id"] == payload["id"]
    assert payload["object"] == {
        "type": "wayleave",
        "id": str(wayleave["id"]),
        "href": f"/wayleaves/{wayleave['id']}",
    }
    assert payload["data"]["wayleave"]["status"] == "identified"
    assert payload["data"]["wayleave"]["asset_ids"] == wayleave["asset_ids"]
    # The secret is never shown again.
    for shown in (
        hooks.client.get(f"/webhooks/{hook['id']}", headers=hooks.auth("camden")).json(),
        *hooks.client.get("/webhooks", headers=hooks.auth("camden")).json(),
    ):
        assert "secret" not in shown and hook["secret"] not in json.dumps(shown)
    logged = log_of(hooks, "camden", hook["id"])["deliveries"][0]
    assert logged["state"] == "delivered" and logged["attempts"] == 1 and logged["last_status_code"] == 200
    assert logged["event_id"] == payload["id"] and logged["payload"] == payload


def test_each_key_hears_only_what_it_may_see(hooks):
    events = ["wayleave.created", "wayleave.transitioned", "wayleave.edited"]
    ids = {
        who: register(hooks, who, f"/seen/{who}", events)["id"]
        for who in ("camden", "hackney", "fibre_a", "other_op", "admin")
    }
    wayleave = new_wayleave(hooks)
    moved = hooks.client.post(
        f"/wayleaves/{wayleave['id']}/transitions", json={"to": "requested", "expected_version": 1, "note": SECRETS[3]},
        headers=hooks.auth("camden"),
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    # Only the notes change: operators may not see that field, so they hear nothing of it.
    edited = hooks.client.patch(
        f"/wayleaves/{wayleave['id']}",
        json={"notes": "new note"},
        headers={**hooks.auth("camden"), "If-Match": '"2"'},
    )
    assert edited.status_code == 200, edited.text
    edited = hooks.client.patch(
        f"/wayleaves/{wayleave['id']}", json={"operator_reference": "FA-1"},
        headers={**hooks.auth("fibre_a"), "If-Match": '"3"'},
    )  # fmt: skip
    assert edited.status_code == 200, edited.text
    hooks.receiver.wait("/seen/camden", 4)
    hooks.receiver.wait("/seen/admin", 4)
    hooks.receiver.wait("/seen/fibre_a", 3)

    def mine(who):
        # In the order they happened: deliveries are posted several at a time, so they may arrive
        # out of order (the README says so), and each carries when its event was written.
        seen = [e for e in hooks.receiver.events(f"/seen/{who}") if e["object"]["id"] == str(wayleave["id"])]
        return sorted(seen, key=lambda e: e["created_at"])

    owner, operator = mine("camden"), mine("fibre_a")
    assert [e["type"] for e in owner] == [
        "wayleave.created",
        "wayleave.transitioned",
        "wayleave.edited",
        "wayleave.edited",
    ]
    assert [e["type"] for e in operator] == ["wayleave.created", "wayleave.transitioned", "wayleave.edited"]
    assert owner[2]["data"]["edit"]["fields"] == ["notes"] and operator[2]["data"]["edit"]["fields"] == [
        "operator_reference"
    ]
    # The owning borough sees who wrote it, the operator does not; nobody is sent personal data.
    assert owner[0]["data"]["wayleave"]["created_by"] and owner[1]["data"]["transition"]["by"]
    assert (
        "created_by" not in operator[0]["data"]["wayleave"] and "by" not in operator[1]["data"]["transition"]
    )
    assert operator[1]["data"]["transition"]["to"] == "requested"
    for who in ("camden", "fibre_a", "admin"):
        sent = json.dumps(mine(who))
        assert not any(secret in sent for secret in SECRETS), who
        assert not any(f in sent for f in ('"contact_email"', '"notes":', '"note"'))
    # Another borough and another operator are sent nothing of it, and their logs say so.
    for who in ("hackney", "other_op"):
        assert mine(who) == []
        assert log_of(hooks, who, ids[who])["count"] == 0
    # A Hackney wayleave reaches Hackney (and the admin), never Camden.
    other = new_wayleave(hooks, "hackney", HACKNEY, operator="Other Fibre")
    hooks.receiver.wait("/seen/hackney", 1)
    hooks.receiver.wait("/seen/other_op", 1)
    assert until(
        lambda: any(e["object"]["id"] == str(other["id"]) for e in hooks.receiver.events("/seen/admin"))
    )
    assert not any(e["object"]["id"] == str(other["id"]) for e in hooks.receiver.events("/seen/camden"))
    assert not any(e["object"]["id"] == str(other["id"]) for e in hooks.receiver.events("/seen/fibre_a"))


def test_a_500_is_retried_with_backoff_and_every_attempt_is_logged(hooks):
    hooks.receiver.plan["/flaky"] = [500, 503, 200]
    hook = register(hooks, "admin", "/flaky", ["wayleave.created"])
    new_wayleave(hooks)
    requests = hooks.receiver.wait("/flaky", 3)
    assert len({r["headers"]["X-Connectivity-Event-Id"] for r in requests}) == 1  # the same event, again
    assert len({r["headers"]["X-Connectivity-Signature"] for r in requests}) >= 1
    delivery = until(
        lambda: (
            (d := log_of(hooks, "admin", hook["id"])["deliveries"]) and d[0]["state"] == "delivered" and d[0]
        )
    )
    assert delivery["attempts"] == 3 and delivery["delivered_at"] and delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempt_log"]] == ["answered 500", "answered 503", None]


def test_a_delivery_past_its_day_fails(hooks):
    hooks.receiver.plan["/down"] = [500] * 1000
    hook = register(hooks, "admin", "/down", ["wayleave.created"])
    new_wayleave(hooks)
    hooks.receiver.wait("/down", 1)
    with psycopg.connect(hooks.url, autocommit=True) as c:  # as if the event were a day old
        c.execute(
            "UPDATE webhook_deliveries SET created_at = now() - interval '25 hours' WHERE webhook_id = %s",
            [hook["id"]],
        )
    delivery = until(
        lambda: (d := log_of(hooks, "admin", hook["id"])["deliveries"]) and d[0]["state"] == "failed" and d[0]
    )
    assert delivery and delivery["last_status_code"] == 500 and delivery["next_attempt_at"] is None
    assert len(delivery["attempt_log"]) == delivery["attempts"] >= 2
    assert log_of(hooks, "admin", hook["id"], state="pending")["count"] == 0


def test_deleting_a_webhook_stops_its_deliveries(hooks):
    hooks.receiver.plan["/deleted"] = [500] * 1000
    hook = register(hooks, "fibre_a", "/deleted", ["wayleave.created"])
    watcher = register(hooks, "fibre_a", "/watcher", ["wayleave.created"])
    new_wayleave(hooks)
    hooks.receiver.wait("/deleted", 1)
    assert hooks.client.delete(f"/webhooks/{hook['id']}", headers=hooks.auth("other_op")).status_code == 404
    assert hooks.client.delete(f"/webhooks/{hook['id']}", headers=hooks.auth("fibre_a")).status_code == 204
    assert hooks.client.delete(f"/webhooks/{hook['id']}", headers=hooks.auth("fibre_a")).status_code == 404
    stopped = len(hooks.receiver.received["/deleted"])
    (delivery,) = log_of(hooks, "fibre_a", hook["id"])["deliveries"]
    assert delivery["state"] == "cancelled" and delivery["last_error"] == "the webhook was deleted"
    new_wayleave(hooks)
    hooks.receiver.wait("/watcher", 2)  # the next event reached the live webhook...
    time.sleep(0.3)
    assert len(hooks.receiver.received["/deleted"]) <= stopped + 1  # (at most one attempt already under way)
    assert log_of(hooks, "fibre_a", hook["id"])["count"] == 1  # ...and nothing was made for the deleted one
    shown = hooks.client.get(f"/webhooks/{hook['id']}", headers=hooks.auth("fibre_a")).json()
    assert shown["active"] is False and shown["deleted_at"]
    listed = [w["id"] for w in hooks.client.get("/webhooks", headers=hooks.auth("fibre_a")).json()]
    assert hook["id"] not in listed and watcher["id"] in listed
    with_deleted = hooks.client.get(
        "/webhooks", params={"deleted": "true"}, headers=hooks.auth("fibre_a")
    ).json()
    assert hook["id"] in [w["id"] for w in with_deleted]


def test_a_revoked_key_is_sent_nothing(hooks):
    async def key() -> str:
        async with await psycopg.AsyncConnection.connect(hooks.url, autocommit=True) as c:
            return (await access.create_key(c, "admin", label="short-lived", actor=access.SYSTEM)).key

    secret = asyncio.run(key())
    response = hooks.client.post(
        "/webhooks", json={"url": hooks.receiver.base + "/revoked", "events": ["wayleave.created"]},
        headers={"Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert response.status_code == 201
    with psycopg.connect(hooks.url, autocommit=True) as c:
        c.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = %s", [secret[:11]])
    watcher = register(hooks, "admin", "/revoked-watcher", ["wayleave.created"])
    new_wayleave(hooks)
    hooks.receiver.wait("/revoked-watcher", 1)
    assert hooks.receiver.received["/revoked"] == []
    assert log_of(hooks, "admin", response.json()["id"])["count"] == 0 and watcher


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/hook", "http or https"),
        ("https://user:secret@example.org/hook", "credentials"),
        ("https:///hook", "no host"),
        ("https://example.org/hook#part", "fragment"),
        ("https://example.org:99999/hook", "port"),
        ("https://exa mple.org/hook", "spaces"),
        ("example.org/hook", "http or https"),
    ],
)
def test_a_bad_url_is_a_400_that_says_where(hooks, url, message):
    response = hooks.client.post("/webhooks", json={"url": url}, headers=hooks.auth("camden"))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["where"] == "body.url" and message in problem["errors"][0]["message"]


def test_events_are_checked_against_the_role(hooks):
    operator = hooks.client.post(
        "/webhooks",
        json={"url": hooks.receiver.base + "/x", "events": ["upload.applied"]},
        headers=hooks.auth("fibre_a"),
    )
    assert operator.status_code == 403 and "upload.applied" in operator.json()["detail"]
    borough = hooks.client.post(
        "/webhooks", json={"url": hooks.receiver.base + "/x", "events": ["pipeline_import.done"]},
        headers=hooks.auth("camden"),
    )  # fmt: skip
    assert borough.status_code == 403
    unknown = hooks.client.post(
        "/webhooks",
        json={"url": hooks.receiver.base + "/x", "events": ["asset.deleted"]},
        headers=hooks.auth("admin"),
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["where"].startswith("body.events")
    everything = register(hooks, "fibre_a", "/all")
    assert everything["events"] == list(webhooks.ROLE_EVENTS["operator"])
    assert hooks.client.post("/webhooks", json={"url": hooks.receiver.base}).status_code == 401


def test_webhooks_belong_to_their_key_and_writes_are_audited(hooks):
    hook = register(hooks, "hackney", "/owned", ["upload.applied"])
    for who, status in (("hackney", 200), ("admin", 200), ("camden", 404), ("fibre_a", 404)):
        assert hooks.client.get(f"/webhooks/{hook['id']}", headers=hooks.auth(who)).status_code == status
        assert (
            hooks.client.get(f"/webhooks/{hook['id']}/deliveries", headers=hooks.auth(who)).status_code
            == status
        )
    assert hook["id"] not in [
        w["id"] for w in hooks.client.get("/webhooks", headers=hooks.auth("camden")).json()
    ]
    assert hook["id"] in [w["id"] for w in hooks.client.get("/webhooks", headers=hooks.auth("admin")).json()]
    audit = hooks.client.get(
        "/audit", params={"object_type": "webhook", "object_id": str(hook["id"])}, headers=hooks.auth("admin")
    ).json()["events"]
    assert [e["action"] for e in audit] == ["webhook.create"]
    assert audit[0]["actor"].endswith("(test hackney)") and audit[0]["details"]["host"] == "127.0.0.1"


def test_the_delivery_log_pages(hooks):
    hook = register(hooks, "camden", "/paged", ["wayleave.created"])
    for _ in range(3):
        new_wayleave(hooks)
    hooks.receiver.wait("/paged", 3)
    until(lambda: log_of(hooks, "camden", hook["id"], state="delivered")["count"] == 3)
    first = log_of(hooks, "camden", hook["id"], limit=2)
    assert first["count"] == 2 and first["next_before"] == first["deliveries"][-1]["id"]
    second = log_of(hooks, "camden", hook["id"], limit=2, before=first["next_before"])
    assert second["count"] == 1 and second["next_before"] is None
    ids = [d["id"] for d in first["deliveries"] + second["deliveries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3


def test_an_event_is_written_with_its_write_or_not_at_all(hooks):
    hook = register(hooks, "camden", "/rollback", ["upload.failed"])
    with psycopg.connect(hooks.url) as c:
        upload_id = c.execute(
            """INSERT INTO uploads (borough_code, kind, mode, dry_run, skip_invalid, file_name, file_path, size_bytes,
                                    sha256, created_by, state)
               VALUES (%s, 'street_furniture', 'append', true, false, 'x.csv', '/nowhere', 1, 'x', 'test', 'running')
               RETURNING id""",
            [CAMDEN],
        ).fetchone()[0]
        c.commit()
        c.execute("UPDATE uploads SET state = 'failed' WHERE id = %s", [upload_id])
        c.rollback()  # the write is undone: so is its event
        c.execute("UPDATE uploads SET state = 'interrupted' WHERE id = %s", [upload_id])
        c.commit()
    (request,) = hooks.receiver.wait("/rollback", 1)
    payload = json.loads(request["body"])
    assert payload["type"] == "upload.failed" and payload["data"]["upload"]["state"] == "interrupted"
    time.sleep(0.2)
    assert (
        len(hooks.receiver.received["/rollback"]) == 1 and log_of(hooks, "camden", hook["id"])["count"] == 1
    )


def test_uploads_reports_and_pipeline_imports_are_heard_by_who_may_see_them(hooks, samples):
    from upload_helpers import send, wait

    camden = register(hooks, "camden", "/jobs/camden", ["upload.previewed", "upload.applied", "report.done"])
    hackney = register(
        hooks, "hackney", "/jobs/hackney", ["upload.previewed", "upload.applied", "report.done"]
    )
    fibre_a = register(hooks, "fibre_a", "/jobs/fibre_a", ["report.done", "report.failed"])
    other_op = register(hooks, "other_op", "/jobs/other_op", ["report.done", "report.failed"])
    register(
        hooks, "admin", "/jobs/admin", ["upload.applied", "pipeline_import.done", "pipeline_import.failed"]
    )
    # A Camden dry run, then applied: Camden hears both, the admin the apply, Hackney nothing.
    sent = send(hooks.client, hooks.auth, samples.write("gpkg", name="hooked"), dry_run="true")
    assert sent.status_code == 202, sent.text
    upload_id = sent.json()["id"]
    assert wait(hooks.client, hooks.auth, upload_id)["state"] == "previewed"
    applied = hooks.client.post(f"/uploads/{upload_id}/apply", headers=hooks.auth("camden"))
    assert applied.status_code == 202, applied.text
    assert wait(hooks.client, hooks.auth, upload_id)["state"] == "applied"
    heard = in_order(hooks.receiver.wait("/jobs/camden", 2))
    assert [e["type"] for e in heard] == ["upload.previewed", "upload.applied"]
    assert (
        heard[1]["data"]["upload"]["counts"]["new"] > 0
        and heard[1]["object"]["href"] == f"/uploads/{upload_id}"
    )
    (to_admin,) = [json.loads(r["body"]) for r in hooks.receiver.wait("/jobs/admin", 1)]
    assert (
        to_admin["type"] == "upload.applied" and to_admin["id"] == heard[1]["id"]
    )  # one event, two webhooks
    # A report of Fibre A's: Fibre A hears it is done, no other key that is not an admin.
    report = hooks.client.post(
        "/coverage/reports", json={"area": {"boroughs": ["E09000001"]}}, headers=hooks.auth("fibre_a")
    )
    assert report.status_code == 201, report.text
    (done,) = [json.loads(r["body"]) for r in hooks.receiver.wait("/jobs/fibre_a", 1, seconds=60)]
    assert done["type"] == "report.done" and done["object"]["id"] == str(report.json()["id"])
    assert done["data"]["report"]["state"] == "done" and "key_id" not in done["data"]
    # Pipeline imports: admins only; a rejected file is a failed import, a good one a done one.
    rejected = hooks.client.post(
        "/pipeline/imports", files={"file": ("p.json", b"[]")}, headers=hooks.auth("admin")
    )
    assert rejected.status_code == 422 and rejected.json()["state"] == "rejected"
    projects = (Path(__file__).parent.parent / "fixtures" / "pipeline" / "projects.json").read_bytes()
    imported = hooks.client.post(
        "/pipeline/imports", files={"file": ("projects.json", projects)}, data={"skip_invalid": "true"},
        headers=hooks.auth("admin"),
    )  # fmt: skip
    assert imported.status_code == 201, imported.text
    pipeline = in_order(hooks.receiver.wait("/jobs/admin", 3))[1:]
    assert [e["type"] for e in pipeline] == ["pipeline_import.failed", "pipeline_import.done"]
    assert pipeline[1]["data"]["import"]["id"] == imported.json()["id"]
    assert pipeline[1]["data"]["import"]["counts"]["new"] == imported.json()["counts"]["new"] > 0
    for quiet in (hackney, other_op):
        assert log_of(hooks, "admin", quiet["id"])["count"] == 0
    assert log_of(hooks, "camden", camden["id"])["count"] == 2 and fibre_a


def test_a_jobs_subscriber_is_sent_its_results_or_its_failure_and_nothing_else(hooks):
    cb = hooks.receiver.base
    body = {
        "inputs": {"area": {"boroughs": ["E09000001"]}},
        "subscriber": {"successUri": f"{cb}/cb/done", "failedUri": f"{cb}/cb/failed"},
    }
    started = hooks.client.post(
        "/processes/coverage/execution",
        json=body,
        headers={**hooks.auth("fibre_a"), "Prefer": "respond-async"},
    )
    assert started.status_code == 201, started.text
    job = started.json()["jobID"]
    (done,) = hooks.receiver.wait("/cb/done", 1, seconds=60)
    results = json.loads(done["body"])
    # The results, as GET /jobs/{id}/results gives them, signed as any delivery is.
    assert results == hooks.client.get(f"/jobs/{job}/results", headers=hooks.auth("fibre_a")).json()
    assert results["summary"]["value"]["whole_area"] and results["gaps"]["href"].endswith(
        f"/coverage/reports/{job}/gaps.geojson"
    )
    assert done["headers"][webhooks.SIGNATURE_HEADER]
    # A callback is a webhook for its own job only: another report of the same key sends it nothing,
    # and it is neither listed with the key's webhooks nor counted against their limit.
    again = hooks.client.post(
        "/coverage/reports", json={"area": {"boroughs": ["E09000001"]}}, headers=hooks.auth("fibre_a")
    )
    assert again.status_code == 201
    listed = hooks.client.get("/webhooks", headers=hooks.auth("fibre_a")).json()
    assert not any("/cb/" in w["url"] for w in listed)
    # A failed job: its failedUri hears its status, failed, with the reason.
    failing = hooks.client.post(
        "/processes/coverage/execution", json={**body, "subscriber": {"failedUri": f"{cb}/cb/failed"}},
        headers=hooks.auth("fibre_a"),
    )  # fmt: skip
    failing_id = failing.json()["jobID"]
    with psycopg.connect(
        hooks.url, autocommit=True
    ) as conn:  # the job ends badly, as an interrupted one would
        until(
            lambda: (
                conn.execute("SELECT state FROM coverage_reports WHERE id = %s", [failing_id]).fetchone()[0]
                == "done"
            )
        )
        conn.execute("UPDATE coverage_reports SET state = 'running' WHERE id = %s", [failing_id])
        conn.execute(
            "UPDATE coverage_reports SET state = 'failed', message = 'out of memory' WHERE id = %s",
            [failing_id],
        )
    (failed,) = hooks.receiver.wait("/cb/failed", 1)
    status = json.loads(failed["body"])
    assert (
        status["jobID"] == failing_id
        and status["status"] == "failed"
        and status["message"] == "out of memory"
    )
    time.sleep(0.5)
    assert len(hooks.receiver.received["/cb/done"]) == 1  # the second report and the failed job: not to it


@pytest.mark.parametrize(
    ("subscriber", "where"),
    [
        ({"successUri": "ftp://example.org/x"}, "subscriber.successUri"),
        ({"inProgressUri": "https://example.org/p"}, "subscriber.inProgressUri"),
        ({"successUri": "https://example.org/x", "elseUri": "https://example.org/y"}, "subscriber.elseUri"),
        ({}, "subscriber"),
    ],
)
def test_a_subscriber_that_cannot_be_used_is_a_400_before_any_job_starts(hooks, subscriber, where):
    before = hooks.client.get("/jobs?limit=1000", headers=hooks.auth("other_op")).json()["jobs"]
    answer = hooks.client.post(
        "/processes/coverage/execution",
        json={"inputs": {"area": {"boroughs": ["E09000001"]}}, "subscriber": subscriber},
        headers=hooks.auth("other_op"),
    )
    assert answer.status_code == 400 and answer.json()["errors"][0]["where"] == where, answer.text
    assert hooks.client.get("/jobs?limit=1000", headers=hooks.auth("other_op")).json()["jobs"] == before


@pytest.mark.parametrize(
    "value",
    [{"a": [{"b": [1] * 10}] * 10}, ["https://example.org"], 12, None, "x" * 5000, "https://ex ample.org"],
)
def test_a_subscriber_url_that_is_not_a_url_is_a_short_400(hooks, value):
    answer = hooks.client.post(
        "/processes/coverage/execution",
        json={"inputs": {"area": {"boroughs": ["E09000001"]}}, "subscriber": {"successUri": value}},
        headers=hooks.auth("other_op"),
    )
    assert answer.status_code == 400 and answer.json()["errors"][0]["where"] == "subscriber.successUri"
    assert len(answer.text) < 1500
