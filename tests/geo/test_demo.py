import psycopg
import pytest

from geo.demo import DemoAlreadyLoaded, load_demo
from geo.reference import model
from geo.reference.boroughs import GSS_CODES


def test_small_demo_counts_by_kind_and_borough(conn):
    by_kind = dict(conn.execute("SELECT kind, count(*) FROM assets GROUP BY kind").fetchall())
    assert set(by_kind) == {"street_furniture", "public_building", "duct"}
    # The real TfL bus stops inside London: 20,404 rows less the 1,186 outside the GLA boundary.
    bus_stops = conn.execute("SELECT count(*) FROM assets WHERE subtype = 'bus_stop'").fetchone()[0]
    assert bus_stops == 20_404 - 1_186
    per_borough = conn.execute(
        "SELECT borough_code, kind, count(*) FROM assets GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    # Every borough has assets of every kind.
    assert {(b, k) for b, k, _ in per_borough} == {(b, k) for b in GSS_CODES for k in by_kind}
    duct_km = conn.execute("SELECT sum(ST_Length(geom)) / 1000 FROM assets WHERE kind = 'duct'").fetchone()[0]
    assert 60 <= duct_km < 90  # each borough stops after the route that reaches its share


def test_demo_assets_lie_in_their_borough_and_synthetic_ones_say_so(conn):
    outside = conn.execute(
        """SELECT count(*) FROM assets a JOIN boroughs b ON b.code = a.borough_code
           WHERE NOT ST_DWithin(a.geom, b.geom, 50)"""
    ).fetchone()[0]
    assert outside == 0
    provenance = dict(
        conn.execute(
            """SELECT a.provenance, bool_and(l.synthetic) FROM assets a JOIN loads l ON l.id = a.load_id
               GROUP BY a.provenance"""
        ).fetchall()
    )
    assert provenance == {"open_data": False, "synthetic": True}
    assert (
        conn.execute(
            "SELECT count(*) FROM assets WHERE source_id LIKE 'SYN-%' AND provenance <> 'synthetic'"
        ).fetchone()[0]
        == 0
    )


def test_ducts_follow_neighbouring_postcodes_not_long_straight_lines(conn):
    longest_segment = conn.execute(
        """SELECT max(ST_Distance(ST_PointN(geom, i), ST_PointN(geom, i + 1)))
           FROM assets, generate_series(1, ST_NPoints(geom) - 1) i WHERE kind = 'duct'"""
    ).fetchone()[0]
    assert longest_segment <= 220


def test_demo_is_deterministic_and_loads_only_into_an_empty_database(fresh_db_url, conn):
    with psycopg.connect(fresh_db_url) as fresh:
        model.migrate(fresh)
        counts = load_demo(fresh, "small")
        expected = dict(conn.execute("SELECT kind, count(*) FROM assets GROUP BY kind").fetchall())
        assert counts == expected
        digest = """SELECT md5(string_agg(source_id || ST_AsText(geom), ',' ORDER BY source_id)) FROM (
                        SELECT source_id, geom FROM assets WHERE version = 1 AND changed_by LIKE 'demo:%%'
                        UNION ALL
                        SELECT source_id, geom FROM asset_versions WHERE version = 1 AND changed_by LIKE 'demo:%%') v"""
        # The session database may have been changed by other tests: its version-1 rows are the demo as loaded.
        assert fresh.execute(digest).fetchone() == conn.execute(digest).fetchone()
        with pytest.raises(DemoAlreadyLoaded):
            load_demo(fresh, "small")
