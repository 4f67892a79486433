"""The coverage request: the body model, its defaults and limits from the settings, and its messages."""

from __future__ import annotations

import pytest

from geo.core.settings import CoverageSettings
from geo.coverage.errors import InvalidArea, InvalidCoverageRequest
from geo.coverage.request import CoverageRequest, parse_request
from geo.reference.model import load_model


def test_equal_requests_normalise_equal(coverage_settings):
    a = parse_request(
        {"area": {"boroughs": ["e09000012", "E09000007"]}, "thresholds": [200, 50, 100]}, coverage_settings
    )
    b = parse_request(
        {
            "area": {"boroughs": ["E09000007", "E09000012"]},
            "kinds": ["duct", "street_furniture", "public_building"],
        },
        coverage_settings,
    )
    assert a.parameters() == b.parameters()
    assert a.parameters()["statuses"] == sorted(load_model().usable_statuses)
    assert a.gap_threshold == 100.0


CAMDEN = {"area": {"boroughs": ["E09000007"]}}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**CAMDEN, "thresholds": [50, "100"]}, "thresholds.1: Input should be a valid number (given '100')"),
        ({**CAMDEN, "radius": True}, "radius: Input should be a valid number (given True)"),
        ({**CAMDEN, "k": 2.0}, "k: Input should be a valid integer (given 2.0)"),
        ({**CAMDEN, "ready_now": 1}, "ready_now: Input should be a valid boolean (given 1)"),
        ({**CAMDEN, "cell_size": 75}, "cell_size: Input should be 50, 100 or 250 (given 75)"),
        ({**CAMDEN, "thresholds": [0.5]}, "thresholds.0: Input should be greater than or equal to 1"),
        ({**CAMDEN, "thresholds": list(range(1, 14))}, "thresholds: List should have at most 12 items"),
        ({**CAMDEN, "demand": "households"}, "demand: Input should be 'postcodes', 'grid' or 'premises'"),
        ({**CAMDEN, "kinds": ["lamp"]}, "kinds: 'lamp' not one of duct, public_building, street_furniture"),
        ({**CAMDEN, "kinds": ["duct"], "subtypes": ["bus_stop"]}, "subtypes: 'bus_stop' not one of"),
        ({**CAMDEN, "asset_boroughs": ["E09000099"]}, "asset_boroughs: 'E09000099' not one of E09000001"),
        ({**CAMDEN, "colour": "red"}, "colour: Extra inputs are not permitted (given 'red')"),
        ({**CAMDEN, "premises": {"type": "FeatureCollection"}}, "premises: given, but demand is 'postcodes'"),
        ({"thresholds": [50]}, "area: missing; give boroughs, geometry or bbox"),
        ([CAMDEN], "the request body: Input should be a valid dictionary"),
    ],
)
def test_bad_values_name_the_field_and_the_value(coverage_settings, body, words):
    with pytest.raises(InvalidCoverageRequest) as raised:
        parse_request(body, coverage_settings)
    assert words in str(raised.value)


def test_every_mistake_is_told_at_once_and_area_mistakes_are_invalid_areas(coverage_settings):
    with pytest.raises(InvalidCoverageRequest) as raised:
        parse_request({**CAMDEN, "k": -1, "radius": 9000}, coverage_settings)
    assert "k: Input should be greater than or equal to 0" in str(raised.value)
    assert "radius: Input should be less than or equal to 5000" in str(raised.value)
    with pytest.raises(InvalidArea, match=r"area\.bbox: \[1, 2, 3\] is not \[minx, miny, maxx, maxy\]"):
        parse_request({"area": {"bbox": [1, 2, 3]}}, coverage_settings)


def test_defaults_and_limits_come_from_the_settings():
    settings = CoverageSettings(thresholds=(30, 90), grid_cell_m=250, max_k=10, max_premises=2, max_cells=100)
    request = parse_request(CAMDEN | {"k": 10, "kinds": "duct"}, settings)
    assert request.thresholds == (30.0, 90.0) and request.gap_threshold == 90.0
    assert request.cell_size == 250.0 and request.kinds == ("duct",)
    with pytest.raises(InvalidCoverageRequest, match="k: 11 is not a whole number from 0 to 10"):
        parse_request(CAMDEN | {"k": 11}, settings)
    points = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-0.13, 51.53]}}] * 3
    premises = {"type": "FeatureCollection", "features": points}
    with pytest.raises(InvalidCoverageRequest, match="premises: 3 points, more than the limit of 2"):
        parse_request(CAMDEN | {"demand": "premises", "premises": premises}, settings)
    with pytest.raises(InvalidArea, match="more than the limit of 100"):
        parse_request({"area": {"bbox": [528000, 181000, 533000, 186000]}}, settings)


def test_the_body_model_documents_every_field():
    schema = CoverageRequest.model_json_schema()
    fields = schema["properties"]
    assert set(fields) == {
        "area", "thresholds", "demand", "cell_size", "gap_threshold", "kinds", "subtypes", "statuses",
        "asset_boroughs", "ready_now", "k", "radius", "premises", "premises_crs",
        "priorities_method", "budget", "costs",
    }  # fmt: skip
    assert schema["required"] == ["area"] and schema["additionalProperties"] is False
    assert all(field.get("description") for field in fields.values())
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in fields["area"]["anyOf"]} == {
        "BoroughsArea", "GeometryArea", "BboxArea", "PolygonArea", "FeatureArea",
    }  # fmt: skip
    assert fields["cell_size"]["anyOf"][0]["enum"] == [50, 100, 250]
    assert fields["radius"]["minimum"] == 1 and fields["radius"]["maximum"] == 5000
