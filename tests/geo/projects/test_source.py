"""Reading Pipeline's JSON and CSV: fields, nested organisations, location columns, row errors and dates."""

import datetime as dt
from pathlib import Path

import pytest
import shapely

from geo import projects as pipeline
from geo.core.row_errors import UploadRejected

FIXTURES = Path(__file__).parents[2] / "fixtures" / "pipeline"


def fixture(name):
    return (FIXTURES / name).read_bytes()


def test_parse_json_reads_summaries_and_full_projects():
    projects, errors = pipeline.parse_json(fixture("projects.json"))
    assert len(projects) == 15
    by_id = {p.fields["pipeline_id"]: p for p in projects}
    lamp = by_id[101].fields
    assert lamp["title"] == "Smart lamp columns" and lamp["status"] == "Live" and lamp["phase"] == "Build"
    assert lamp["tags"] == ["IoT", "Street lighting"] and lamp["organisation"] == "London Borough of Camden"
    assert (
        lamp["project_start"] == dt.date(2020, 4, 1) and lamp["owner_email"] == "alice.example@camden.gov.uk"
    )
    assert lamp["last_updated"] == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)  # /Date(ms)/ is UTC
    assert "content" not in lamp  # a summary: keys it lacks are not written
    full = by_id[115].fields
    assert full["content"].startswith("Free Wi-Fi") and full["estimated_time"] == "18 months"
    assert full["funding_band"] == "£100k-250k"  # the text, not the enum number
    assert (
        full["collaboration_level"] == "Open To Conversation" and full["allow_external_collaboration"] is True
    )
    assert full["project_start"] == dt.date(2020, 1, 1) and full["organisation_twitter"] == "@lbbdcouncil"
    assert [(e.row, e.source_id, e.column) for e in errors] == [
        (13, "113", "ProjectStart"),
        (13, "113", "ProjectEnd"),
    ]


def test_parse_json_tolerates_missing_keys_nested_organisations_numbers_and_one_project():
    data = b'{"Id": 5, "Title": "T", "Organisation": {"Name": "GLA", "Url": "https://london.gov.uk"}, "ProjectStatus": 4, "Tags": "a; b"}'
    (project,), errors = pipeline.parse_json(data)
    assert not errors
    assert project.fields == {
        "pipeline_id": 5, "title": "T", "organisation": "GLA", "organisation_url": "https://london.gov.uk",
        "organisation_email": None, "organisation_twitter": None, "organisation_id": None, "status": "Live",
        "tags": ["a", "b"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("item", "column", "message"),
    [
        ({"Id": 1}, "Title", "needs a title"),
        ({"Id": 1, "Title": "x", "ProjectStatus": "Gamma"}, "ProjectStatus", "not a project status"),
        ({"Id": 1, "Title": "x", "AgileLifecycle": "Ship"}, "AgileLifecycle", "not a agile life-cycle phase"),
        ({"Id": 1, "Title": "x", "ProjectStart": "2021-02-30"}, "ProjectStart", "not a valid ISO 8601 date"),
        (
            {"Id": 1, "Title": "x", "ProjectStart": "2021-05-01", "ProjectEnd": "2021-01-01"},
            "ProjectEnd",
            "ends before",
        ),
        ({"Id": "one", "Title": "x"}, "Id", "not a whole number"),
        ({"Id": 1, "Title": "x", "Lon": 2.35, "Lat": 48.85}, "Lon", "not in London"),
    ],
)
def test_parse_json_row_errors(item, column, message):
    import json

    projects, errors = pipeline.parse_json(json.dumps([item]).encode())
    assert not projects and len(errors) == 1
    assert errors[0].row == 1 and errors[0].column == column and message in errors[0].message


def test_parse_csv_reads_the_export_with_uk_dates():
    projects, errors = pipeline.parse_csv(fixture("PipelineReports.csv"))
    assert [p.fields["title"] for p in projects][:2] == ["Fibre to schools", "Lamp column 5G"]
    first = projects[0].fields
    assert first["project_start"] == dt.date(2020, 9, 1) and first["project_end"] == dt.date(2021, 8, 31)
    assert first["last_updated"] == dt.datetime(2021, 6, 15, 8, 30, tzinfo=dt.UTC)  # 09:30 BST
    assert first["owner_email"] == "quinn.example@croydon.gov.uk" and "pipeline_id" not in first
    assert [(e.row, e.source_id, e.column, e.value) for e in errors] == [
        (7, "Smart parking", "Project start date", "31/02/2021"),
        (8, None, "Title", ""),
    ]


def test_parse_csv_location_columns():
    projects, errors = pipeline.parse_csv(fixture("PipelineReports_locations.csv"))
    riverside, market, library = projects
    assert riverside.has_location and riverside.location.geom_type == "Point"
    assert abs(riverside.location.x - 517_941) < 5 and abs(riverside.location.y - 174_956) < 5
    assert market.location.equals(shapely.Point(530500, 181500))
    assert not library.has_location
    assert len(errors) == 1 and "latitude first" in errors[0].message


def test_wkt_location_column_and_a_file_that_is_not_pipeline():
    data = b'Title,Organisation,wkt\nSite,Camden,"POLYGON((528000 184000, 528100 184000, 528100 184100, 528000 184000))"\n'
    (project,), errors = pipeline.parse_csv(data)
    assert not errors and project.location.geom_type == "Polygon"
    with pytest.raises(UploadRejected, match="no Title column"):
        pipeline.parse_csv(b"name,borough\nx,y\n")
    with pytest.raises(UploadRejected, match="not valid JSON"):
        pipeline.parse_json(b"[{")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1420070400000)/", dt.datetime(2015, 1, 1, tzinfo=dt.UTC)),
        ("/Date(1420070400000+0100)/", dt.datetime(2015, 1, 1, tzinfo=dt.UTC)),
        ("2015-01-01T00:00:00Z", dt.datetime(2015, 1, 1, tzinfo=dt.UTC)),
        ("01/07/2015", dt.datetime(2015, 6, 30, 23, tzinfo=dt.UTC)),
        ("1 Jul 2015", dt.datetime(2015, 6, 30, 23, tzinfo=dt.UTC)),
        ("", None),
    ],
)
def test_dates(text, expected):
    assert pipeline.parse_when(text) == expected
