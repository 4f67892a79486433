"""Wayleaves over HTTP: create, transitions, history, concurrency, KPIs, personal data, boroughs, bulk CSV."""

import asyncio
import csv
import datetime as dt
import io
import json
import math
import threading

import mapbox_vector_tile
import psycopg
import pytest

from geo import access
from geo import wayleaves as wl

CAMDEN, HACKNEY = "E09000007", "E09000012"
SECRETS = ("Jane Landlord", "jane@example.org", "020 7946 0000", "secret note about the caretaker")


@pytest.fixture(scope="module")
def op_keys(db_url):
    """Operator keys bound to operator names."""

    async def make():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            out = {}
            for name in ("Fibre A", "KPI Networks"):
                new = await access.create_key(c, "operator", label=f"{name} key", actor=access.SYSTEM)
                await access.bind_operator(c, new.id, name, actor=access.SYSTEM)
                out[name] = {"Authorization": f"Bearer {new.key}"}
            return out

    return asyncio.run(make())


@pytest.fixture(scope="module")
def assets(db_url):
    with psycopg.connect(db_url) as c:
        rows = c.execute(
            """SELECT borough_code, id, ST_X(ST_Transform(geom, 4326)), ST_Y(ST_Transform(geom, 4326))
               FROM assets WHERE kind = 'street_furniture' AND borough_code IN (%s, %s) AND retired_at IS NULL
               ORDER BY id""",
            [CAMDEN, HACKNEY],
        ).fetchall()
    camden = [r for r in rows if r[0] == CAMDEN]
    hackney = [r for r in rows if r[0] == HACKNEY]
    return {"camden": camden, "hackney": hackney}


def create(client, headers, asset_ids, operator="Fibre A", **extra):
    body = {"operator": operator, "asset_ids": asset_ids, "site_name": "Test block", **extra}
    response = client.post("/wayleaves", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def move(client, headers, row, to, **extra):
    return client.post(
        f"/wayleaves/{row['id']}/transitions",
        json={"to": to, "expected_version": row["version"], **extra},
        headers=headers,
    )


def test_create_transition_history(client, auth, assets):
    row = create(client, auth("camden"), [assets["camden"][0][1]], reference="CAM-WL-1", note="first")
    assert row["status"] == "identified" and row["version"] == 1 and row["borough_code"] == CAMDEN
    assert row["allowed_next"] == ["requested", "on_hold", "withdrawn"]
    moved = move(client, auth("camden"), row, "requested", note="emailed the landlord")
    assert moved.status_code == 200 and moved.json()["status"] == "requested" and moved.json()["version"] == 2
    assert moved.json()["requested_on"] == dt.datetime.now(wl.LONDON).date().isoformat()
    # If-Match works as the version too.
    held = client.post(
        f"/wayleaves/{row['id']}/transitions",
        json={"to": "on_hold"},
        headers={**auth("camden"), "If-Match": '"2"'},
    )
    assert held.status_code == 200 and held.json()["allowed_next"] == ["requested", "withdrawn"]
    events = client.get(f"/wayleaves/{row['id']}/history", headers=auth("camden")).json()
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "identified"),
        ("identified", "requested"),
        ("requested", "on_hold"),
    ]
    assert events[1]["note"] == "emailed the landlord" and "test camden" in events[1]["by"]
    assert events[2]["resume_status"] == "requested"
    got = client.get(f"/wayleaves/{row['id']}", headers=auth("camden"))
    assert got.headers["etag"] == '"3"' and got.json()["status"] == "on_hold"


def test_invalid_transition_answers_409_with_the_allowed_statuses(client, auth, assets):
    row = create(client, auth("camden"), [assets["camden"][1][1]])
    response = move(client, auth("camden"), row, "live")
    assert response.status_code == 409
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["allowed"] == ["requested", "on_hold", "withdrawn"] and body["current_status"] == "identified"
    unknown = move(client, auth("camden"), row, "done")
    assert unknown.status_code == 422 and "'done'" in unknown.json()["detail"]
    no_version = client.post(
        f"/wayleaves/{row['id']}/transitions", json={"to": "requested"}, headers=auth("camden")
    )
    assert no_version.status_code == 428
    assert client.get("/wayleaves/999999", headers=auth("admin")).status_code == 404
    assert client.get("/wayleaves").status_code == 401


def test_two_concurrent_transitions_on_one_version_one_is_409(client, auth, assets):
    row = create(client, auth("camden"), [assets["camden"][2][1]])
    barrier = threading.Barrier(2)
    results = {}

    def attempt(to):
        barrier.wait()
        results[to] = move(client, auth("camden"), row, to)

    threads = [threading.Thread(target=attempt, args=(to,)) for to in ("requested", "withdrawn")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409]
    loser = next(r for r in results.values() if r.status_code == 409)
    assert "version" in loser.json()["detail"]
    events = client.get(f"/wayleaves/{row['id']}/history", headers=auth("admin")).json()
    assert len(events) == 2


def test_borough_isolation(client, auth, assets):
    row = create(client, auth("camden"), [assets["camden"][3][1]], contact_name="Jane Landlord")
    assert move(client, auth("hackney"), row, "requested").status_code == 403
    other = client.post(
        "/wayleaves",
        json={"operator": "Fibre A", "asset_ids": [assets["camden"][4][1]]},
        headers=auth("hackney"),
    )
    assert other.status_code == 403
    assert (
        client.post(
            "/wayleaves",
            json={"operator": "Fibre A", "asset_ids": [assets["camden"][4][1]]},
            headers=auth("operator"),
        ).status_code
        == 403
    )
    seen_by_hackney = client.get(f"/wayleaves/{row['id']}", headers=auth("hackney")).json()
    assert "contact_name" not in seen_by_hackney and seen_by_hackney["status"] == "identified"
    assert (
        client.get(f"/wayleaves/{row['id']}", headers=auth("camden")).json()["contact_name"]
        == "Jane Landlord"
    )
    assert (
        client.get(f"/wayleaves/{row['id']}", headers=auth("admin")).json()["contact_name"] == "Jane Landlord"
    )
    hackney_row = create(client, auth("hackney"), [assets["hackney"][0][1]])
    listed = client.get("/wayleaves", params={"borough": HACKNEY}, headers=auth("hackney")).json()
    assert hackney_row["id"] in [r["id"] for r in listed] and {r["borough_code"] for r in listed} == {HACKNEY}


def tile_of(lon, lat, z=14):
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def test_personal_data_absent_from_every_output_for_an_operator_key(client, auth, op_keys, assets):
    _, asset_id, lon, lat = assets["camden"][5]
    row = create(
        client, auth("camden"), [asset_id], contact_name=SECRETS[0], contact_email=SECRETS[1],
        contact_phone=SECRETS[2], notes=SECRETS[3], note=SECRETS[3],
    )  # fmt: skip
    assert move(client, auth("camden"), row, "requested", note=SECRETS[3]).status_code == 200
    admin_view = client.get(f"/wayleaves/{row['id']}", headers=auth("admin")).text
    assert all(s in admin_view for s in SECRETS)  # the data are there; the operator must not see them

    op = op_keys["Fibre A"]
    z, x, y = tile_of(lon, lat)
    outputs = {
        "list": client.get("/wayleaves", headers=op),
        "list csv": client.get("/wayleaves", params={"format": "csv"}, headers=op),
        "get": client.get(f"/wayleaves/{row['id']}", headers=op),
        "history": client.get(f"/wayleaves/{row['id']}/history", headers=op),
        "kpis": client.get("/wayleaves/kpis", headers=op),
        "kpis csv": client.get("/wayleaves/kpis", headers={**op, "Accept": "text/csv"}),
        "items": client.get("/collections/wayleaves/items", params={"limit": 1000}, headers=op),
        "item": client.get(f"/collections/wayleaves/items/{row['id']}", headers=op),
        "tile": client.get(f"/tiles/wayleaves/{z}/{x}/{y}.mvt", headers=op),
    }
    for name, response in outputs.items():
        assert response.status_code == 200, (name, response.text)
        text = response.content.decode("latin-1")
        for secret in SECRETS:
            assert secret not in text, (name, secret)
        for column in wl.RESTRICTED:
            assert column not in text, (name, column)
    assert row["id"] in [r["id"] for r in outputs["list"].json()]
    assert "Fibre A" in outputs["list csv"].text and outputs["list csv"].headers["content-type"].startswith(
        "text/csv"
    )
    assert [e["to_status"] for e in outputs["history"].json()] == ["identified", "requested"]
    features = {f["id"]: f for f in outputs["items"].json()["features"]}
    assert features[row["id"]]["properties"]["status"] == "requested"
    # The public layer names no operator: whose wayleave it is shows only through /wayleaves.
    assert "operator" not in features[row["id"]]["properties"]
    layers = mapbox_vector_tile.decode(outputs["tile"].content)
    tile_features = {f["id"]: f["properties"] for f in layers["wayleaves"]["features"]}
    assert tile_features[row["id"]]["status"] == "requested"
    assert not set().union(*(p.keys() for p in tile_features.values())) & {*wl.RESTRICTED, "operator"}
    # Another operator's wayleave stays out of reach.
    other = create(client, auth("camden"), [asset_id], operator="Someone Else")
    assert client.get(f"/wayleaves/{other['id']}", headers=op).status_code == 403
    assert other["id"] not in [r["id"] for r in outputs["list"].json()]
    # An unbound operator key sees no wayleave.
    assert client.get("/wayleaves", headers=auth("operator")).json() == []


def test_wayleaves_collection_filters_and_tiles_follow_changes(client, auth, assets):
    _, asset_id, lon, lat = assets["camden"][6]
    row = create(client, auth("camden"), [asset_id])
    body = client.get("/collections/wayleaves/items", params={"borough": CAMDEN, "limit": 1000}).json()
    assert row["id"] in [f["id"] for f in body["features"]]
    assert all(f["properties"]["borough_code"] == CAMDEN for f in body["features"])
    z, x, y = tile_of(lon, lat)

    def tile_status():
        response = client.get(f"/tiles/wayleaves/{z}/{x}/{y}.mvt")
        assert response.status_code == 200
        # Days in status move with the clock, not only with the data: no ETag, no stale copy.
        assert "etag" not in response.headers
        layer = mapbox_vector_tile.decode(response.content)["wayleaves"]
        return {f["id"]: f["properties"]["status"] for f in layer["features"]}[row["id"]]

    assert tile_status() == "identified"
    assert move(client, auth("camden"), row, "requested").status_code == 200
    assert tile_status() == "requested"


def test_wayleaves_collection_filters_by_wayleave_status(client):
    assert client.get("/collections/wayleaves/items", params={"status": "requested"}).status_code == 200
    wrong = client.get("/collections/wayleaves/items", params={"status": "in_service"})
    assert wrong.status_code == 400 and "'in_service' is not one of" in wrong.json()["detail"]


def test_list_filters(client, auth, assets):
    _, asset_id, lon, lat = assets["camden"][7]
    row = create(client, auth("camden"), [asset_id], operator="Filter Fibre")
    moved = move(client, auth("camden"), row, "requested").json()
    ids = lambda **p: [r["id"] for r in client.get("/wayleaves", params=p, headers=auth("admin")).json()]  # noqa: E731
    assert ids(operator="Filter Fibre") == [row["id"]]
    assert ids(operator="Filter Fibre", status="requested") == [row["id"]]
    assert ids(operator="Filter Fibre", status="identified,signed") == []
    assert ids(operator="Filter Fibre", overdue="true") == [] and ids(
        operator="Filter Fibre", overdue="false"
    ) == [row["id"]]
    d = 0.001
    assert ids(operator="Filter Fibre", bbox=f"{lon - d},{lat - d},{lon + d},{lat + d}") == [row["id"]]
    assert ids(operator="Filter Fibre", bbox=f"{lon + d},{lat + d},{lon + 2 * d},{lat + 2 * d}") == []
    assert ids(operator="Filter Fibre", bbox="500000,150000,600000,200000", **{"bbox-crs": 27700}) == [
        row["id"]
    ]
    assert client.get("/wayleaves", params={"status": "nope"}, headers=auth("admin")).status_code == 400
    assert moved["version"] == 2


def test_kpis_on_a_hand_built_fixture(client, auth, op_keys, assets):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ago = lambda days, minutes=0: (now - dt.timedelta(days=days) + dt.timedelta(minutes=minutes)).isoformat()  # noqa: E731
    admin = auth("admin")
    asset = [assets["camden"][8][1]]

    def signed(requested_days, signed_days):
        row = create(
            client, admin, asset, operator="KPI Networks", status="requested", at=ago(requested_days)
        )
        for i, to in enumerate(("survey_scheduled", "surveyed", "terms_issued", "approved"), start=1):
            row = move(client, admin, row, to, at=ago(requested_days, i)).json()
        return move(client, admin, row, "signed", at=ago(signed_days)).json()

    w1 = signed(60, 40)  # 20 days to sign
    w2 = signed(60, 20)  # 40 days
    w3 = signed(45, 35)  # 10 days
    w4 = create(client, admin, asset, operator="KPI Networks", status="requested", at=ago(50))  # unanswered
    create(client, admin, asset, operator="KPI Networks", at=ago(5))  # identified, on time
    w6 = create(client, admin, asset, operator="KPI Networks", status="requested", at=ago(41))
    w6 = move(client, admin, w6, "on_hold", at=ago(40)).json()
    assert {w["status"] for w in (w1, w2, w3)} == {"signed"}

    # The operator key sees exactly its own six wayleaves: the overall figures are the fixture's.
    body = client.get("/wayleaves/kpis", headers=op_keys["KPI Networks"]).json()
    overall = body["overall"]
    assert overall["total"] == 6
    assert {s: n for s, n in overall["by_status"].items() if n} == {
        "signed": 3,
        "requested": 1,
        "identified": 1,
        "on_hold": 1,
    }
    assert overall["signed"] == 3
    assert overall["median_days_to_sign"] == 20.0  # of 10, 20, 40
    assert overall["p90_days_to_sign"] == 36.0  # 20 + 0.8 * (40 - 20)
    # known at 30 days: the three signed, w4 (50 days) and w6 (41 days); fast: 20 and 10 days
    assert overall["signed_within_share"] == 0.4
    assert overall["overdue"] == 2
    assert [s["id"] for s in body["stalled"]] == [w4["id"], w6["id"]]
    assert [s["days_in_status"] for s in body["stalled"]] == [50, 40]
    assert [g["operator"] for g in body["by_operator"]] == ["KPI Networks"]
    assert body["by_borough"][0]["borough_code"] == CAMDEN and body["by_borough"][0]["total"] == 6

    text = client.get("/wayleaves/kpis", params={"format": "csv"}, headers=op_keys["KPI Networks"]).text
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(r["scope"], r["key"]) for r in lines] == [
        ("all", ""),
        ("borough", CAMDEN),
        ("operator", "KPI Networks"),
    ]
    assert (
        lines[0]["signed"] == "3"
        and lines[0]["median_days_to_sign"] == "20.0"
        and lines[0]["p90_days_to_sign"] == "36.0"
    )
    assert lines[0]["signed_within_share"] == "0.4" and lines[0]["requested"] == "1"
    # Backdating is for admins only.
    late = client.post(
        "/wayleaves", json={"operator": "X", "asset_ids": asset, "at": ago(3)}, headers=auth("camden")
    )
    assert late.status_code == 403


def bulk(client, headers, text, **params):
    return client.post(
        "/wayleaves/bulk",
        params=params,
        files={"file": ("status.csv", text.encode(), "text/csv")},
        headers=headers,
    )


def test_bulk_csv_with_one_bad_row_applies_nothing(client, auth, assets):
    camden = auth("camden")
    a = create(client, camden, [assets["camden"][9][1]], reference="BULK-A")
    b = create(client, camden, [assets["camden"][10][1]], reference="BULK-B")
    h = create(client, auth("hackney"), [assets["hackney"][1][1]])
    text = (
        "wayleave_id,reference,to,note\n"
        f"{a['id']},,requested,sent\n"
        ",BULK-B,requested,\n"
        f"{b['id']},,live,\n"  # after requested, live is not allowed
        f"{h['id']},,requested,\n"  # another borough's
        "999999,,requested,\n"
    )
    response = bulk(client, camden, text)
    assert response.status_code == 422
    report = response.json()
    assert report["rows"] == 5 and report["applied"] == 0
    errors = {e["row"]: e for e in report["errors"]}
    assert set(errors) == {3, 4, 5}
    assert (
        errors[3]["column"] == "to"
        and errors[3]["value"] == "live"
        and errors[3]["source_id"] == str(b["id"])
    )
    assert "allowed next: survey_scheduled" in errors[3]["message"]
    assert errors[4]["column"] == "wayleave_id" and HACKNEY in errors[4]["message"]
    assert errors[5]["value"] == "999999"
    for row in (a, b):
        assert client.get(f"/wayleaves/{row['id']}", headers=camden).json()["status"] == "identified"
    as_csv = bulk(client, camden, text, format="csv")
    assert as_csv.status_code == 422
    assert as_csv.text.splitlines()[0] == "row,source_id,column,value,message"
    assert as_csv.text.splitlines()[1].startswith(f"3,{b['id']},to,live,")

    good = (
        "wayleave_id,reference,to,version\n"
        f"{a['id']},,requested,1\n"
        ",BULK-B,requested,1\n"
        f"{a['id']},,survey_scheduled,1\n"
    )
    dry = bulk(client, camden, good, dry_run="true")
    assert dry.status_code == 200 and dry.json()["errors"] == [] and dry.json()["applied"] == 0
    assert client.get(f"/wayleaves/{a['id']}", headers=camden).json()["status"] == "identified"
    applied = bulk(client, camden, good)
    assert applied.status_code == 200 and applied.json()["applied"] == 3
    assert client.get(f"/wayleaves/{a['id']}", headers=camden).json()["status"] == "survey_scheduled"
    assert client.get(f"/wayleaves/{b['id']}", headers=camden).json()["status"] == "requested"
    stale = bulk(client, camden, f"wayleave_id,to,version\n{b['id']},survey_scheduled,1\n")
    assert stale.status_code == 422 and stale.json()["errors"][0]["column"] == "version"
    bad_file = bulk(client, camden, "id;status\n1;live\n")
    assert bad_file.status_code == 422 and "unknown columns" in bad_file.json()["detail"]
    assert bulk(client, auth("operator"), good).status_code == 403


@pytest.mark.parametrize("number", ["\u00b2", "\u0661", "1_0", "99999999999999999999"])
def test_bulk_ids_and_versions_that_are_not_plain_integers_are_row_errors(client, auth, assets, number):
    """``str.isdigit`` passes ``²``, ``int`` takes ``١`` and ``1_0``, and 20 digits overflow bigint."""
    camden = auth("camden")
    a = create(client, camden, [assets["camden"][11][1]])
    by_id = bulk(client, camden, f"wayleave_id,to\n{number},requested\n")
    assert by_id.status_code == 422, by_id.text
    assert by_id.json()["errors"][0] | {"row": 1} == {
        "row": 1, "source_id": number, "column": "wayleave_id", "value": number, "message": "no wayleave has this id",
    }  # fmt: skip
    by_version = bulk(client, camden, f"wayleave_id,to,version\n{a['id']},requested,{number}\n")
    assert by_version.status_code == 422, by_version.text
    error = by_version.json()["errors"][0]
    assert error["column"] == "version" and error["value"] == number
    assert client.get(f"/wayleaves/{a['id']}", headers=camden).json()["status"] == "identified"


def test_wayleave_settings_names_are_documented():
    from geo.core.settings import DATA_DIR, WayleaveSettings

    text = (DATA_DIR / "wayleaves.md").read_text()
    for name in WayleaveSettings.model_fields:
        if name not in ("signed_within_days",):
            assert name in text, name
    assert json.dumps(sorted(WayleaveSettings.model_fields))


# Editing details ---------------------------------------------------------------------------------------
def edit(client, headers, row, version=None, **changes):
    """PATCH with If-Match: the version given, else the row's."""
    v = row["version"] if version is None else version
    return client.patch(f"/wayleaves/{row['id']}", json=changes, headers={**headers, "If-Match": f'"{v}"'})


def test_edit_details_keeps_every_change_and_leaves_the_status_alone(client, auth, assets):
    camden = auth("camden")
    row = create(
        client, camden, [assets["camden"][11][1]], reference="EDIT-1", contact_email="old@example.org",
        template_version="CoL 2019",
    )  # fmt: skip
    response = edit(
        client, camden, row, notes="gate code with the caretaker", expires_on="2036-03-31",
        contact_email=" new@example.org ", template="bespoke",
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == '"2"' and body["version"] == 2
    assert body["notes"] == "gate code with the caretaker" and body["expires_on"] == "2036-03-31"
    assert body["contact_email"] == "new@example.org" and body["template"] == "bespoke"
    assert body["status"] == "identified"
    assert dt.datetime.fromisoformat(body["status_since"]) == dt.datetime.fromisoformat(row["status_since"])
    assert body["reference"] == "EDIT-1" and body["template_version"] == "CoL 2019"  # not sent: unchanged

    # Clear one field with null; If-Match or expected_version in the body.
    cleared = client.patch(
        f"/wayleaves/{row['id']}", json={"notes": None, "expected_version": 2}, headers=camden
    )
    assert cleared.status_code == 200 and cleared.json()["version"] == 3 and cleared.json()["notes"] is None
    # The same values again change nothing: no new version, no new entry.
    same = edit(client, camden, cleared.json(), expires_on="2036-03-31", template="bespoke")
    assert same.status_code == 200 and same.json()["version"] == 3

    edits = client.get(f"/wayleaves/{row['id']}/changes", headers=camden).json()
    assert [e["version"] for e in edits] == [2, 3]
    assert "test camden" in edits[0]["by"] and edits[0]["at"] <= edits[1]["at"]
    assert edits[0]["fields"] == [
        {"field": "template", "old": "standardised", "new": "bespoke"},
        {"field": "expires_on", "old": None, "new": "2036-03-31"},
        {"field": "notes", "old": None, "new": "gate code with the caretaker"},
        {"field": "contact_email", "old": "old@example.org", "new": "new@example.org"},
    ]
    assert edits[1]["fields"] == [{"field": "notes", "old": "gate code with the caretaker", "new": None}]
    # The status history is untouched: still only status events, and their replay is the status.
    events = client.get(f"/wayleaves/{row['id']}/history", headers=camden).json()
    assert [e["to_status"] for e in events] == ["identified"]
    # A transition now needs the edited version: edits and status changes share one version.
    assert move(client, camden, row, "requested").status_code == 409
    moved = move(client, camden, cleared.json(), "requested")
    assert moved.status_code == 200 and moved.json()["version"] == 4
    assert moved.json()["expires_on"] == "2036-03-31"
    # The public layer follows the edit.
    item = client.get(f"/collections/wayleaves/items/{row['id']}").json()
    assert item["properties"]["template"] == "bespoke"


def test_edit_needs_the_version_and_a_stale_one_writes_nothing(client, auth, assets):
    camden = auth("camden")
    row = create(client, camden, [assets["camden"][12][1]])
    no_version = client.patch(f"/wayleaves/{row['id']}", json={"notes": "x"}, headers=camden)
    assert no_version.status_code == 428
    assert no_version.headers["content-type"] == "application/problem+json"
    assert edit(client, camden, row, notes="first").status_code == 200
    stale = edit(client, camden, row, notes="second")  # still says version 1
    assert stale.status_code == 409 and stale.headers["content-type"] == "application/problem+json"
    assert "at version 2, not 1" in stale.json()["detail"]
    got = client.get(f"/wayleaves/{row['id']}", headers=camden).json()
    assert got["notes"] == "first" and got["version"] == 2
    assert len(client.get(f"/wayleaves/{row['id']}/changes", headers=camden).json()) == 1
    # A transition on a version the edit replaced is refused the same way.
    assert move(client, camden, row, "requested").status_code == 409


def test_two_concurrent_edits_on_one_version_one_is_409(client, auth, assets):
    camden = auth("camden")
    row = create(client, camden, [assets["camden"][13][1]])
    barrier = threading.Barrier(2)
    results = {}

    def attempt(note):
        barrier.wait()
        results[note] = edit(client, camden, row, notes=note)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in ("from Anna", "from Ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results.values()) == [200, 409]
    winner = next(n for n, r in results.items() if r.status_code == 200)
    edits = client.get(f"/wayleaves/{row['id']}/changes", headers=camden).json()
    assert [(e["version"], e["fields"][0]["new"]) for e in edits] == [(2, winner)]
    assert client.get(f"/wayleaves/{row['id']}", headers=camden).json()["notes"] == winner


def test_edit_validation_names_the_field_and_value_and_writes_nothing(client, auth, assets):
    camden = auth("camden")
    row = create(client, camden, [assets["camden"][14][1]], reference="EDIT-VAL-1")
    create(client, camden, [assets["camden"][14][1]], reference="EDIT-VAL-2")

    def refused(expected, **changes):
        response = edit(client, camden, row, **changes)
        assert response.status_code == expected, (changes, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        return response.json()

    bad_email = refused(422, contact_email="jane at example.org")
    assert bad_email["errors"] == [
        {
            "where": "body.contact_email",
            "field": "contact_email",
            "value": "jane at example.org",
            "message": "'jane at example.org' is not an email address",
        }
    ]
    assert bad_email["detail"].startswith("contact_email: 'jane at example.org'")
    both = refused(422, contact_phone="call me", template="custom", notes="fine")
    assert {e["field"] for e in both["errors"]} == {"contact_phone", "template"}
    assert "'call me' is not a phone number" in both["detail"] and "'custom' is not one of" in both["detail"]
    status = refused(422, status="live")
    assert status["errors"][0]["field"] == "status" and "/transitions" in status["detail"]
    signed = refused(422, signed_on="2026-01-01")
    assert "signed_on: not editable" in signed["detail"] and "reaches signed" in signed["detail"]
    assert "operator: not editable" in refused(422, operator="Someone Else")["detail"]
    unknown = refused(422, colour="red")
    assert unknown["errors"][0] == {
        "where": "body.colour",
        "field": "colour",
        "value": "red",
        "message": unknown["errors"][0]["message"],
    }
    assert "unknown field" in unknown["detail"]
    assert "nothing to change" in refused(422)["detail"]
    date = refused(422, expires_on="2036-02-30")
    assert date["errors"][0]["where"] == "body.expires_on" and date["errors"][0]["value"] == "2036-02-30"
    assert refused(422, notes=5)["errors"][0]["where"] == "body.notes"
    assert "one line" in refused(422, reference="A\nB")["detail"]
    assert "at most 200" in refused(422, contact_name="x" * 201)["detail"]
    duplicate = refused(409, reference="EDIT-VAL-2")
    assert duplicate["field"] == "reference" and duplicate["value"] == "EDIT-VAL-2"
    assert (
        "already used in borough E09000007" in duplicate["detail"] and duplicate["wayleave_id"] != row["id"]
    )
    # Nothing was written by any of them.
    got = client.get(f"/wayleaves/{row['id']}", headers=camden).json()
    assert got["version"] == 1 and got["reference"] == "EDIT-VAL-1" and got["notes"] is None
    assert client.get(f"/wayleaves/{row['id']}/changes", headers=camden).json() == []
    # Creating with a taken reference is the same conflict; another borough may use it.
    taken = client.post(
        "/wayleaves",
        json={"operator": "Fibre A", "asset_ids": [assets["camden"][14][1]], "reference": "EDIT-VAL-2"},
        headers=camden,
    )
    assert taken.status_code == 409 and taken.json()["field"] == "reference"
    hackney = create(client, auth("hackney"), [assets["hackney"][2][1]])
    assert edit(client, auth("hackney"), hackney, reference="EDIT-VAL-2").status_code == 200
    bad_create = client.post(
        "/wayleaves",
        json={"operator": "Fibre A", "asset_ids": [assets["camden"][14][1]], "contact_email": "nope"},
        headers=camden,
    )
    assert bad_create.status_code == 422 and bad_create.json()["errors"][0]["field"] == "contact_email"


def test_expiry_cannot_be_before_the_signature(client, auth, assets):
    admin = auth("admin")
    row = create(client, admin, [assets["camden"][15][1]], status="requested")
    for to in ("survey_scheduled", "surveyed", "terms_issued", "approved", "signed"):
        row = move(client, admin, row, to).json()
    signed_on = dt.date.fromisoformat(row["signed_on"])
    early = edit(client, admin, row, expires_on=(signed_on - dt.timedelta(days=1)).isoformat())
    assert early.status_code == 422
    assert early.json()["errors"][0]["field"] == "expires_on"
    assert f"is before the wayleave was signed ({signed_on})" in early.json()["detail"]
    on_the_day = edit(client, admin, row, expires_on=signed_on.isoformat())
    assert on_the_day.status_code == 200 and on_the_day.json()["expires_on"] == signed_on.isoformat()
    assert on_the_day.json()["signed_on"] == row["signed_on"]  # key dates do not move with edits


def test_who_may_edit_what(client, auth, op_keys, assets):
    row = create(client, auth("camden"), [assets["camden"][16][1]], operator="Fibre A")
    other = create(client, auth("camden"), [assets["camden"][16][1]], operator="Someone Else")
    op = op_keys["Fibre A"]
    hackney = edit(client, auth("hackney"), row, notes="not ours")
    assert hackney.status_code == 403 and "E09000012" in hackney.json()["detail"]
    assert edit(client, {}, row, notes="anonymous").status_code == 401
    assert (
        client.patch(
            "/wayleaves/999999", json={"notes": "x"}, headers={**auth("admin"), "If-Match": '"1"'}
        ).status_code
        == 404
    )
    # Operators: their own reference on their own operator's wayleaves, nothing else.
    mine = edit(client, op, row, operator_reference="FA-2026-0042")
    assert mine.status_code == 200 and mine.json()["operator_reference"] == "FA-2026-0042"
    assert not set(mine.json()) & set(wl.RESTRICTED)
    row = mine.json()
    for changes in (
        {"notes": "x"},
        {"contact_email": "a@b.org"},
        {"reference": "R"},
        {"expires_on": "2040-01-01"},
    ):
        response = edit(client, op, row, **changes)
        assert response.status_code == 403, changes
        assert "may change only operator_reference" in response.json()["detail"]
    assert edit(client, op, other, operator_reference="FA-1").status_code == 403
    assert edit(client, auth("operator"), row, operator_reference="FA-1").status_code == 403  # unbound key
    # Boroughs and admins edit every field of what they may write.
    assert edit(client, auth("camden"), row, reference="CAM-WHO-1", notes="ok").status_code == 200
    got = client.get(f"/wayleaves/{row['id']}", headers=auth("admin")).json()
    assert got["operator_reference"] == "FA-2026-0042" and got["reference"] == "CAM-WHO-1"
    assert edit(client, auth("admin"), got, contact_name="Sam Estates").status_code == 200
    edits = client.get(f"/wayleaves/{row['id']}/changes", headers=auth("admin")).json()
    assert [e["by"].split(" (")[1] for e in edits] == ["Fibre A key)", "test camden)", "test admin)"]


def test_changes_hide_restricted_fields_and_authors_from_other_keys(client, auth, op_keys, assets):
    camden = auth("camden")
    row = create(client, camden, [assets["camden"][17][1]], operator="Fibre A", contact_name=SECRETS[0])
    row = edit(
        client, camden, row, notes=SECRETS[3], contact_email=SECRETS[1], expires_on="2037-01-31"
    ).json()
    row = edit(
        client, camden, row, contact_phone=SECRETS[2], contact_name="Someone New"
    ).json()  # restricted only
    row = edit(client, op_keys["Fibre A"], row, operator_reference="FA-9").json()
    full = client.get(f"/wayleaves/{row['id']}/changes", headers=camden).json()
    assert [e["version"] for e in full] == [2, 3, 4]
    assert all(s in json.dumps(full) for s in SECRETS)
    for headers in (op_keys["Fibre A"], auth("hackney")):
        response = client.get(f"/wayleaves/{row['id']}/changes", headers=headers)
        assert response.status_code == 200
        for secret in (*SECRETS, "Someone New", "test camden"):
            assert secret not in response.text, secret
        for column in wl.RESTRICTED:
            assert column not in response.text, column
        seen = response.json()
        # The edit of restricted fields only is not shown at all; the others without their author.
        assert [e["version"] for e in seen] == [2, 4]
        assert seen[0]["fields"] == [{"field": "expires_on", "old": None, "new": "2037-01-31"}]
        assert seen[1]["fields"] == [{"field": "operator_reference", "old": None, "new": "FA-9"}]
        assert all("by" not in e for e in seen)
    other = create(client, camden, [assets["camden"][17][1]], operator="Someone Else")
    assert client.get(f"/wayleaves/{other['id']}/changes", headers=op_keys["Fibre A"]).status_code == 403
    assert client.get(f"/wayleaves/{row['id']}/changes").status_code == 401
    assert client.get("/wayleaves/999999/changes", headers=camden).status_code == 404


def test_me_says_who_the_key_is_and_never_the_key(client, keys, auth, op_keys):
    seen = {}
    for who in ("admin", "operator", "camden"):
        response = client.get("/me", headers=auth(who))
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        assert keys[who] not in response.text and "hash" not in response.text
        seen[who] = response.json()
    assert seen["admin"]["role"] == "admin" and seen["admin"]["borough_code"] is None
    assert seen["camden"] == {
        "key_id": seen["camden"]["key_id"], "label": "test camden", "role": "borough",
        "borough_code": CAMDEN, "operator": None,
    }  # fmt: skip
    assert seen["operator"]["role"] == "operator" and seen["operator"]["operator"] is None  # unbound
    bound = client.get("/me", headers=op_keys["Fibre A"]).json()
    assert bound["operator"] == "Fibre A" and bound["label"] == "Fibre A key"
    assert len({s["key_id"] for s in seen.values()}) == 3
    anonymous = client.get("/me")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    wrong = client.get("/me", headers={"Authorization": "Bearer cx_not-a-key"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]


def test_the_response_models_hold_every_field_geo_answers(client, auth, db_url, assets):
    """A field the models lacked would vanish from the answers silently: they hold exactly geo's fields."""
    from api.routes.me import Me
    from api.routes.wayleaves import Edit, Event, FieldChange, Kpis, KpiSummary, Stalled, Wayleave
    from geo.core.settings import WayleaveSettings

    admin = access.Principal(role="admin", label="models")
    settings = WayleaveSettings()
    ninety_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=90)).isoformat()
    row = create(
        client, auth("admin"), [assets["camden"][0][1]], notes="n", contact_name="Jane", note="why",
        status="requested", at=ninety_days_ago,
    )  # fmt: skip
    assert edit(client, auth("admin"), row, notes="m").status_code == 200

    async def answers():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            return (
                await wl.get_wayleave(c, row["id"], admin, settings),
                await wl.history(c, row["id"], admin),
                await wl.changes(c, row["id"], admin),
                await wl.wayleave_kpis(c, admin, settings),
                await access.describe_caller(c, admin),
            )

    wayleave, events, edits, kpis, me = asyncio.run(answers())
    assert set(wayleave) == set(Wayleave.model_fields)
    assert all(set(e) == set(Event.model_fields) for e in events)
    assert all(set(e) == set(Edit.model_fields) for e in edits)
    assert all(set(f) == set(FieldChange.model_fields) for e in edits for f in e["fields"])
    assert set(kpis) == set(Kpis.model_fields) and set(kpis["overall"]) == set(KpiSummary.model_fields)
    assert set(kpis["by_borough"][0]) == {"borough_code", *KpiSummary.model_fields}
    assert set(kpis["by_operator"][0]) == {"operator", *KpiSummary.model_fields}
    assert kpis["stalled"] and all(set(s) == set(Stalled.model_fields) for s in kpis["stalled"])
    assert set(me) == set(Me.model_fields)


def test_several_statuses_at_once_combined_with_borough_and_operator(client, auth, assets):
    admin = auth("admin")
    camden = [
        create(client, auth("camden"), [assets["camden"][20 + i][1]], operator="Multi Fibre")
        for i in range(3)
    ]
    hackney = create(client, auth("hackney"), [assets["hackney"][20][1]], operator="Multi Fibre")
    other = create(client, auth("camden"), [assets["camden"][24][1]], operator="Other Multi")
    requested = move(client, auth("camden"), camden[1], "requested").json()
    move(client, auth("camden"), requested, "survey_scheduled")
    move(client, auth("hackney"), hackney, "requested")
    move(client, auth("camden"), other, "requested")
    ids = lambda **p: [r["id"] for r in client.get("/wayleaves", params=p, headers=admin).json()]  # noqa: E731
    both = "identified,survey_scheduled"
    assert ids(operator="Multi Fibre", status=both) == [camden[0]["id"], camden[1]["id"], camden[2]["id"]]
    assert ids(operator="Multi Fibre", status="requested,survey_scheduled", borough=CAMDEN) == [
        camden[1]["id"]
    ]
    assert ids(operator="Multi Fibre,Other Multi", status="requested", borough=f"{CAMDEN},{HACKNEY}") == [
        hackney["id"],
        other["id"],
    ]
    assert ids(operator="Multi Fibre", status=" requested , identified ", borough=HACKNEY) == [hackney["id"]]
    counts = client.get(
        "/wayleaves/counts", params={"operator": "Multi Fibre", "status": both}, headers=admin
    )
    assert counts.status_code == 200, counts.text
    body = counts.json()
    assert body["total"] == 3 and body["overdue"] == 0 and len(body["by_status"]) == len(wl.STATUSES)
    assert body["by_status"]["identified"] == {"total": 2, "overdue": 0}
    assert (
        body["by_status"]["survey_scheduled"]["total"] == 1 and body["by_status"]["requested"]["total"] == 0
    )


@pytest.mark.parametrize("path", ["/wayleaves", "/wayleaves/counts"])
def test_an_unknown_or_repeated_status_is_a_400_naming_it(client, auth, path):
    bad = client.get(path, params={"status": "requested,signd,LIVE"}, headers=auth("admin"))
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["detail"].startswith("status: signd, LIVE not one of identified, requested")
    twice = client.get(f"{path}?status=requested&status=signed", headers=auth("admin"))
    assert twice.status_code == 400 and "status: given 2 times (requested, signed)" in twice.json()["detail"]
    assert "comma-separated in one parameter (status=requested,signed)" in twice.json()["detail"]
    assert client.get(path, params={"borough": "E09000099"}, headers=auth("admin")).status_code == 400


def test_pages_follow_the_next_link_to_the_end_with_overdue_filtered(client, auth, assets):
    """Keyset pages: every wayleave once, in id order, the last page without a next link."""
    admin = auth("admin")
    made = [create(client, admin, [assets["hackney"][30 + i][1]], operator="Paged Fibre") for i in range(5)]
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=120)).isoformat()
    late = create(
        client, admin, [assets["hackney"][40][1]], operator="Paged Fibre", status="requested", at=old
    )
    seen, url, pages = [], "/wayleaves?operator=Paged%20Fibre&limit=2", 0
    while url:
        response = client.get(url, headers=admin)
        assert response.status_code == 200 and len(response.json()) <= 2
        seen += [r["id"] for r in response.json()]
        link = response.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else None
        assert not link or link.endswith('rel="next"')
        pages += 1
    assert seen == [w["id"] for w in [*made, late]] and pages == 3
    on_time = client.get("/wayleaves?operator=Paged%20Fibre&limit=5&overdue=false", headers=admin)
    assert [r["id"] for r in on_time.json()] == [w["id"] for w in made] and "link" not in on_time.headers
    overdue = client.get("/wayleaves?operator=Paged%20Fibre&limit=1&overdue=true", headers=admin)
    assert [r["id"] for r in overdue.json()] == [late["id"]] and "link" not in overdue.headers
    counts = client.get("/wayleaves/counts?operator=Paged%20Fibre", headers=admin).json()
    assert (
        counts["total"] == 6
        and counts["overdue"] == 1
        and counts["by_status"]["requested"]
        == {
            "total": 1,
            "overdue": 1,
        }
    )
    assert (
        client.get("/wayleaves/counts?operator=Paged%20Fibre&overdue=true", headers=admin).json()["total"]
        == 1
    )
    csv_page = client.get("/wayleaves?operator=Paged%20Fibre&limit=4&format=csv", headers=admin)
    assert csv_page.text.count("\n") == 5 and "after=" in csv_page.headers["link"]
