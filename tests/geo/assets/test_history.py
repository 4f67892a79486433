import asyncio
import datetime as dt
import time

import psycopg
import pytest

from geo.access.principals import PermissionDenied, Principal
from geo.assets import store as assets


def run(db_url, work):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def first_asset(conn, kind, borough="E09000007"):
    return conn.execute(
        "SELECT id FROM assets WHERE kind = %s AND borough_code = %s ORDER BY id LIMIT 1", [kind, borough]
    ).fetchone()[0]


def test_updating_an_asset_keeps_the_old_version_readable(db_url, conn):
    asset_id = first_asset(conn, "street_furniture")
    camden = Principal(role="borough", borough_code="E09000007", key_id=1, label="camden officer")
    before = run(db_url, lambda c: assets.get_asset(c, asset_id))
    time.sleep(0.01)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    after = run(
        db_url,
        lambda c: assets.update_asset(c, asset_id, {"status": "pending_removal", "height_m": 9.5}, camden),
    )
    assert after["version"] == before["version"] + 1
    assert after["status"] == "pending_removal" and after["height_m"] == 9.5
    assert after["changed_by"] == "key 1 (camden officer)"

    then = run(db_url, lambda c: assets.asset_at(c, asset_id, between))
    assert then["status"] == before["status"] and then["height_m"] == before["height_m"]
    assert then["version"] == before["version"]
    now = run(db_url, lambda c: assets.asset_at(c, asset_id, dt.datetime.now(dt.UTC)))
    assert now["status"] == "pending_removal"

    history = run(db_url, lambda c: assets.asset_history(c, asset_id))
    assert [h["version"] for h in history] == [after["version"], before["version"]]
    assert history[0]["valid_to"] is None and history[1]["valid_to"] == history[0]["valid_from"]
    with pytest.raises(assets.AssetNotFound):
        run(db_url, lambda c: assets.asset_at(c, asset_id, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))


def test_a_write_that_changes_nothing_makes_no_version(conn):
    asset_id = first_asset(conn, "public_building")
    version = conn.execute("SELECT version FROM assets WHERE id = %s", [asset_id]).fetchone()[0]
    conn.execute("UPDATE assets SET status = status, geom = geom WHERE id = %s", [asset_id])
    assert conn.execute("SELECT version FROM assets WHERE id = %s", [asset_id]).fetchone()[0] == version
    conn.execute("UPDATE assets SET geom = ST_Translate(geom, 1, 0) WHERE id = %s", [asset_id])
    assert conn.execute("SELECT version FROM assets WHERE id = %s", [asset_id]).fetchone()[0] == version + 1
    old = conn.execute(
        "SELECT ST_X(ST_Centroid(geom)) FROM asset_versions WHERE asset_id = %s AND version = %s",
        [asset_id, version],
    ).fetchone()[0]
    new = conn.execute("SELECT ST_X(ST_Centroid(geom)) FROM assets WHERE id = %s", [asset_id]).fetchone()[0]
    assert new - old == pytest.approx(1.0)
    conn.rollback()


def test_deleting_an_asset_keeps_its_last_version(conn):
    asset_id = first_asset(conn, "duct")
    conn.execute("DELETE FROM assets WHERE id = %s", [asset_id])
    row = conn.execute(
        "SELECT replaced_by, kind FROM asset_versions WHERE asset_id = %s", [asset_id]
    ).fetchone()
    assert row == ("delete", "duct")
    conn.rollback()


def test_changes_are_validated_against_the_model(db_url, conn):
    asset_id = first_asset(conn, "street_furniture")
    admin = Principal(role="admin", key_id=2, label="gla")
    for change, message in [
        ({"status": "broken"}, "status: 'broken' is not one of"),
        ({"height_m": -3}, "height_m: -3 is outside"),
        ({"height_m": "tall"}, "is not a number"),
        ({"duct_diameter_mm": 100}, "does not apply to street_furniture"),
        ({"colour": "red"}, "field 'colour' cannot be changed"),
        ({"source_id": "new"}, "field 'source_id' cannot be changed"),
        ({"extra": None}, "field 'extra' cannot be empty"),
    ]:
        with pytest.raises(assets.InvalidAssetChange, match=message):
            run(db_url, lambda c, change=change: assets.update_asset(c, asset_id, change, admin))


def test_borough_keys_write_only_their_own_borough_and_versions_are_checked(db_url, conn):
    asset_id = first_asset(conn, "street_furniture", borough="E09000012")
    camden = Principal(role="borough", borough_code="E09000007", key_id=1, label="camden")
    operator = Principal(role="operator", key_id=3, label="op")
    with pytest.raises(
        PermissionDenied, match="borough E09000007 and cannot write data of borough E09000012"
    ):
        run(db_url, lambda c: assets.update_asset(c, asset_id, {"name": "x"}, camden))
    with pytest.raises(PermissionDenied, match="operator key cannot"):
        run(db_url, lambda c: assets.update_asset(c, asset_id, {"name": "x"}, operator))
    version = conn.execute("SELECT version FROM assets WHERE id = %s", [asset_id]).fetchone()[0]
    hackney = Principal(role="borough", borough_code="E09000012", key_id=4, label="hackney")
    run(db_url, lambda c: assets.update_asset(c, asset_id, {"name": "Mare Street column"}, hackney, version))
    with pytest.raises(assets.VersionConflict, match=f"is at version {version + 1}, not {version}"):
        run(db_url, lambda c: assets.update_asset(c, asset_id, {"name": "again"}, hackney, version))
