"""Least privilege: the service's role reads and writes data, and can neither change structure nor rewrite history."""

from __future__ import annotations

import psycopg
import pytest

from geo.db import roles


@pytest.fixture
def app(app_db_url):
    with psycopg.connect(app_db_url) as conn:
        yield conn
        conn.rollback()


def refused(conn, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with conn.transaction():
            conn.execute(statement)


def test_the_service_connects_as_an_unprivileged_role(app, db_url):
    who, superuser, createrole, createdb = app.execute(
        "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert who == roles.APP_ROLE and not superuser and not createrole and not createdb
    with psycopg.connect(db_url) as owner:
        tables = owner.execute(
            """SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S')
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"""
        ).fetchall()
    assert tables == [(roles.OWNER_ROLE,)]


def test_it_cannot_change_structure_or_switch_off_the_rules(app):
    for statement in (
        "ALTER TABLE assets DISABLE TRIGGER ALL",
        "ALTER TABLE assets DISABLE TRIGGER assets_history_on_update",
        "ALTER TABLE wayleave_events DISABLE TRIGGER wayleave_events_no_update",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "ALTER TABLE asset_versions DISABLE TRIGGER asset_versions_append_only",
        "DROP TABLE audit_events",
        "TRUNCATE assets",
        "CREATE TABLE public.intruder (x int)",
        "DROP TRIGGER assets_history_on_update ON assets",
        "ALTER TABLE assets DROP CONSTRAINT assets_pkey",
    ):
        refused(app, statement)


def test_it_can_only_append_to_history_and_audit(app):
    for table in roles.APPEND_ONLY:
        column = {"audit_events": "actor", "wayleave_events": "by", "wayleave_changes": "by"}.get(
            table, "changed_by"
        )
        refused(app, f"UPDATE {table} SET {column} = NULL")
        refused(app, f"DELETE FROM {table}")
    refused(app, "DELETE FROM schema_migrations")
    refused(app, "SELECT * FROM asset_index_definitions")
    app.execute(
        "INSERT INTO audit_events (actor, action, object_type) VALUES ('probe', 'asset.update', 'asset')"
    )


def test_it_reads_and_writes_the_data(app):
    asset_id, version = app.execute("SELECT id, version FROM assets ORDER BY id LIMIT 1").fetchone()
    app.execute("UPDATE assets SET owner = 'privilege probe', changed_by = 'probe' WHERE id = %s", [asset_id])
    assert app.execute("SELECT version FROM assets WHERE id = %s", [asset_id]).fetchone()[0] == version + 1
    assert (
        app.execute("SELECT count(*) FROM asset_versions WHERE asset_id = %s", [asset_id]).fetchone()[0] >= 1
    )
    app.execute("CREATE TEMP TABLE scratch (x int)")  # uploads stage their rows in temporary tables


def test_the_first_load_index_rebuild_is_the_owners_and_only_into_an_empty_table(app):
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="holds rows"):
        app.execute("SELECT assets_drop_indexes()")
