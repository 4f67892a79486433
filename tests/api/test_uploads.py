"""Borough uploads through the API: background processing, preview, apply, errors, isolation.

Replace-mode uploads retire much of Camden's data, so these tests run on a database of their own.
"""

import csv
import io

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
from upload_helpers import CAMDEN, send, wait


@pytest.fixture(scope="module")
def client(isolated):
    return isolated.client


@pytest.fixture(scope="module")
def auth(isolated):
    return isolated.auth


@pytest.fixture
def conn(isolated):
    with psycopg.connect(isolated.url, autocommit=True) as c:
        yield c


def upload(client, auth, path, who="camden", **form):
    response = send(client, auth, path, who, **form)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/uploads/{response.json()['id']}"
    return wait(client, auth, response.json()["id"], who)


def camden_assets(conn, prefix):
    return conn.execute(
        "SELECT count(*) FROM assets WHERE borough_code = %s AND source_id LIKE %s AND retired_at IS NULL",
        [CAMDEN, prefix + "%"],
    ).fetchone()[0]


def renamed(samples, prefix, rows=None):
    frame = samples.stops.copy()
    frame["UNITNO"] = prefix + frame["UNITNO"]
    return frame if rows is None else frame.iloc[rows].reset_index(drop=True)


def test_dry_run_previews_and_writes_nothing_then_apply_writes_it(client, auth, conn, samples):
    path = samples.write("gpkg", frame=renamed(samples, "DRY-"))
    before = conn.execute("SELECT count(*), max(version) FROM assets").fetchone()
    preview = upload(client, auth, path, kind="street_furniture", dry_run=True)
    assert preview["state"] == "previewed", preview
    assert (
        preview["counts"]["new"] == 200
        and preview["counts"]["changed"] == 0
        and preview["counts"]["errors"] == 0
    )
    assert preview["mapping"]["columns"]["UNITNO"] == "source_id"
    assert preview["mapping"]["columns"]["WARD"] == "extra"
    assert (
        preview["format"] == "GeoPackage"
        and preview["progress"]["done"] == preview["progress"]["total"] == 200
    )
    assert conn.execute("SELECT count(*), max(version) FROM assets").fetchone() == before
    applied = client.post(f"/uploads/{preview['id']}/apply", headers=auth("camden"))
    assert applied.status_code == 202
    record = wait(client, auth, preview["id"])
    assert record["state"] == "applied" and record["counts"]["new"] == 200
    assert camden_assets(conn, "DRY-") == 200
    # Provenance leads back to the upload.
    row = conn.execute(
        """SELECT u.id, u.file_name, u.sha256 FROM assets a JOIN loads l ON l.id = a.load_id
           JOIN uploads u ON u.load_id = l.id WHERE a.source_id = %s""",
        ["DRY-" + samples.stops["UNITNO"][0]],
    ).fetchone()
    assert row[0] == preview["id"] and row[1] == path.name and len(row[2]) == 64
    touched = conn.execute(
        "SELECT count(*) FROM upload_assets WHERE upload_id = %s AND action = 'new'", [preview["id"]]
    ).fetchone()
    assert touched[0] == 200
    again = client.post(f"/uploads/{preview['id']}/apply", headers=auth("camden"))
    assert again.status_code == 409 and "only a previewed dry run" in again.json()["detail"]


def test_the_same_file_again_changes_nothing(client, auth, conn, samples):
    path = samples.write("geojson", crs=4326, frame=renamed(samples, "SAME-"))
    first = upload(client, auth, path, kind="street_furniture")
    assert first["state"] == "applied" and first["counts"]["new"] == 200
    versions = conn.execute(
        "SELECT sum(version), count(*) FROM assets WHERE source_id LIKE 'SAME-%'"
    ).fetchone()
    second = upload(client, auth, path, kind="street_furniture")
    assert second["state"] == "applied"
    assert second["counts"] == {**second["counts"], "new": 0, "changed": 0, "unchanged": 200, "retired": 0}
    assert (
        conn.execute("SELECT sum(version), count(*) FROM assets WHERE source_id LIKE 'SAME-%'").fetchone()
        == versions
    )


def test_replace_mode_retires_what_the_file_no_longer_holds_and_keeps_history(client, auth, conn, samples):
    full = samples.write("fgb", frame=renamed(samples, "REP-"), name="full")
    assert upload(client, auth, full, kind="street_furniture", mode="replace")["state"] == "applied"
    changed = renamed(samples, "REP-", rows=list(range(190)))
    changed.loc[0, "HEIGHT"] = 12.5
    part = samples.write("fgb", frame=changed, name="part")
    record = upload(client, auth, part, kind="street_furniture", mode="replace", dry_run=True)
    assert record["counts"]["retired"] == 10 and record["counts"]["changed"] == 1
    assert record["changed_fields"] == {"height_m": 1}
    applied = client.post(f"/uploads/{record['id']}/apply", headers=auth("camden"))
    assert wait(client, auth, applied.json()["id"])["state"] == "applied"
    assert camden_assets(conn, "REP-") == 190
    retired_id = conn.execute(
        "SELECT id FROM assets WHERE source_id = %s", ["REP-" + samples.stops["UNITNO"][199]]
    ).fetchone()[0]
    history = client.get(f"/assets/{retired_id}/history").json()
    assert history[0]["retired_at"] is not None and history[1]["retired_at"] is None
    # Replace mode retires only the borough's assets of that kind.
    retired = conn.execute(
        "SELECT DISTINCT borough_code, kind FROM assets WHERE retired_at IS NOT NULL"
    ).fetchall()
    assert retired == [(CAMDEN, "street_furniture")]


def touched(conn, upload_id):
    """What ``upload_assets`` says an upload did: ``{action: {asset_id, ...}}``; one row an asset."""
    rows = conn.execute(
        "SELECT asset_id, action FROM upload_assets WHERE upload_id = %s", [upload_id]
    ).fetchall()
    assert len({asset_id for asset_id, _ in rows}) == len(rows)
    found = {}
    for asset_id, action in rows:
        found.setdefault(action, set()).add(asset_id)
    return found


def ids(conn, source_ids):
    rows = conn.execute(
        "SELECT source_id, id FROM assets WHERE borough_code = %s AND source_id = ANY(%s)",
        [CAMDEN, list(source_ids)],
    ).fetchall()
    assert len(rows) == len(source_ids)
    return dict(rows)


def test_upload_assets_says_what_each_upload_did_and_not_what_api_edits_did(client, auth, conn, samples):
    full = renamed(samples, "PROV-")
    first = upload(client, auth, samples.write("gpkg", frame=full, name="prov1"), kind="street_furniture")
    assert first["state"] == "applied" and first["counts"]["new"] == 200
    sid = list(full["UNITNO"])
    ours = ids(conn, sid)
    assert touched(conn, first["id"]) == {"new": set(ours.values())}

    # An API edit between the uploads: a version of its own, but part of no upload.
    edited = client.patch(f"/assets/{ours[sid[0]]}", json={"owner": "edited by hand"}, headers=auth("camden"))
    assert edited.status_code == 200 and edited.json()["version"] == 2

    # Replace mode: rows 0-189 stay (row 0 loses the hand edit, row 1 changes), three are new,
    # rows 190-199 and every other live Camden street furniture asset are retired.
    kept = renamed(samples, "PROV-", rows=list(range(190)))
    kept.loc[1, "HEIGHT"] = 12.5
    added = renamed(samples, "PROVNEW-", rows=[0, 1, 2])
    others = {
        r[0]
        for r in conn.execute(
            """SELECT id FROM assets WHERE borough_code = %s AND kind = 'street_furniture'
               AND retired_at IS NULL AND NOT source_id LIKE 'PROV-%%'""",
            [CAMDEN],
        ).fetchall()
    }
    part = samples.write(
        "gpkg", frame=gpd.GeoDataFrame(pd.concat([kept, added], ignore_index=True)), name="prov2"
    )
    second = upload(client, auth, part, kind="street_furniture", mode="replace")
    assert second["state"] == "applied"
    new_ids = set(ids(conn, added["UNITNO"]).values())
    expected = {
        "new": new_ids,
        "changed": {ours[sid[0]], ours[sid[1]]},
        "retired": {ours[s] for s in sid[190:]} | others,
    }
    assert touched(conn, second["id"]) == expected
    counts = second["counts"]
    assert (counts["new"], counts["changed"], counts["retired"]) == (3, 2, 10 + len(others))

    # Edits after the upload (of a changed and of a retired asset) change neither upload's record.
    for asset_id in (ours[sid[1]], ours[sid[195]]):
        response = client.patch(f"/assets/{asset_id}", json={"owner": "later"}, headers=auth("camden"))
        assert response.status_code == 200
    assert touched(conn, first["id"]) == {"new": set(ours.values())}
    assert touched(conn, second["id"]) == expected
    # The hand edit kept the first upload's load_id, yet it is not the version that upload wrote.
    history = {v["version"]: v for v in client.get(f"/assets/{ours[sid[0]]}/history").json()}
    assert history[1]["load_id"] == history[2]["load_id"] == first["load_id"]
    assert history[2]["owner"] == "edited by hand" and history[3]["load_id"] == second["load_id"]


def test_row_errors_reject_the_whole_upload_unless_skip_invalid(client, auth, conn, samples):
    frame = renamed(samples, "ERR-")
    frame.loc[3, "HEIGHT"] = -4
    frame.loc[5, "UNITNO"] = frame.loc[6, "UNITNO"]
    path = samples.write("gpkg", frame=frame)
    rejected = upload(client, auth, path, kind="street_furniture")
    assert rejected["state"] == "rejected" and "nothing was applied" in rejected["message"]
    assert rejected["counts"]["errors"] == 2 and camden_assets(conn, "ERR-") == 0
    errors = list(
        csv.DictReader(
            io.StringIO(client.get(f"/uploads/{rejected['id']}/errors.csv", headers=auth("camden")).text)
        )
    )
    assert [e["row"] for e in errors] == ["4", "7"]
    assert (
        errors[0]["column"] == "HEIGHT"
        and errors[0]["value"] == "-4.0"
        and errors[0]["source_id"] == frame.loc[3, "UNITNO"]
    )
    assert "duplicate" in errors[1]["message"]
    geo = client.get(f"/uploads/{rejected['id']}/errors.geojson", headers=auth("camden")).json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 2
    lenient = upload(client, auth, path, kind="street_furniture", skip_invalid=True)
    assert lenient["state"] == "applied" and lenient["counts"]["new"] == 198
    assert camden_assets(conn, "ERR-") == 198


def test_borough_keys_upload_only_to_their_own_borough(client, auth, samples):
    path = samples.write("gpkg")
    assert send(client, auth, path, who="hackney").status_code == 403
    assert send(client, auth, path, who="operator").status_code == 403
    with open(path, "rb") as f:
        assert (
            client.post("/uploads", files={"file": (path.name, f)}, data={"borough": CAMDEN}).status_code
            == 401
        )
    listed = client.get("/uploads", headers=auth("hackney")).json()
    assert all(u["borough_code"] == "E09000012" for u in listed)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.gpkg", b"", "empty"),
        ("notes.docx", b"PK\x03\x04 not really", "docx"),
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [', ""),
        ("bomb.zip", None, ""),
    ],
)
def test_hostile_and_broken_files_are_a_clear_4xx_and_change_nothing(
    client, auth, conn, tmp_path, name, content, message
):
    path = tmp_path / name
    if content is None:
        import zipfile

        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("../../etc/evil.shp", b"\0" * 1000)
    else:
        path.write_bytes(content)
    before = conn.execute("SELECT count(*), sum(version) FROM assets").fetchone()
    response = send(client, auth, path, kind="street_furniture")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert name in response.json()["detail"] and message in response.json()["detail"]
    assert conn.execute("SELECT count(*), sum(version) FROM assets").fetchone() == before


def test_bad_form_values(client, auth, samples):
    path = samples.write("gpkg")
    assert send(client, auth, path, kind="lamps").status_code == 422
    assert send(client, auth, path, mode="merge").status_code == 422
    assert "E09000077" in send(client, auth, path, borough="E09000077").json()["detail"]
