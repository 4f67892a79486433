"""The audit trail and honest history: every write recorded with its actor, nothing re-attributed by a write that changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
import pytest
from upload_helpers import send, wait

from geo import access

CAMDEN = "E09000007"


def events(conn, **where):
    conds = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    return conn.execute(
        f"SELECT actor, actor_key_id, actor_role, action, object_type, object_id, details FROM audit_events WHERE {conds} ORDER BY id",
        where,
    ).fetchall()


def key_id(client, headers):
    return client.get("/me", headers=headers).json()["key_id"]


def an_asset(conn, borough=CAMDEN, offset=0):
    # From the end of the id range: other test modules edit the first assets of a borough.
    return conn.execute(
        "SELECT id, version, changed_by FROM assets WHERE borough_code = %s AND retired_at IS NULL "
        "ORDER BY id DESC LIMIT 1 OFFSET %s",
        [borough, offset],
    ).fetchone()


def test_an_edit_is_recorded_and_an_edit_that_changes_nothing_changes_nothing(client, conn, auth):
    asset_id, version, _ = an_asset(conn)
    first = client.patch(f"/assets/{asset_id}", json={"owner": "Audit Borough"}, headers=auth("camden"))
    assert first.status_code == 200
    after_first = conn.execute("SELECT version, changed_by FROM assets WHERE id = %s", [asset_id]).fetchone()
    assert after_first[0] == version + 1 and after_first[1].endswith("(test camden)")
    recorded = events(conn, object_type="asset", object_id=str(asset_id), action="asset.update")
    assert recorded[-1][:6] == (
        after_first[1],
        key_id(client, auth("camden")),
        "borough",
        "asset.update",
        "asset",
        str(asset_id),
    )
    assert recorded[-1][6] == {"fields": ["owner"], "from_version": version, "to_version": version + 1}

    # The admin sends the same value: no version, the author stays the borough's key, no event.
    same = client.patch(f"/assets/{asset_id}", json={"owner": "Audit Borough"}, headers=auth("admin"))
    assert same.status_code == 200 and same.json()["version"] == version + 1
    assert (
        conn.execute("SELECT version, changed_by FROM assets WHERE id = %s", [asset_id]).fetchone()
        == after_first
    )
    assert len(events(conn, object_type="asset", object_id=str(asset_id), action="asset.update")) == len(
        recorded
    )


def test_no_write_path_can_reattribute_a_version_it_did_not_make(conn):
    asset_id, version, changed_by = an_asset(conn, "E09000012")
    conn.execute(
        "UPDATE assets SET owner = owner, changed_by = 'someone else', load_id = NULL WHERE id = %s",
        [asset_id],
    )
    assert conn.execute("SELECT version, changed_by FROM assets WHERE id = %s", [asset_id]).fetchone() == (
        version,
        changed_by,
    )
    conn.rollback()


def test_history_and_audit_tables_are_append_only(conn):
    conn.execute(
        "INSERT INTO audit_events (actor, action, object_type) VALUES ('test', 'asset.update', 'asset')"
    )
    asset_id, _, _ = an_asset(conn, offset=1)
    conn.execute("UPDATE assets SET owner = 'a version to forge' WHERE id = %s", [asset_id])
    statements = [
        "UPDATE audit_events SET actor = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE asset_versions SET changed_by = 'forged'",
        "DELETE FROM asset_versions",
        "TRUNCATE asset_versions",
        "TRUNCATE wayleave_events",
        "TRUNCATE pipeline_project_versions",
    ]
    # Row triggers fire on rows: these tables are checked when the session has written some.
    for table, statement in (
        ("wayleave_events", "UPDATE wayleave_events SET by = 'forged'"),
        ("pipeline_project_versions", "UPDATE pipeline_project_versions SET changed_by = 'forged'"),
    ):
        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
            statements.append(statement)
    for statement in statements:
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            with conn.transaction():
                conn.execute(statement)
    conn.rollback()


def test_applying_a_dry_run_is_the_applying_keys_write(isolated, samples):
    path = samples.write("gpkg", name="audit-apply")
    response = send(isolated.client, isolated.auth, path, dry_run="true")
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    assert wait(isolated.client, isolated.auth, upload_id)["state"] == "previewed"
    applied = isolated.client.post(f"/uploads/{upload_id}/apply", headers=isolated.auth("admin"))
    assert applied.status_code == 202, applied.text
    record = wait(isolated.client, isolated.auth, upload_id)
    assert record["state"] == "applied" and record["applied_by"].endswith("(test admin)")
    admin = key_id(isolated.client, isolated.auth("admin"))
    camden = key_id(isolated.client, isolated.auth("camden"))
    with psycopg.connect(isolated.url) as conn:
        load_by = conn.execute(
            "SELECT l.created_by FROM uploads u JOIN loads l ON l.id = u.load_id WHERE u.id = %s", [upload_id]
        ).fetchone()[0]
        assert load_by.endswith("(test admin)")
        writers = conn.execute(
            "SELECT DISTINCT a.changed_by FROM assets a JOIN uploads u ON a.load_id = u.load_id WHERE u.id = %s",
            [upload_id],
        ).fetchall()
        assert writers == [(f"upload {upload_id} ({load_by})",)]
        trail = [(r[3], r[1]) for r in events(conn, object_type="upload", object_id=str(upload_id))]
    assert trail == [("upload.create", camden), ("upload.apply", admin), ("upload.applied", admin)]


def test_two_applies_at_once_start_one_job(isolated, samples):
    path = samples.write("gpkg", name="audit-twice")
    upload_id = send(isolated.client, isolated.auth, path, dry_run="true").json()["id"]
    assert wait(isolated.client, isolated.auth, upload_id)["state"] == "previewed"
    with psycopg.connect(isolated.url) as conn:
        conn.execute(
            "UPDATE uploads SET state = 'queued' WHERE id = %s", [upload_id]
        )  # another apply took it
        conn.commit()
    late = isolated.client.post(f"/uploads/{upload_id}/apply", headers=isolated.auth("camden"))
    assert late.status_code == 409 and "queued" in late.json()["detail"]
    with psycopg.connect(isolated.url) as conn:
        assert events(conn, object_type="upload", object_id=str(upload_id), action="upload.apply") == []
        conn.execute("UPDATE uploads SET state = 'previewed' WHERE id = %s", [upload_id])
        conn.commit()


def test_wayleave_writes_and_contact_reads_are_recorded(client, conn, auth):
    asset_id, _, _ = an_asset(conn, offset=2)
    created = client.post(
        "/wayleaves",
        json={"operator": "Audit Fibre", "asset_ids": [asset_id], "contact_email": "estates@example.org"},
        headers=auth("camden"),
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    moved = client.post(
        f"/wayleaves/{wid}/transitions",
        json={"to": "requested", "expected_version": 1},
        headers=auth("camden"),
    )
    assert moved.status_code == 200, moved.text
    edited = client.patch(
        f"/wayleaves/{wid}",
        json={"notes": "gate code with the caretaker"},
        headers={**auth("admin"), "If-Match": '"2"'},
    )
    assert edited.status_code == 200, edited.text
    actions = [
        r[3] for r in events(conn, object_type="wayleave", object_id=str(wid)) if r[3] != "personal_data.read"
    ]
    assert actions == ["wayleave.create", "wayleave.transition", "wayleave.update"]
    transition = events(conn, object_type="wayleave", object_id=str(wid), action="wayleave.transition")[0]
    assert transition[6] == {"from": "identified", "to": "requested", "event_seq": 2}
    assert "estates@example.org" not in str(events(conn, object_type="wayleave", object_id=str(wid)))

    before = len(events(conn, action="personal_data.read"))
    assert (
        client.get(f"/wayleaves/{wid}", headers=auth("camden")).json()["contact_email"]
        == "estates@example.org"
    )
    reads = events(conn, action="personal_data.read")
    assert (
        len(reads) == before + 1
        and reads[-1][5] == str(wid)
        and reads[-1][1] == key_id(client, auth("camden"))
    )
    # Another borough reads the wayleave without its contact: nothing personal was read.
    other = client.get(f"/wayleaves/{wid}", headers=auth("hackney")).json()
    assert "contact_email" not in other and "created_by" not in other
    assert len(events(conn, action="personal_data.read")) == before + 1


def test_get_audit_is_for_admins_with_filters_and_paging(client, conn, auth):
    asset_id, _, _ = an_asset(conn, "E09000012", offset=1)
    for owner in ("first", "second", "third"):
        assert (
            client.patch(f"/assets/{asset_id}", json={"owner": owner}, headers=auth("hackney")).status_code
            == 200
        )
    assert client.get("/audit").status_code == 401
    assert client.get("/audit", headers=auth("hackney")).status_code == 403
    hackney = key_id(client, auth("hackney"))
    page = client.get(
        "/audit",
        params={"actor": str(hackney), "object_type": "asset", "object_id": str(asset_id), "limit": 2},
        headers=auth("admin"),
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["count"] == 2 and body["next_before"] is not None
    assert [e["details"]["to_version"] for e in body["events"]] == sorted(
        (e["details"]["to_version"] for e in body["events"]), reverse=True
    )
    rest = client.get(
        "/audit",
        params={"actor": str(hackney), "object_id": str(asset_id), "before": body["next_before"]},
        headers=auth("admin"),
    ).json()
    assert rest["count"] >= 1 and all(e["id"] < body["next_before"] for e in rest["events"])
    assert all(
        e["actor_key_id"] == hackney and e["action"] == "asset.update"
        for e in body["events"] + rest["events"]
    )
    by_name = client.get(
        "/audit", params={"actor": "test hackney", "action": "asset.update"}, headers=auth("admin")
    )
    assert by_name.json()["count"] >= 3
    bad = client.get("/audit", params={"action": "asset.delete"}, headers=auth("admin"))
    assert bad.status_code == 400 and "asset.update" in bad.json()["detail"]
    later = client.get(
        "/audit",
        params={"since": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()},
        headers=auth("admin"),
    )
    assert later.json()["count"] == 0


def run(db_url, work):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            return await work(c)

    return asyncio.run(main())


def test_keys_expire_rotate_and_every_change_is_recorded(client, db_url, conn):
    actor = access.cli_principal()
    with pytest.raises(ValueError, match="not in the future"):
        run(
            db_url,
            lambda c: access.create_key(
                c, "operator", expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), actor=access.SYSTEM
            ),
        )
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    new = run(
        db_url, lambda c: access.create_key(c, "operator", label="expiring", expires_at=soon, actor=actor)
    )
    headers = {"Authorization": f"Bearer {new.key}"}
    assert client.get("/me", headers=headers).status_code == 200
    conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", [new.id])
    conn.commit()
    expired = client.get("/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    live = run(db_url, lambda c: access.create_key(c, "operator", label="rotating", actor=actor))
    rotated = run(db_url, lambda c: access.rotate_key(c, live.id, actor=actor))
    assert rotated.id == live.id and rotated.key != live.key
    assert client.get("/me", headers={"Authorization": f"Bearer {live.key}"}).status_code == 401
    assert client.get("/me", headers={"Authorization": f"Bearer {rotated.key}"}).json()["key_id"] == live.id
    # A guess that shares the prefix but not the secret is refused like any other.
    forged = rotated.key[: access.PREFIX_LENGTH] + "x" * (len(rotated.key) - access.PREFIX_LENGTH)
    assert client.get("/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    run(db_url, lambda c: access.bind_operator(c, live.id, "Rotating Fibre", actor=actor))
    assert run(db_url, lambda c: access.revoke_key(c, live.id, actor=actor)) is True
    with pytest.raises(LookupError):
        run(db_url, lambda c: access.rotate_key(c, live.id, actor=actor))
    trail = [
        (r[3], r[0], r[6].get("operator"))
        for r in events(conn, object_type="api_key", object_id=str(live.id))
    ]
    assert trail == [
        ("key.create", actor.name, None),
        ("key.rotate", actor.name, None),
        ("key.bind", actor.name, "Rotating Fibre"),
        ("key.revoke", actor.name, None),
    ]
    assert live.key not in str(events(conn, object_type="api_key"))
