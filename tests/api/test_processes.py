"""OGC API - Processes: the coverage process, its jobs with two keys, the native view of the same jobs."""

from __future__ import annotations

import time

import psycopg
import pytest

from geo.core.jobs import ACTIVE
from geo.coverage import CoverageRequest
from geo.coverage.processes import CONFORMANCE, EXCEPTIONS, OUTPUTS, REL

CAMDEN = {"inputs": {"area": {"boroughs": ["E09000007"]}, "k": 5}}
PROBLEM = "application/problem+json"


def _poll(client, job_id, headers, until=("successful", "failed", "dismissed"), tries=600):
    seen = []
    for _ in range(tries):
        info = client.get(f"/jobs/{job_id}", headers=headers).json()
        seen.append((info["status"], info["progress"]))
        if info["status"] in until:
            return info, seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {seen[-1]}")


def _job_ended(job_id, timeout=120.0):
    """Wait until no thread of this process works on the report any more."""
    deadline = time.monotonic() + timeout
    while job_id in ACTIVE.ids("coverage_reports"):
        assert time.monotonic() < deadline, f"job {job_id} still running"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def camden_job(client, auth):
    answer = client.post(
        "/processes/coverage/execution", json=CAMDEN, headers={**auth("operator"), "Prefer": "respond-async"}
    )
    assert answer.status_code == 201, answer.text
    return answer


def test_the_process_list_links_the_coverage_process(client):
    body = client.get("/processes").json()
    (process,) = body["processes"]
    assert process["id"] == "coverage" and process["version"]
    assert process["jobControlOptions"] == ["async-execute", "dismiss"]
    assert any(
        link["rel"] == "self" and link["href"].endswith("/processes/coverage") for link in process["links"]
    )
    assert any(link["rel"] == "self" for link in body["links"])
    assert client.get("/processes?limit=0").status_code == 400


def test_the_description_is_the_coverage_request_schema(client):
    description = client.get("/processes/coverage").json()
    inputs = description["inputs"]
    assert set(inputs) == set(CoverageRequest.model_fields)
    assert inputs["area"]["minOccurs"] == 1 and all(
        inputs[name]["minOccurs"] == 0 for name in inputs if name != "area"
    )
    thresholds = inputs["thresholds"]
    assert "Coverage distances" in thresholds["description"]
    assert "$ref" not in str(inputs) and "$defs" not in str(inputs)  # every schema stands alone
    (array,) = [s for s in thresholds["schema"]["anyOf"] if s.get("type") == "array"]
    assert array["maxItems"] == 12 and array["items"]["maximum"] == 5000
    assert inputs["demand"]["schema"]["enum"] == ["postcodes", "grid", "premises"]
    assert "sync-execute" not in description["jobControlOptions"]
    assert set(description["outputs"]) == set(OUTPUTS)
    assert description["outputs"]["gaps"]["schema"]["contentMediaType"] == "application/geo+json"
    assert "whole_area" in description["outputs"]["summary"]["schema"]["properties"]


def test_an_unknown_process_is_no_such_process(client, auth):
    for answer in (
        client.get("/processes/voronoi"),
        client.post("/processes/voronoi/execution", json=CAMDEN, headers=auth("operator")),
    ):
        assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM
        assert answer.json()["type"] == EXCEPTIONS + "no-such-process"


def test_the_job_life_cycle_with_two_keys(client, auth, camden_job):
    operator, camden = auth("operator"), auth("camden")
    created = camden_job.json()
    job_id = created["jobID"]
    assert camden_job.headers["location"] == f"/jobs/{job_id}"
    assert camden_job.headers["preference-applied"] == "respond-async"
    assert created["status"] in ("accepted", "running", "successful") and created["processID"] == "coverage"
    assert created["type"] == "process" and "created" in created
    info, seen = _poll(client, job_id, operator)
    assert info["status"] == "successful", info
    assert all(0 <= p <= 100 for _, p in seen) and info["progress"] == 100
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    assert info["created"] <= info["started"] <= info["finished"] == info["updated"]
    rels = {link["rel"] for link in info["links"]}
    assert {"self", "up", REL + "results"} <= rels

    results = client.get(f"/jobs/{job_id}/results", headers=operator)
    assert results.status_code == 200 and set(results.json()) == set(OUTPUTS)
    native = client.get(f"/coverage/reports/{job_id}", headers=operator).json()
    assert native["state"] == "done"
    assert results.json()["summary"]["value"] == native["summary"]
    gaps_link = results.json()["gaps"]
    assert gaps_link["type"] == "application/geo+json" and gaps_link["href"].endswith(
        f"/{job_id}/gaps.geojson"
    )
    path = gaps_link["href"][gaps_link["href"].index("/coverage/") :]
    gaps = client.get(path, headers=operator).json()["features"]
    assert len(gaps) == native["summary"]["gaps"]["count"]
    only = client.get(f"/jobs/{job_id}/results?outputs=summary,priorities", headers=operator).json()
    assert set(only) == {"summary", "priorities"}
    assert client.get(f"/jobs/{job_id}/results?outputs=nope", headers=operator).status_code == 400
    one = client.get(f"/jobs/{job_id}/results/summary", headers=operator)
    assert one.headers["content-type"] == "application/json" and one.json() == native["summary"]
    moved = client.get(f"/jobs/{job_id}/results/priorities", headers=operator, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"].endswith(
        f"/coverage/reports/{job_id}/priorities.csv"
    )
    assert client.get(f"/jobs/{job_id}/results/nope", headers=operator).status_code == 400

    # The other key: nothing to see, nothing to dismiss, not even that it exists.
    for answer in (
        client.get(f"/jobs/{job_id}", headers=camden),
        client.get(f"/jobs/{job_id}/results", headers=camden),
        client.delete(f"/jobs/{job_id}", headers=camden),
    ):
        assert answer.status_code == 404 and answer.json()["type"] == EXCEPTIONS + "no-such-job"
    assert job_id not in {j["jobID"] for j in client.get("/jobs?limit=10000", headers=camden).json()["jobs"]}
    assert job_id in {j["jobID"] for j in client.get("/jobs?limit=10000", headers=operator).json()["jobs"]}
    assert client.get(f"/jobs/{job_id}", headers=auth("admin")).json()["status"] == "successful"
    assert client.get("/jobs").status_code == 401


def test_the_native_list_and_the_job_list_agree(client, auth, camden_job):
    _poll(client, camden_job.json()["jobID"], auth("operator"))
    for who in ("operator", "camden", "admin"):
        native = client.get("/coverage/reports?limit=1000", headers=auth(who)).json()
        jobs = client.get("/jobs?limit=1000", headers=auth(who)).json()["jobs"]
        states = {"queued": "accepted", "done": "successful", "interrupted": "failed"}
        assert {j["jobID"]: j["status"] for j in jobs} == {
            str(r["id"]): states.get(r["state"], r["state"]) for r in native
        }


def test_the_job_list_filters(client, auth, camden_job):
    operator = auth("operator")
    job_id = _poll(client, camden_job.json()["jobID"], operator)[0]["jobID"]

    def ids(query):
        answer = client.get(f"/jobs?limit=10000&{query}", headers=operator)
        assert answer.status_code == 200, answer.text
        return {j["jobID"] for j in answer.json()["jobs"]}

    assert job_id in ids("status=successful") and job_id in ids("status=failed,successful")
    assert job_id not in ids("status=accepted,running")
    assert job_id in ids("processID=coverage") and ids("processID=voronoi") == set()
    assert job_id in ids("type=process") and ids("type=other") == set()
    assert job_id in ids("datetime=2020-01-01T00:00:00Z/..") and job_id not in ids(
        "datetime=../2020-01-01T00:00:00Z"
    )
    assert job_id in ids("minDuration=0") and job_id not in ids("maxDuration=0&minDuration=3600")
    assert len(client.get("/jobs?limit=1", headers=operator).json()["jobs"]) <= 1
    bad = client.get("/jobs?status=done", headers=operator)
    assert bad.status_code == 400 and "status" in bad.json()["detail"]


def _queued_report(db_url, label):
    with psycopg.connect(db_url, autocommit=True) as conn:
        key_id = conn.execute("SELECT id FROM api_keys WHERE label = %s", [label]).fetchone()[0]
        return conn.execute(
            # Owned by a live process on another host (its heartbeat is fresh): no reaper's round
            # marks it interrupted while the test looks at it.
            """INSERT INTO coverage_reports (parameters, created_by, key_id, progress_total, owner, heartbeat_at)
               VALUES ('{}', 'test', %s, 9, 'another-host:1:0', now()) RETURNING id""",
            [key_id],
        ).fetchone()[0]


def test_results_before_the_end_are_not_ready_and_dismiss_stops_then_deletes(client, auth, db_url):
    operator = auth("operator")
    rid = _queued_report(db_url, "test operator")
    info = client.get(f"/jobs/{rid}", headers=operator).json()
    assert info["status"] == "accepted" and info["progress"] == 0
    for path in (f"/jobs/{rid}/results", f"/jobs/{rid}/results/summary"):
        early = client.get(path, headers=operator)
        assert early.status_code == 404 and early.json()["type"] == EXCEPTIONS + "result-not-ready"

    assert client.delete(f"/jobs/{rid}", headers=auth("hackney")).status_code == 404  # another key
    dismissed = client.delete(f"/jobs/{rid}", headers=operator)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert client.get(f"/jobs/{rid}", headers=operator).json()["status"] == "dismissed"
    assert client.get(f"/coverage/reports/{rid}", headers=operator).json()["state"] == "dismissed"
    gone = client.get(f"/jobs/{rid}/results", headers=operator)
    assert gone.status_code == 409 and "dismissed" in gone.json()["detail"]

    # A finished (here: dismissed) job is deleted: both APIs say there is no such thing.
    assert client.delete(f"/jobs/{rid}", headers=operator).json()["status"] == "dismissed"
    assert client.get(f"/jobs/{rid}", headers=operator).json()["type"] == EXCEPTIONS + "no-such-job"
    assert client.get(f"/coverage/reports/{rid}", headers=operator).status_code == 404
    with psycopg.connect(db_url) as conn:
        actions = conn.execute(
            "SELECT details->>'deleted' FROM audit_events WHERE action = 'report.dismiss' AND object_id = %s "
            "ORDER BY id",
            [str(rid)],
        ).fetchall()
    assert [a for (a,) in actions] == ["false", "true"]


def test_an_admin_may_dismiss_a_finished_job_of_another_key(client, auth, db_url):
    answer = client.post("/processes/coverage/execution", json=CAMDEN, headers=auth("camden"))
    job_id = answer.json()["jobID"]
    assert "preference-applied" not in answer.headers  # no Prefer sent: asynchronous all the same
    assert _poll(client, job_id, auth("camden"))[0]["status"] == "successful"
    _job_ended(int(job_id))
    assert client.delete(f"/jobs/{job_id}", headers=auth("admin")).json()["status"] == "dismissed"
    assert client.get(f"/coverage/reports/{job_id}", headers=auth("camden")).status_code == 404
    with psycopg.connect(db_url) as conn:
        for table in ("coverage_report_points", "coverage_report_gaps", "coverage_report_priorities"):
            count = conn.execute(
                f"SELECT count(*) FROM {table} WHERE report_id = %s", [int(job_id)]
            ).fetchone()
            assert count == (0,), table


def test_dismissing_a_running_job_stops_it_and_stores_nothing(client, auth, db_url):
    admin = auth("admin")
    body = {"inputs": {"area": {"bbox": [503000, 155000, 562000, 201000]}, "demand": "grid", "k": 3}}
    job_id = client.post("/processes/coverage/execution", json=body, headers=admin).json()["jobID"]
    info, _ = _poll(client, job_id, admin, until=("running", "successful", "failed"))
    assert info["status"] == "running", info
    assert client.delete(f"/jobs/{job_id}", headers=admin).json()["status"] == "dismissed"
    _job_ended(int(job_id))
    assert client.get(f"/jobs/{job_id}", headers=admin).json()["status"] == "dismissed"
    native = client.get(f"/coverage/reports/{job_id}", headers=admin).json()
    assert native["state"] == "dismissed" and native["summary"] is None
    with psycopg.connect(db_url) as conn:
        points = conn.execute(
            "SELECT count(*) FROM coverage_report_points WHERE report_id = %s", [int(job_id)]
        )
        assert points.fetchone() == (0,)


@pytest.mark.parametrize(
    ("inputs", "where"),
    [
        ({"area": {"boroughs": ["E09000007"]}, "thresholds": [50, "far"]}, "inputs.thresholds.1"),
        ({"area": {"boroughs": ["E09000007"]}, "colour": "red"}, "inputs.colour"),
        ({"thresholds": [50]}, "inputs.area"),
        ({"area": {"bbox": [1, 2, 3]}}, "inputs.area"),
        ({"area": {"boroughs": ["E09000007"]}, "k": 100_000}, "inputs.k"),
        ({"area": {"href": "http://127.0.0.1:1/area.json"}}, "inputs.area"),
    ],
)
def test_a_bad_input_is_a_400_naming_it(client, auth, inputs, where):
    answer = client.post("/processes/coverage/execution", json={"inputs": inputs}, headers=auth("operator"))
    assert answer.status_code == 400 and answer.headers["content-type"] == PROBLEM, answer.text
    assert where in {e["where"] for e in answer.json()["errors"]}


def test_a_qualified_input_value_is_read(client, auth):
    body = {"inputs": {"area": {"value": {"boroughs": ["E09000007"]}}, "k": {"value": 0}}}
    answer = client.post("/processes/coverage/execution", json=body, headers=auth("hackney"))
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["jobID"]
    _poll(client, job_id, auth("hackney"))
    assert client.get(f"/coverage/reports/{job_id}", headers=auth("hackney")).json()["parameters"]["k"] == 0


def test_a_subscriber_on_a_private_address_is_refused_not_ignored(client, auth):
    # This app allows no private addresses (the webhook tests' app does, and follows callbacks there).
    body = {**CAMDEN, "subscriber": {"successUri": "http://127.0.0.1:9/done"}}
    answer = client.post("/processes/coverage/execution", json=body, headers=auth("operator"))
    assert answer.status_code == 400 and "public addresses" in answer.json()["detail"]
    assert answer.json()["errors"][0]["where"] == "subscriber.successUri"


def test_executing_needs_a_key(client):
    assert client.post("/processes/coverage/execution", json=CAMDEN).status_code == 401


def test_conformance_and_landing_page_declare_processes(client):
    declared = client.get("/conformance").json()["conformsTo"]
    assert set(CONFORMANCE) <= set(declared)
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/callback" in declared  # test_webhooks.py
    links = {link["rel"]: link["href"] for link in client.get("/").json()["links"]}
    assert links[REL + "processes"].endswith("/processes") and links[REL + "job-list"].endswith("/jobs")
