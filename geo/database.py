"""Connections, migrations and the database's own health figures."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row

from geo.cluster import EmbeddedCluster
from geo.settings import DatabaseSettings

# Taken by whoever applies migrations, so two processes never apply the same one twice.
MIGRATION_LOCK = 74_201_001


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file of ``geo/migrations``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def database_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """The URL of the project's database: ``DATABASE_URL`` if set, else the embedded cluster's.

    With ``start`` the embedded cluster is initialised and started when it is not running.
    """
    if settings.url:
        return settings.url
    cluster = EmbeddedCluster(settings)
    return cluster.start() if start else cluster.url()


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A synchronous connection, for batch work and the CLI."""
    return psycopg.connect(url, **kwargs)


def migrations() -> list[Migration]:
    """The migrations shipped with the package, in order."""
    found = []
    for entry in resources.files("geo.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append(Migration(int(name[:4]), name.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


class MigrationError(RuntimeError):
    """An applied migration differs from the file of the same number."""


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their names.

    A second run applies nothing. The vocabularies in ``data/asset_model.yaml`` are synced
    afterwards, so a new subtype needs no migration.
    """
    from geo.model import sync_vocabularies

    applied_now: list[str] = []
    with conn.transaction():
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    for migration in migrations():
        with conn.transaction():
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
    with conn.transaction():
        sync_vocabularies(conn)
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
