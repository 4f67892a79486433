"""The webhook parts without the API: URL checks, who is sent what, backoff, signatures, and one attempt's limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import threading
import time
import uuid

import httpx
import pytest

from geo.access.principals import Principal
from geo.core.settings import WebhookSettings
from geo.webhooks import InvalidWebhook, Subscriber, check_url, next_attempt, payload_for, signature, verify
from geo.webhooks.sender import UnsafeTarget, post, resolve

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
CAMDEN, HACKNEY = "E09000007", "E09000012"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "https://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
        "https://printer.local/hook",
    ],
)
def test_private_and_local_addresses_are_refused_unless_allowed(url):
    with pytest.raises(InvalidWebhook, match="public") as refused:
        check_url(url)
    assert refused.value.problem_extra["errors"][0]["where"] == "body.url"
    assert check_url(url, allow_private=True) == url


def test_public_urls_are_accepted_as_given():
    for url in (
        "https://gis.example.org/hooks/1?token=abc",
        "http://93.184.216.34:8080/x",
        "https://[2606:4700::1]/",
    ):
        assert check_url(f"  {url} ") == url


def test_the_sender_refuses_a_name_that_resolves_to_a_private_address():
    with pytest.raises(UnsafeTarget, match="not a public address"):
        asyncio.run(resolve("http://localhost:9/hook", allow_private=False))
    with pytest.raises(UnsafeTarget, match="not a public address"):
        asyncio.run(resolve("http://127.0.0.1:9/hook", allow_private=False))
    target = asyncio.run(resolve("http://localhost:9/hook?x=1", allow_private=True))
    assert target.url in ("http://127.0.0.1:9/hook?x=1", "http://[::1]:9/hook?x=1")
    assert target.host_header == "localhost:9" and target.server_name is None
    secure = asyncio.run(resolve("https://localhost/h", allow_private=True))
    assert secure.server_name == "localhost" and secure.host_header == "localhost"


def test_backoff_doubles_with_jitter_and_stops_after_the_day():
    s = WebhookSettings(backoff_base_s=30, backoff_max_s=3600, max_age_hours=24)
    delays = [(next_attempt(n, T0, T0, s, rand=lambda: 1.0) - T0).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    low = (next_attempt(3, T0, T0, s, rand=lambda: 0.0) - T0).total_seconds()
    assert low == 60  # jitter: half the delay at least
    later = T0 + dt.timedelta(hours=23, minutes=15)
    assert next_attempt(40, T0, later, s, rand=lambda: 1.0) is None  # past a day after the event: failed
    assert next_attempt(40, T0, later, s, rand=lambda: 0.0) is not None
    with pytest.raises(ValueError, match="BACKOFF_MAX_S"):
        WebhookSettings(backoff_base_s=60, backoff_max_s=10)


def test_signatures_verify_only_with_the_secret_the_body_and_a_recent_time():
    secret, body = "whsec_" + "k" * 43, b'{"id":"1"}'
    header = signature(secret, body, at=1_700_000_000)
    assert verify(secret, body, header, now=1_700_000_100)
    assert not verify(secret, body, header, now=1_700_000_000 + 301)  # a replay, later
    assert not verify(secret + "x", body, header, now=1_700_000_000)
    assert not verify(secret, body + b"\n", header, now=1_700_000_000)
    assert not verify(secret, body, header.replace("t=1700000000", "t=1700000001"), now=1_700_000_000)
    assert not verify(secret, body, "garbage", now=1_700_000_000)


def _event(object_type: str, data: dict, kind: str) -> dict:
    return {
        "event_id": uuid.uuid4(),
        "type": kind,
        "object_type": object_type,
        "object_id": "7",
        "at": T0,
        "data": data,
    }


def _sub(
    role,
    borough=None,
    key_id=1,
    operator=None,
    events=("wayleave.edited", "wayleave.transitioned", "upload.applied", "report.done"),
):
    principal = Principal(role=role, borough_code=borough, key_id=key_id, label="k")
    return Subscriber(1, tuple(events), T0 - dt.timedelta(days=1), principal, operator)


WAYLEAVE = {
    "id": 7,
    "borough_code": CAMDEN,
    "operator": "Fibre A",
    "status": "requested",
    "created_by": "key 3 (camden)",
}


def test_a_wayleave_event_is_redacted_per_key():
    moved = _event(
        "wayleave",
        {"wayleave": WAYLEAVE, "transition": {"to": "requested", "by": "key 3"}},
        "wayleave.transitioned",
    )
    owner = payload_for(moved, _sub("borough", CAMDEN))
    assert owner["data"]["wayleave"]["created_by"] and owner["data"]["transition"]["by"] == "key 3"
    assert owner["object"]["href"] == "/wayleaves/7" and owner["created_at"] == T0.isoformat()
    operator = payload_for(moved, _sub("operator", operator="Fibre A"))
    assert "created_by" not in operator["data"]["wayleave"] and "by" not in operator["data"]["transition"]
    assert payload_for(moved, _sub("operator", operator="Other")) is None
    assert payload_for(moved, _sub("operator", operator=None)) is None  # an unbound operator key sees none
    assert payload_for(moved, _sub("borough", HACKNEY)) is None
    assert payload_for(moved, _sub("admin"))["data"]["wayleave"]["created_by"]
    # Only restricted fields changed: an operator is sent nothing; otherwise only the fields it may see.
    notes = _event(
        "wayleave",
        {"wayleave": WAYLEAVE, "edit": {"fields": ["notes", "contact_email"], "by": "x"}},
        "wayleave.edited",
    )
    assert payload_for(notes, _sub("operator", operator="Fibre A")) is None
    assert payload_for(notes, _sub("borough", CAMDEN))["data"]["edit"]["fields"] == ["notes", "contact_email"]
    mixed = _event(
        "wayleave",
        {"wayleave": WAYLEAVE, "edit": {"fields": ["notes", "reference"], "by": "x"}},
        "wayleave.edited",
    )
    assert payload_for(mixed, _sub("operator", operator="Fibre A"))["data"]["edit"] == {
        "fields": ["reference"]
    }


def test_uploads_reports_and_subscriptions_follow_the_api_rules():
    upload = _event("upload", {"upload": {"id": 7, "borough_code": CAMDEN}}, "upload.applied")
    assert payload_for(upload, _sub("borough", CAMDEN)) and payload_for(upload, _sub("admin"))
    assert payload_for(upload, _sub("borough", HACKNEY)) is None
    assert payload_for(upload, _sub("operator", operator="Fibre A")) is None
    report = _event("report", {"key_id": 5, "report": {"id": 7}}, "report.done")
    assert payload_for(report, _sub("operator", key_id=5))["data"] == {"report": {"id": 7}}
    assert payload_for(report, _sub("operator", key_id=6)) is None and payload_for(
        report, _sub("admin", key_id=6)
    )
    assert payload_for(report, _sub("admin", events=("report.failed",))) is None  # not asked for
    early = {**report, "at": T0 - dt.timedelta(days=2)}
    assert payload_for(early, _sub("admin")) is None  # before the webhook existed


class _Server:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.hits = []  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class _Redirecting(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/slow":
            time.sleep(1.5)
        self.send_response(302 if self.path == "/moved" else 200)
        self.send_header("Location", "/elsewhere")
        body = b"x" * (1_000_000 if self.path == "/big" else 0)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


def _attempt(url: str, **settings):
    s = WebhookSettings(allow_private=True, **settings)
    delivery = {
        "id": 1,
        "event_id": uuid.uuid4(),
        "event_type": "report.done",
        "payload": {"a": 1},
        "url": url,
        "secret": "s" * 40,
    }

    async def go():
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            return await post(client, delivery, s)

    return asyncio.run(go())


def test_an_attempt_follows_no_redirect_and_keeps_to_its_time():
    server = _Server(_Redirecting)
    moved = _attempt(server.base + "/moved")
    assert moved.status_code == 302 and not moved.delivered and moved.error == "answered 302"
    assert server.server.hits == ["/moved"]  # never the Location
    started = time.monotonic()
    slow = _attempt(server.base + "/slow", timeout_s=0.3)
    assert (
        slow.error == "no answer within 0.3 s"
        and slow.status_code is None
        and time.monotonic() - started < 1.2
    )
    big = _attempt(server.base + "/big", max_response_bytes=1024)
    assert big.delivered and big.error is None
    refused = _attempt("http://127.0.0.1:9/nothing-listens")
    assert refused.status_code is None and "ConnectError" in refused.error
    server.server.shutdown()


def test_the_readme_shows_a_check_that_works():
    from geo.core.settings import PROJECT_ROOT

    section = (PROJECT_ROOT / "README.md").read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 (our own README)
    secret, body = "whsec_" + "r" * 43, b'{"id":"e"}'
    assert namespace["verified"](secret, body, signature(secret, body))
    assert not namespace["verified"](secret, body + b"x", signature(secret, body))
    assert not namespace["verified"](secret, body, signature(secret, body, at=int(time.time()) - 3600))
