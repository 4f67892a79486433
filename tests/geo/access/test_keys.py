import asyncio

import psycopg
import pytest

from geo import access
from geo.reference.boroughs import UnknownBorough


def run(db_url, work):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def test_keys_are_stored_hashed_and_authenticate_to_their_role(db_url, conn):
    new = run(
        db_url, lambda c: access.create_key(c, "borough", "e09000007 ", "Camden GIS", actor=access.SYSTEM)
    )
    assert new.key.startswith("cx_") and len(new.key) > 40 and new.borough_code == "E09000007"
    stored = conn.execute("SELECT key_hash, prefix FROM api_keys WHERE id = %s", [new.id]).fetchone()
    assert stored[0] == access.hash_key(new.key) and new.key not in stored
    who = run(db_url, lambda c: access.authenticate(c, new.key))
    assert (who.role, who.borough_code, who.key_id) == ("borough", "E09000007", new.id)
    listed = run(db_url, access.list_keys)
    assert any(k["id"] == new.id and "key_hash" not in k for k in listed)


def test_revoked_keys_stop_working_at_once(db_url):
    new = run(db_url, lambda c: access.create_key(c, "operator", label="BT", actor=access.SYSTEM))
    assert run(db_url, lambda c: access.revoke_key(c, new.id, actor=access.SYSTEM)) is True
    assert run(db_url, lambda c: access.revoke_key(c, new.id, actor=access.SYSTEM)) is False
    with pytest.raises(access.AuthenticationFailed):
        run(db_url, lambda c: access.authenticate(c, new.key))


def test_role_rules():
    with pytest.raises(ValueError, match="needs --borough"):
        asyncio.run(access.create_key(None, "borough", actor=access.SYSTEM))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only borough keys"):
        asyncio.run(access.create_key(None, "admin", "E09000007", actor=access.SYSTEM))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown role"):
        asyncio.run(access.create_key(None, "root", actor=access.SYSTEM))  # type: ignore[arg-type]
    with pytest.raises(UnknownBorough, match="E09000034"):
        asyncio.run(access.create_key(None, "borough", "E09000034", actor=access.SYSTEM))  # type: ignore[arg-type]
    camden = access.Principal(role="borough", borough_code="E09000007")
    camden.require_borough_write("E09000007")
    with pytest.raises(access.PermissionDenied):
        camden.require_borough_write("E09000001")
    access.Principal(role="admin").require_borough_write("E09000001")
    with pytest.raises(access.AuthenticationFailed):
        access.ANONYMOUS.require_key()
