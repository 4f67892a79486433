import psycopg

from geo.db import database
from geo.reference import model
from geo.reference.boroughs import GSS_CODES
from geo.reference.model import load_model


def test_migrations_apply_to_an_empty_database_and_a_second_run_is_a_no_op(fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        assert database.migration_level(conn) == 0
        first = model.migrate(conn)
        assert first == [m.name for m in database.migrations()]
        assert model.migrate(conn) == []
        assert database.migration_level(conn) == database.migrations()[-1].version
        recorded = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert [r[1] for r in recorded] == first
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        assert postgis.startswith("3.")


def test_a_changed_applied_migration_is_refused(fresh_db_url):
    with psycopg.connect(fresh_db_url) as conn:
        model.migrate(conn)
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        conn.commit()
        try:
            model.migrate(conn)
        except database.MigrationError as exc:
            assert "0001_foundation" in str(exc)
        else:
            raise AssertionError("an edited migration must be refused")


def test_the_33_boroughs_are_valid_with_the_right_codes(conn):
    rows = conn.execute(
        """SELECT code, name, inner_london, ST_IsValid(geom), ST_SRID(geom), ST_Area(geom) / 1e6
           FROM boroughs ORDER BY code"""
    ).fetchall()
    assert tuple(r[0] for r in rows) == GSS_CODES
    assert all(r[3] for r in rows) and {r[4] for r in rows} == {27700}
    names = {r[0]: r[1] for r in rows}
    assert names["E09000001"] == "City of London" and names["E09000033"] == "Westminster"
    assert names["E09000007"] == "Camden"
    inner = {r[0] for r in rows if r[2]}
    assert "E09000007" in inner and "E09000016" not in inner  # Camden inner, Havering outer
    areas = {r[0]: r[5] for r in rows}
    assert 2.5 < areas["E09000001"] < 3.2  # the City: about 2.9 km2 without the Thames
    assert 1500 < sum(areas.values()) < 1600  # Greater London: about 1,572 km2 excluding the Thames


def test_vocabulary_tables_and_constraints_follow_the_model(conn):
    model = load_model()
    subtypes = set(conn.execute("SELECT kind, code FROM asset_subtypes").fetchall())
    assert subtypes == {(k, c) for k, codes in model.subtypes.items() for c in codes}
    statuses = dict(conn.execute("SELECT code, usable FROM asset_statuses").fetchall())
    assert statuses == {c: s["usable"] for c, s in model.statuses.items()}
    try:
        conn.execute(
            """INSERT INTO assets (borough_code, kind, subtype, source_id, geom)
               VALUES ('E09000007', 'duct', 'lamp_post', 'x', 'SRID=27700;LINESTRING(0 0, 1 1)')"""
        )
    except psycopg.errors.CheckViolation as exc:
        assert "assets_subtype_vocabulary" in str(exc)
    else:
        raise AssertionError("a lamp_post duct must be refused")


def test_geometry_type_must_fit_the_kind(conn):
    try:
        conn.execute(
            """INSERT INTO assets (borough_code, kind, subtype, source_id, geom)
               VALUES ('E09000007', 'duct', 'duct', 'x', 'SRID=27700;POINT(529000 184000)')"""
        )
    except psycopg.errors.CheckViolation:
        pass
    else:
        raise AssertionError("a point duct must be refused")
