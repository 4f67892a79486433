"""Pipeline projects in the database: idempotent import with history, placement, queries and sites.

The tests share one database, in order: the imports load the projects the queries then read.
"""

import asyncio
from pathlib import Path

import psycopg
import pytest
import shapely

from geo import projects as pipeline
from geo.access.principals import Principal
from geo.core.errors import InvalidParameter
from geo.core.query import read_bbox

ADMIN = Principal(role="admin", label="test")
OPERATOR = Principal(role="operator", label="op", key_id=None)
FIXTURES = Path(__file__).parents[2] / "fixtures" / "pipeline"


def fixture(name):
    return (FIXTURES / name).read_bytes()


# Import ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def db(isolated):
    with psycopg.connect(isolated.url, autocommit=True) as conn:
        yield conn


def run(db_url, work):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            return await work(c)

    return asyncio.run(main())


def history_rows(db):
    return db.execute("SELECT count(*) FROM pipeline_project_versions").fetchone()[0]


def test_a_file_with_row_errors_is_rejected_whole(db):
    before = db.execute("SELECT count(*) FROM pipeline_projects").fetchone()[0]
    record = pipeline.import_pipeline(db, fixture("projects.json"), "projects.json", ADMIN)
    assert (
        record["state"] == "rejected" and record["counts"]["invalid"] == 1 and record["counts"]["errors"] == 2
    )
    assert db.execute("SELECT count(*) FROM pipeline_projects").fetchone()[0] == before
    errors = pipeline.import_errors_sync(db, record["id"])
    assert errors[0]["row"] == 13 and errors[0]["column"] == "ProjectStart"


def test_only_admins_import(db):
    from geo.access.principals import PermissionDenied

    with pytest.raises(PermissionDenied):
        pipeline.import_pipeline(
            db, fixture("projects.json"), "projects.json", Principal("borough", "E09000007")
        )


def test_import_places_projects_and_reimport_changes_nothing(db):
    version = db.execute("SELECT version FROM data_versions WHERE layer = 'pipeline'").fetchone()[0]
    dry = pipeline.import_pipeline(
        db, fixture("projects.json"), "projects.json", ADMIN, dry_run=True, skip_invalid=True
    )
    assert dry["state"] == "previewed" and dry["counts"]["new"] == 15
    assert db.execute("SELECT count(*) FROM pipeline_projects").fetchone()[0] == 0
    first = pipeline.import_pipeline(db, fixture("projects.json"), "projects.json", ADMIN, skip_invalid=True)
    assert first["state"] == "applied"
    assert {k: first["counts"][k] for k in ("new", "changed", "unchanged", "unplaced")} == {
        "new": 15, "changed": 0, "unchanged": 0, "unplaced": 2,
    }  # fmt: skip
    assert db.execute("SELECT version FROM data_versions WHERE layer = 'pipeline'").fetchone()[0] > version
    placed = dict(
        db.execute("SELECT pipeline_id, coalesce(borough_code, placement) FROM pipeline_projects").fetchall()
    )
    assert placed[101] == placed[102] == "E09000007" and placed[104] == placed[105] == "E09000020"
    assert placed[106] == "E09000001" and placed[107] == "E09000033" and placed[108] == "E09000013"
    assert placed[109] == placed[110] == "london" and placed[111] == placed[112] == "unplaced"
    # Borough-wide projects are drawn inside their borough, at different points.
    inside = db.execute(
        """SELECT bool_and(ST_Within(p.geom, b.geom)), count(DISTINCT ST_AsText(p.geom))
           FROM pipeline_projects p JOIN boroughs b ON b.code = p.borough_code WHERE p.placement = 'borough'"""
    ).fetchone()
    assert inside == (True, 11)
    assert (
        db.execute(
            "SELECT count(*) FROM pipeline_projects WHERE placement IN ('london', 'unplaced') AND geom IS NOT NULL"
        ).fetchone()[0]
        == 0
    )

    history = history_rows(db)
    points = db.execute("SELECT id, ST_AsText(geom) FROM pipeline_projects ORDER BY id").fetchall()
    version = db.execute("SELECT version FROM data_versions WHERE layer = 'pipeline'").fetchone()[0]
    again = pipeline.import_pipeline(db, fixture("projects.json"), "projects.json", ADMIN, skip_invalid=True)
    assert {k: again["counts"][k] for k in ("new", "changed", "unchanged")} == {
        "new": 0,
        "changed": 0,
        "unchanged": 15,
    }
    assert history_rows(db) == history
    assert db.execute("SELECT id, ST_AsText(geom) FROM pipeline_projects ORDER BY id").fetchall() == points
    assert db.execute("SELECT version FROM data_versions WHERE layer = 'pipeline'").fetchone()[0] == version


def test_a_changed_project_keeps_its_old_version_in_history(db):
    import json

    projects = json.loads(fixture("projects.json"))
    lamp = next(p for p in projects if p["Id"] == 101)
    lamp["ProjectStatus"] = "Decommissioned"
    del lamp["Tags"]  # missing keys are left as they were
    record = pipeline.import_pipeline(db, json.dumps([lamp]).encode(), "one.json", ADMIN)
    assert record["counts"]["changed"] == 1
    row = db.execute(
        "SELECT id, status, version, tags FROM pipeline_projects WHERE pipeline_id = 101"
    ).fetchone()
    assert row[1:] == ("Decommissioned", 2, ["IoT", "Street lighting"])
    old = db.execute(
        "SELECT version, status, owner_email, replaced_by FROM pipeline_project_versions WHERE project_id = %s",
        [row[0]],
    ).fetchall()
    assert old == [(1, "Live", "alice.example@camden.gov.uk", "update")]


def test_csv_rows_match_on_organisation_and_title(db):
    first = pipeline.import_pipeline(
        db, fixture("PipelineReports.csv"), "PipelineReports.csv", ADMIN, skip_invalid=True
    )
    assert first["counts"]["new"] == 6 and first["counts"]["unplaced"] == 2
    again = pipeline.import_pipeline(
        db, fixture("PipelineReports.csv"), "PipelineReports.csv", ADMIN, skip_invalid=True
    )
    assert again["counts"]["unchanged"] == 6 and again["counts"]["new"] == 0
    changed = fixture("PipelineReports.csv").replace(
        b"Estate Wi-Fi,Southwark,Housing", b"Estate Wi-Fi,SOUTHWARK,Regeneration"
    )
    third = pipeline.import_pipeline(db, changed, "PipelineReports.csv", ADMIN, skip_invalid=True)
    assert third["counts"]["changed"] == 1 and third["counts"]["new"] == 0
    # A JSON project already imported, seen again in the CSV export: the same project, updated.
    csv = (
        b"Title,Organisation,Department,Owner,Owner email,Project start date,Project end date,Last updated\n"
        b"Library Wi-Fi,Camden Council,Libraries and archives,Bob Example,bob.example@camden.gov.uk,01/01/2021,,01/06/2021 11:00\n"
    )
    record = pipeline.import_pipeline(db, csv, "PipelineReports.csv", ADMIN)
    assert record["counts"]["changed"] == 1 and record["counts"]["new"] == 0
    dept = db.execute("SELECT department, status FROM pipeline_projects WHERE pipeline_id = 102").fetchone()
    assert dept == ("Libraries and archives", "Beta")


def test_explicit_locations_override_the_organisation(db):
    record = pipeline.import_pipeline(
        db,
        fixture("PipelineReports_locations.csv"),
        "PipelineReports_locations.csv",
        ADMIN,
        skip_invalid=True,
    )
    assert record["counts"]["new"] == 3
    rows = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT title, placement, borough_code, ST_AsText(geom) = ST_AsText(location) FROM pipeline_projects "
            "WHERE title IN ('Riverside sensors', 'Market Wi-Fi', 'Library hub')"
        ).fetchall()
    }
    assert rows["Riverside sensors"] == ("exact", "E09000027", True)
    # An unrecognised organisation with a site is placed by the site, in the borough around it.
    assert rows["Market Wi-Fi"] == ("exact", "E09000007", True)
    assert rows["Library hub"][:2] == ("borough", "E09000007")


# Queries --------------------------------------------------------------------------------------------
def ids(rows):
    return sorted(str(r["pipeline_id"] or r["title"]) for r in rows)


def test_borough_status_phase_tag_and_date_filters(db, isolated):
    def listed(**kw):
        rows, _ = run(isolated.url, lambda c: pipeline.list_projects(c, pipeline.parse_query(**kw), OPERATOR))
        return rows

    camden_sql = {
        r[0] for r in db.execute("SELECT id FROM pipeline_projects WHERE borough_code = 'E09000007'")
    }
    assert {r["id"] for r in listed(borough="E09000007")} == camden_sql
    assert ids(listed(status="live", phase="Improve")) == ["105", "106", "111", "115"]
    assert ids(listed(tag="iot")) == ["101", "103", "105", "116"]  # case-insensitive; 101 kept its tags
    assert ids(listed(start="2021-12-15", end="2021-12-20", placement="borough")) == sorted(
        str(r[0] or r[1])
        for r in db.execute(
            """SELECT pipeline_id, title FROM pipeline_projects WHERE placement = 'borough'
               AND (project_end IS NULL OR project_end >= '2021-12-15')
               AND (project_start IS NULL OR project_start <= '2021-12-20')"""
        )
    )
    with pytest.raises(InvalidParameter, match="status"):
        pipeline.parse_query(status="Gamma")
    with pytest.raises(InvalidParameter, match="borough"):
        pipeline.parse_query(borough="E09000099")


def sql_in_area(db, area_wkt, wide):
    return {
        r[0]
        for r in db.execute(
            """SELECT p.id FROM pipeline_projects p, ST_GeomFromText(%s, 27700) a
               WHERE ST_Intersects(p.location, a)
                  OR (p.location IS NULL AND p.placement = 'borough' AND EXISTS
                      (SELECT 1 FROM boroughs b WHERE b.code = p.borough_code AND ST_Intersects(b.geom, a)))
                  OR (%s AND p.placement = 'london')""",
            [area_wkt, wide],
        )
    }


def test_bbox_queries_match_sql_in_both_crs(db, isolated):
    box = (528000.0, 180000.0, 534000.0, 185000.0)  # Camden, Islington, the City, Westminster...
    area = shapely.box(*box)
    expected = sql_in_area(db, area.wkt, False)
    assert expected
    bng = pipeline.parse_query(bbox=read_bbox(",".join(map(str, box)), "EPSG:27700"))
    rows, _ = run(isolated.url, lambda c: pipeline.list_projects(c, bng, OPERATOR))
    assert {r["id"] for r in rows} == expected
    lon0, lat0, lon1, lat1 = pipeline.to_wgs84(area).bounds
    inner = shapely.box(*pipeline.to_bng(shapely.box(lon0, lat0, lon1, lat1)).bounds)
    wgs = pipeline.parse_query(bbox=read_bbox(f"{lon0},{lat0},{lon1},{lat1}", None), include_london_wide=True)
    rows, _ = run(isolated.url, lambda c: pipeline.list_projects(c, wgs, OPERATOR))
    assert {r["id"] for r in rows} == sql_in_area(db, inner.wkt, True)
    assert {r["placement"] for r in rows} >= {"borough", "london"}


def test_projects_in_area(db):
    site = db.execute("SELECT location FROM pipeline_projects WHERE title = 'Riverside sensors'").fetchone()
    assert site is not None
    richmond_bit = shapely.Point(517941, 174956).buffer(200)
    found = pipeline.projects_in_area(db, richmond_bit)
    assert {r["id"] for r in found} == sql_in_area(db, richmond_bit.wkt, True)
    assert found[0]["title"] == "Riverside sensors" and found[0]["match"] == "exact"
    assert {r["match"] for r in found} == {"exact", "borough", "london"}
    assert all(not ({"owner", "owner_email", "created_by", "modified_by"} & r.keys()) for r in found)
    assert found[0]["geom"].geom_type == "Point" and found[0]["geometry"]["type"] == "Point"
    outside = pipeline.projects_in_area(db, shapely.box(400000, 100000, 401000, 101000))
    assert outside == []
    narrow = pipeline.projects_in_area(db, richmond_bit, include_london_wide=False)
    assert "london" not in {r["match"] for r in narrow}


def test_set_location_and_clear_it(db, isolated):
    pid = db.execute("SELECT id FROM pipeline_projects WHERE pipeline_id = 103").fetchone()[0]
    hackney = Principal("borough", "E09000012", key_id=None, label="hackney")
    camden = Principal("borough", "E09000007", key_id=None, label="camden")
    point = {"type": "Point", "coordinates": [-0.0553, 51.5450]}
    from geo.access.principals import PermissionDenied

    with pytest.raises(PermissionDenied):
        run(isolated.url, lambda c: pipeline.set_location(c, pid, point, camden))
    placed = run(isolated.url, lambda c: pipeline.set_location(c, pid, point, hackney))
    assert placed["placement"] == "exact" and placed["borough_code"] == "E09000012" and "owner" not in placed
    assert abs(placed["location"]["coordinates"][0] + 0.0553) < 1e-5
    cleared = run(isolated.url, lambda c: pipeline.set_location(c, pid, None, hackney))
    assert cleared["placement"] == "borough" and cleared["location"] is None
    versions = db.execute(
        "SELECT placement FROM pipeline_project_versions WHERE project_id = %s ORDER BY version", [pid]
    ).fetchall()
    assert versions == [("borough",), ("exact",)]
    with pytest.raises(pipeline.InvalidLocation, match="not in London"):
        run(
            isolated.url,
            lambda c: pipeline.set_location(c, pid, {"type": "Point", "coordinates": [2.35, 48.85]}, hackney),
        )
