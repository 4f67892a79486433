import pytest


def an_asset(conn, borough):
    return conn.execute(
        "SELECT id, version FROM assets WHERE borough_code = %s AND kind = 'street_furniture' ORDER BY id DESC LIMIT 1",
        [borough],
    ).fetchone()


def test_reading_is_anonymous_but_writing_never_is(client, conn):
    asset_id, _ = an_asset(conn, "E09000007")
    assert client.get(f"/assets/{asset_id}").status_code == 200
    response = client.patch(f"/assets/{asset_id}", json={"name": "x"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "needs an API key" in response.json()["detail"]


def test_unknown_malformed_and_revoked_keys_are_refused(client, db_url):
    assert client.get("/boroughs", headers={"Authorization": "Bearer cx_nope"}).status_code == 401
    assert client.get("/boroughs", headers={"Authorization": "Basic abc"}).status_code == 401


@pytest.mark.parametrize(
    ("who", "borough", "status"),
    [
        ("camden", "E09000007", 200),
        ("camden", "E09000012", 403),
        ("hackney", "E09000012", 200),
        ("admin", "E09000012", 200),
        ("operator", "E09000007", 403),
    ],
)
def test_key_roles_and_borough_binding(client, conn, auth, who, borough, status):
    asset_id, _ = an_asset(conn, borough)
    response = client.patch(f"/assets/{asset_id}", json={"owner": f"changed by {who}"}, headers=auth(who))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["owner"] == f"changed by {who}"
        history = client.get(f"/assets/{asset_id}/history", headers=auth(who)).json()
        assert history[0]["changed_by"].endswith(f"(test {who})")
        assert history[1]["owner"] != f"changed by {who}"
        # Who changed it is not for everyone (key labels name people and boroughs' officers).
        public = client.get(f"/assets/{asset_id}/history").json()
        assert "changed_by" not in public[0] and public[0]["owner"] == f"changed by {who}"


def test_if_match_stops_a_lost_update(client, conn, auth):
    asset_id, _ = an_asset(conn, "E09000007")
    version = client.get(f"/assets/{asset_id}").json()["version"]
    first = client.patch(
        f"/assets/{asset_id}", json={"height_m": 7}, headers={**auth("camden"), "If-Match": str(version)}
    )
    assert first.status_code == 200
    second = client.patch(
        f"/assets/{asset_id}", json={"height_m": 8}, headers={**auth("camden"), "If-Match": str(version)}
    )
    assert second.status_code == 409
    assert f"not {version}" in second.json()["detail"]


def test_an_invalid_change_is_a_422_and_writes_nothing(client, conn, auth):
    asset_id, _ = an_asset(conn, "E09000007")
    before = client.get(f"/assets/{asset_id}").json()
    response = client.patch(f"/assets/{asset_id}", json={"status": "sparkly"}, headers=auth("admin"))
    assert response.status_code == 422
    assert "status: 'sparkly' is not one of" in response.json()["detail"]
    assert client.get(f"/assets/{asset_id}").json() == before


def test_the_state_at_a_past_time_is_served(client, conn, auth):
    asset_id, _ = an_asset(conn, "E09000012")
    old = client.get(f"/assets/{asset_id}").json()
    client.patch(f"/assets/{asset_id}", json={"status": "removed"}, headers=auth("hackney"))
    then = client.get(f"/assets/{asset_id}", params={"at": old["valid_from"]}).json()
    assert then["status"] == old["status"] and then["version"] == old["version"]


def test_who_may_change_comes_before_the_body_and_a_bad_body_is_a_422_naming_field_and_value(
    client, conn, auth
):
    asset_id, version = an_asset(conn, "E09000007")
    camden = auth("camden")
    # Unknown asset, another borough's asset, a stale version: answered before the body is read.
    assert client.patch("/assets/987654321", json={"colour": "red"}, headers=camden).status_code == 404
    assert (
        client.patch(f"/assets/{asset_id}", json={"colour": "red"}, headers=auth("hackney")).status_code
        == 403
    )
    stale = {**camden, "If-Match": str(version + 1)}
    assert client.patch(f"/assets/{asset_id}", json={"height_m": "tall"}, headers=stale).status_code == 409
    for body, where, value in [
        ({"colour": "red"}, "body.colour", "red"),
        ({"source_id": "new"}, "body.source_id", "new"),
        ({"height_m": "tall"}, "body.height_m", "tall"),
        ({"height_m": 401}, "body.height_m", 401),
        ({"power_available": "yes"}, "body.power_available", "yes"),
        ({"last_surveyed": "2020-13-01"}, "body.last_surveyed", "2020-13-01"),
        ({"name": "  "}, "body.name", "  "),
        ({"extra": None}, "body.extra", None),
        ({"status": None}, "body.status", None),
    ]:
        response = client.patch(f"/assets/{asset_id}", json=body, headers=camden)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert (
            response.json()["errors"][0]["where"] == where and response.json()["errors"][0]["value"] == value
        )
    assert client.get(f"/assets/{asset_id}").json()["version"] == version
    trimmed = client.patch(f"/assets/{asset_id}", json={"name": "  Mare Street  "}, headers=camden)
    assert trimmed.status_code == 200 and trimmed.json()["name"] == "Mare Street"
