"""Connections, migrations and the database's own health figures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from geo.core.errors import Conflict
from geo.core.settings import DatabaseSettings
from geo.db.cluster import EmbeddedCluster
from geo.db.roles import APP_ROLE, APPEND_ONLY, EXTENSIONS, OWNER_ROLE, PRIVATE, READ_ONLY

# Taken by whoever applies migrations, so two processes never apply the same one twice.
MIGRATION_LOCK = 74_201_001


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file of ``geo/db/migrations``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def database_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """The URL the service connects with: ``DATABASE_URL`` if set, else the embedded cluster's application role.

    With ``start`` the embedded cluster is initialised and started when it is not running.
    """
    if settings.url:
        return settings.url
    cluster = EmbeddedCluster(settings)
    if start:
        cluster.start()
    return cluster.app_url()


def owner_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """The URL migrations run with: ``CONNECTIVITY_DB_OWNER_URL``, else ``DATABASE_URL``, else the
    embedded cluster's superuser (which hands the objects to :data:`OWNER_ROLE`)."""
    if settings.owner_url:
        return settings.owner_url
    if settings.url:
        return settings.url
    cluster = EmbeddedCluster(settings)
    return cluster.start() if start else cluster.url()


def _roles_exist(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) = 2 FROM pg_roles WHERE rolname = ANY(%s)", [[OWNER_ROLE, APP_ROLE]]
    ).fetchone()
    return bool(row and row[0])


# Objects of the schema not owned by the owner role (extension members aside): handed over.
FOREIGN_OBJECTS = """
SELECT format('ALTER %%s %%s OWNER TO %%I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                             ELSE 'TABLE' END, c.oid::regclass, %(owner)s::text)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('e', 'i', 'a'))
UNION ALL
SELECT format('ALTER FUNCTION %%s OWNER TO %%I', p.oid::regprocedure, %(owner)s::text)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""


def _prepare_owner(conn: psycopg.Connection[Any]) -> bool:
    """Whether migrations can run as :data:`OWNER_ROLE`; as a superuser, first create the extensions
    and hand the schema and its objects to it (objects made before the role existed)."""
    if not _roles_exist(conn):
        return False
    row = conn.execute(
        "SELECT rolsuper, pg_has_role(current_user, %s, 'MEMBER') FROM pg_roles WHERE rolname = current_user",
        [OWNER_ROLE],
    ).fetchone()
    superuser, member = bool(row and row[0]), bool(row and row[1])
    if not (superuser or member):
        return False
    if superuser:
        with conn.transaction():
            for extension in EXTENSIONS:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
            owner = sql.Identifier(OWNER_ROLE)
            current = conn.execute(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
            ).fetchone()
            if current and current[0] != OWNER_ROLE:
                conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
            for (statement,) in conn.execute(FOREIGN_OBJECTS, {"owner": OWNER_ROLE}).fetchall():
                conn.execute(statement.encode())
    return True


def _as_owner(conn: psycopg.Connection[Any], as_owner: bool) -> None:
    if as_owner:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))


# What the application role may do, table by table: read and write the data; only read and
# append the history and audit tables; run the privileged functions the migrations define.
PRIVILEGES_SQL = """
SELECT c.relname, c.relkind,
       has_table_privilege(%(app)s, c.oid, 'SELECT'), has_table_privilege(%(app)s, c.oid, 'INSERT'),
       has_table_privilege(%(app)s, c.oid, 'UPDATE'), has_table_privilege(%(app)s, c.oid, 'DELETE'),
       has_table_privilege(%(app)s, c.oid, 'TRUNCATE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
"""


def _grants_needed(conn: psycopg.Connection[Any]) -> bool:
    for name, kind, select, insert, update, delete, truncate in conn.execute(
        PRIVILEGES_SQL, {"app": APP_ROLE}
    ).fetchall():
        table = kind in ("r", "p") and name not in READ_ONLY
        writable = table and name not in APPEND_ONLY
        expected = (True, table, writable, writable, False)
        if name in PRIVATE:
            expected = (False, False, False, False, False)
        if (select, insert, update, delete, truncate) != expected:
            return True
    return False


def apply_grants(conn: psycopg.Connection[Any]) -> bool:
    """Give :data:`APP_ROLE` exactly its privileges (when they differ); True when they were set.

    Checked first and written only when something differs, so a migration check that finds
    nothing to do writes nothing.
    """
    if not _roles_exist(conn) or not _grants_needed(conn):
        return False
    app = sql.Identifier(APP_ROLE)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(OWNER_ROLE)))
        for statement in (
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {app}",
            "GRANT USAGE ON SCHEMA public TO {app}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {app}",
            "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        ):
            conn.execute(sql.SQL(statement).format(app=app))
        relations = {r[0]: r[1] for r in conn.execute(PRIVILEGES_SQL, {"app": APP_ROLE}).fetchall()}
        views = [name for name, kind in relations.items() if kind in ("v", "m")]
        for table in [*APPEND_ONLY, *READ_ONLY, *views]:
            if table in relations:
                conn.execute(
                    sql.SQL("REVOKE UPDATE, DELETE, INSERT ON {} FROM {}").format(sql.Identifier(table), app)
                )
        for table in APPEND_ONLY:
            if table in relations:
                conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(sql.Identifier(table), app))
        for table in PRIVATE:
            if table in relations:
                conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), app))
    return True


def with_statement_timeout(url: str, milliseconds: int) -> str:
    """``url`` (a URL or key=value string) whose connections stop any statement after ``milliseconds``.

    Added to libpq's ``options``, after any the URL already sets.
    """
    params = conninfo_to_dict(url)
    options = f"{params.get('options', '')} -c statement_timeout={int(milliseconds)}".strip()
    return make_conninfo("", **{**params, "options": options})


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A synchronous connection, for batch work and the CLI."""
    return psycopg.connect(url, **kwargs)


def migrations() -> list[Migration]:
    """The migrations shipped with the package, in order."""
    found = []
    for entry in resources.files("geo.db.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append(Migration(int(name[:4]), name.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


class MigrationError(Conflict):
    """An applied migration differs from the file of the same number."""


def migrate(
    conn: psycopg.Connection[Any], *, then: Callable[[psycopg.Connection[Any]], None] | None = None
) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their names.

    A second run applies nothing. ``then`` runs afterwards in a transaction of its own, as the
    owner (:func:`geo.reference.model.migrate` passes the vocabulary sync, so a new subtype
    needs no migration). Where the roles exist (the embedded cluster makes them), migrations
    run as :data:`OWNER_ROLE` and the application role's privileges are set afterwards
    (:func:`apply_grants`).
    """
    applied_now: list[str] = []
    as_owner = _prepare_owner(conn)
    with conn.transaction():
        _as_owner(conn, as_owner)
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    for migration in migrations():
        with conn.transaction():
            _as_owner(conn, as_owner)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            row = conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s", [migration.version]
            ).fetchone()
            if row:
                if row[0] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                [migration.version, migration.name, migration.checksum],
            )
            applied_now.append(migration.name)
    if then is not None:
        with conn.transaction():
            _as_owner(conn, as_owner)
            then(conn)
    if as_owner:
        apply_grants(conn)
    return applied_now


def migration_level(conn: psycopg.Connection[Any]) -> int:
    """The highest applied migration number (0 for an empty database)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


HEALTH_SQL = """
SELECT
    postgis_lib_version() AS postgis,
    current_setting('server_version') AS postgres,
    (SELECT coalesce(max(version), 0) FROM schema_migrations) AS migration_level,
    (SELECT count(*) FROM boroughs) AS boroughs,
    (SELECT coalesce(jsonb_object_agg(kind, n), '{}')
       FROM (SELECT kind, count(*) AS n FROM assets WHERE retired_at IS NULL GROUP BY kind) k) AS assets
"""


async def health(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    """PostGIS version, migration level and live asset counts per kind."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(HEALTH_SQL)
        row = await cur.fetchone()
    assert row is not None
    expected = migrations()[-1].version
    counts = {
        kind: int(row["assets"].get(kind, 0)) for kind in ("public_building", "street_furniture", "duct")
    }
    return {
        "postgres": row["postgres"],
        "postgis": row["postgis"],
        "migration_level": row["migration_level"],
        "migrations_expected": expected,
        "boroughs": row["boroughs"],
        "assets": counts,
    }
