"""The database roles: the owner of the schema, the application role, and what each may touch."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

#: Owns the schema and runs the migrations.
OWNER_ROLE = "connectivity_owner"
#: What the service (and the CLI's data commands) connect as: data, never structure or history.
APP_ROLE = "connectivity_app"
#: Extensions the migrations use; created by a superuser before they run (PostGIS is not a
#: trusted extension, so its owner cannot create it).
EXTENSIONS = ("postgis", "btree_gist")
#: Tables the service may read and append to, never change: history and the audit trail.
APPEND_ONLY = (
    "audit_events",
    "asset_versions",
    "wayleave_events",
    "wayleave_changes",
    "pipeline_project_versions",
)
#: Tables the service may only read: what the migrations write.
READ_ONLY = ("schema_migrations", "asset_subtypes", "asset_statuses")
#: Tables the service may not touch at all: the owner's functions' own.
PRIVATE = ("asset_index_definitions",)


def ensure_roles(conn: psycopg.Connection[Any], app_password: str) -> None:
    """Create :data:`OWNER_ROLE` (no login) and :data:`APP_ROLE` (login with ``app_password``) when missing.

    Needs a role that may create roles (the embedded cluster's superuser). The app role's
    password is set only when the role is created, so a running service keeps working.
    """
    conn.execute(
        sql.SQL(
            """DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {owner}) THEN
                   CREATE ROLE {owner_id} NOLOGIN;
                 END IF;
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {app}) THEN
                   CREATE ROLE {app_id} LOGIN PASSWORD {password} NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
                 END IF;
               END $$"""
        ).format(
            owner=sql.Literal(OWNER_ROLE),
            owner_id=sql.Identifier(OWNER_ROLE),
            app=sql.Literal(APP_ROLE),
            app_id=sql.Identifier(APP_ROLE),
            password=sql.Literal(app_password),
        )  # fmt: skip
    )
