"""Personal data: a subject access export, erasure everywhere (history and audit included), retention."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest
from upload_helpers import send, wait

from geo import access

EMAIL = "Jane.Doe@Camden.example.org"
NAME = "Jane Doe"


@pytest.fixture(scope="module")
def person(isolated):
    """Jane Doe in every kind of place: a wayleave contact edited twice, a Pipeline owner, an
    asset's extra column (and its history), an upload error, a key label and the audit trail."""
    client, auth, url = isolated.client, isolated.auth, isolated.url

    async def key() -> str:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            return (
                await access.create_key(
                    c, "borough", "E09000007", label=f"{NAME} (Camden GIS)", actor=access.SYSTEM
                )
            ).key

    jane = {"Authorization": f"Bearer {asyncio.run(key())}"}
    with psycopg.connect(url, autocommit=True) as conn:
        asset_id = conn.execute(
            "SELECT id FROM assets WHERE borough_code = 'E09000007' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO pipeline_projects (title, organisation, owner, owner_email, source, placement, unplaced_reason)
               VALUES ('Doe project', 'Camden', %s, %s, 'api', 'unplaced', 'test')""",
            [NAME, EMAIL.lower()],
        )
    assert (
        client.patch(f"/assets/{asset_id}", json={"extra": {"officer": EMAIL}}, headers=jane).status_code
        == 200
    )
    assert (
        client.patch(
            f"/assets/{asset_id}", json={"extra": {"officer": "someone else"}}, headers=jane
        ).status_code
        == 200
    )
    created = client.post(
        "/wayleaves",
        json={"operator": "Doe Fibre", "asset_ids": [asset_id], "contact_name": NAME, "contact_email": EMAIL},
        headers=jane,
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    edit = client.patch(
        f"/wayleaves/{wid}", json={"contact_email": "estates@example.org", "notes": f"ask {NAME} first"},
        headers={**jane, "If-Match": '"1"'},
    )  # fmt: skip
    assert edit.status_code == 200, edit.text
    return {
        "client": client,
        "auth": auth,
        "url": url,
        "asset_id": asset_id,
        "wayleave_id": wid,
        "jane": jane,
    }


def test_export_finds_the_person_everywhere_and_only_admins_may_ask(person):
    client, auth = person["client"], person["auth"]
    assert client.post("/gdpr/export", json={"email": EMAIL}).status_code == 401
    assert client.post("/gdpr/export", json={"email": EMAIL}, headers=auth("camden")).status_code == 403
    bad = client.post("/gdpr/export", json={"email": "not an address"}, headers=auth("admin"))
    assert bad.status_code == 422 and "not an e-mail address" in bad.json()["detail"]
    response = client.post("/gdpr/export", json={"email": EMAIL, "name": NAME}, headers=auth("admin"))
    assert response.status_code == 200, response.text
    tables = response.json()["tables"]
    for table in (
        "wayleaves",
        "wayleave_changes",
        "pipeline_projects",
        "assets",
        "asset_versions",
        "api_keys",
        "audit_events",
    ):
        assert tables.get(table, {}).get("count", 0) >= 1, table
    assert any(EMAIL.lower() in json.dumps(r).lower() for r in tables["wayleave_changes"]["rows"])
    with psycopg.connect(person["url"]) as conn:
        action = conn.execute("SELECT action FROM audit_events ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert action == "gdpr.export"


def test_erase_redacts_everywhere_history_included_and_records_itself(person):
    client, auth, url = person["client"], person["auth"], person["url"]
    with psycopg.connect(url) as conn:
        versions_before = conn.execute("SELECT count(*) FROM asset_versions").fetchone()[0]
        changes_before = conn.execute("SELECT count(*) FROM wayleave_changes").fetchone()[0]
    refused = client.post(
        "/gdpr/erase", json={"email": EMAIL, "name": NAME, "confirm": False}, headers=auth("admin")
    )
    assert refused.status_code == 422
    erased = client.post(
        "/gdpr/erase", json={"email": EMAIL, "name": NAME, "confirm": True}, headers=auth("admin")
    )
    assert erased.status_code == 200, erased.text
    counts = erased.json()["erased"]
    assert counts["wayleaves"] >= 1 and counts["wayleave_changes"] >= 1 and counts["asset_versions"] >= 1
    assert counts["pipeline_projects"] == 1 and counts["api_keys"] == 1 and counts["audit_events"] >= 1

    after = client.post("/gdpr/export", json={"email": EMAIL, "name": NAME}, headers=auth("admin")).json()[
        "tables"
    ]
    assert set(after) <= {"audit_events"}  # only the erasure's and exports' own records, which hold no values
    for row in after.get("audit_events", {}).get("rows", []):
        assert EMAIL.lower() not in json.dumps(row).lower() and NAME.lower() not in json.dumps(row).lower()
    with psycopg.connect(url) as conn:
        # Erasing wrote no history of its own (which would have kept the values).
        assert conn.execute("SELECT count(*) FROM asset_versions").fetchone()[0] == versions_before
        assert conn.execute("SELECT count(*) FROM wayleave_changes").fetchone()[0] == changes_before
        wayleave = conn.execute(
            "SELECT contact_name, contact_email, notes FROM wayleaves WHERE id = %s", [person["wayleave_id"]]
        ).fetchone()
        assert wayleave == (None, "estates@example.org", "ask [erased] first")
        old = conn.execute(
            "SELECT old_value FROM wayleave_changes WHERE wayleave_id = %s AND field = 'contact_email'",
            [person["wayleave_id"]],
        ).fetchone()[0]
        assert old == "[erased]"
        label = conn.execute("SELECT label FROM api_keys WHERE label LIKE '%%Camden GIS%%'").fetchone()[0]
        assert label == "[erased] (Camden GIS)"
        event = conn.execute(
            "SELECT actor, object_type, object_id, details FROM audit_events WHERE action = 'gdpr.erase'"
        ).fetchone()
        assert event[0].endswith("(test admin)") and event[1] == "person" and len(event[2]) == 64
        assert event[3]["counts"]["wayleaves"] >= 1
    # The key still works: only its label was the person's.
    assert client.get("/me", headers=person["jane"]).json()["label"] == "[erased] (Camden GIS)"


def test_retention_deletes_old_files_errors_and_premises_and_says_so(isolated, samples):
    client, auth, url = isolated.client, isolated.auth, isolated.url
    path = samples.write("gpkg", name="retained")
    upload_id = send(client, auth, path, dry_run="true").json()["id"]
    assert wait(client, auth, upload_id)["state"] == "previewed"
    with psycopg.connect(url) as conn:
        stored = Path(conn.execute("SELECT file_path FROM uploads WHERE id = %s", [upload_id]).fetchone()[0])
        conn.execute(
            "INSERT INTO upload_errors (upload_id, seq, row_number, value, message) VALUES (%s, 1, 1, 'x', 'old')",
            [upload_id],
        )
        conn.execute(
            "UPDATE uploads SET finished_at = now() - interval '100 days' WHERE id = %s", [upload_id]
        )
        conn.commit()
    assert stored.exists()
    report = client.post(
        "/coverage/reports",
        json={"area": {"boroughs": ["E09000007"]}, "demand": "premises",
              "premises": {"type": "FeatureCollection", "features": [
                  {"type": "Feature", "properties": {"id": f"P{i}"}, "geometry": {"type": "Point", "coordinates": c}}
                  for i, c in enumerate([[-0.14, 51.54], [-0.13, 51.53]])]}},
        headers=auth("operator"),
    )  # fmt: skip
    assert report.status_code == 201, report.text
    report_id = report.json()["id"]
    assert (
        client.get(f"/coverage/reports/{report_id}/demand.csv", headers=auth("operator")).status_code == 200
    )
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE coverage_reports SET created_at = now() - interval '100 days' WHERE id = %s", [report_id]
        )
        conn.commit()

    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["purge"], env={"DATABASE_URL": url, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "upload files" in result.stdout
    assert not stored.exists()
    with psycopg.connect(url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM upload_errors WHERE upload_id = %s", [upload_id]).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM coverage_report_points WHERE report_id = %s AND layer = 'demand'",
                [report_id],
            ).fetchone()[0]
            == 0
        )
        purge = conn.execute(
            "SELECT details FROM audit_events WHERE action = 'retention.purge' ORDER BY id DESC"
        ).fetchone()[0]
    assert purge["counts"]["upload_files"] >= 1 and purge["counts"]["premises_points"] >= 2
    late = client.post(f"/uploads/{upload_id}/apply", headers=auth("camden"))
    assert late.status_code == 409 and "deleted" in late.json()["detail"]
    gone = client.get(f"/coverage/reports/{report_id}/demand.csv", headers=auth("operator"))
    assert gone.status_code == 410 and "retention" in gone.json()["detail"]
    assert (
        client.get(f"/coverage/reports/{report_id}", headers=auth("operator")).json()["summary"] is not None
    )


def test_a_person_is_matched_as_whole_words_and_never_by_a_part(isolated):
    client, auth, url = isolated.client, isolated.auth, isolated.url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO pipeline_projects (title, organisation, owner, owner_email, content, source, placement,
                                              unplaced_reason)
               VALUES ('Annual survey', 'Camden', 'Joanne Smithson', 'mojo@x.org',
                       'Annual planning with Ann Smith (ann.smith@x.org)', 'api', 'unplaced', 'test')"""
        )
    one_word = client.post("/gdpr/erase", json={"name": "Ann", "confirm": True}, headers=auth("admin"))
    assert one_word.status_code == 422 and "full name" in one_word.json()["detail"]
    erased = client.post(
        "/gdpr/erase", json={"name": "Ann Smith", "email": "jo@x.org", "confirm": True}, headers=auth("admin")
    )
    assert erased.status_code == 200, erased.text
    with psycopg.connect(url) as conn:
        owner, email, content = conn.execute(
            "SELECT owner, owner_email, content FROM pipeline_projects WHERE title = 'Annual survey'"
        ).fetchone()
    assert (owner, email) == ("Joanne Smithson", "mojo@x.org")  # other people, untouched
    assert content == "Annual planning with [erased] (ann.smith@x.org)"


def test_one_purge_at_a_time_and_a_failed_one_leaves_the_lock_free(isolated):
    from geo.access.personal_data import PURGE_LOCK, Retention, purge
    from geo.core.settings import RetentionSettings

    retention = Retention.from_settings(RetentionSettings())
    with psycopg.connect(isolated.url) as first, psycopg.connect(isolated.url) as second:
        first.execute("SELECT pg_advisory_xact_lock(%s)", [PURGE_LOCK])  # a purge under way
        assert purge(second, retention) is None
        first.rollback()
        assert purge(second, retention) is not None
        # A purge that fails midway rolls back, and its lock goes with it: the next one runs.
        with pytest.raises(psycopg.Error):
            purge(first, Retention(10**12, 1, 1))
        assert first.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert purge(second, retention) is not None
