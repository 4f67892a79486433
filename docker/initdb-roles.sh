#!/bin/sh
# Run once by the postgis image when it creates the database: the roles of geo/db/database.py.
# connectivity_owner owns the schema (migrations run as the superuser and hand it over);
# connectivity_app is what the service connects as (no DDL, history and audit append-only).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE connectivity_owner NOLOGIN;
CREATE ROLE connectivity_app LOGIN NOINHERIT PASSWORD '${CONNECTIVITY_APP_PASSWORD}';
SQL
