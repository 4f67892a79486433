"""Coverage areas: boroughs, polygons and bboxes in either CRS, and what is wrong with bad ones."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo.core.crs import transformer
from geo.coverage.area import parse_area
from geo.coverage.errors import InvalidArea

_TO_WGS84 = transformer(27700, 4326)

CAMDEN_BOX = [528000.0, 181000.0, 530000.0, 183000.0]


def test_bbox_in_wgs84_and_27700_give_the_same_place():
    _, bng = parse_area({"bbox": CAMDEN_BOX})
    lon0, lat0 = _TO_WGS84.transform(CAMDEN_BOX[0], CAMDEN_BOX[1])
    lon1, lat1 = _TO_WGS84.transform(CAMDEN_BOX[2], CAMDEN_BOX[3])
    normalised, wgs = parse_area({"bbox": [lon0, lat0, lon1, lat1]})
    assert normalised["crs"] == "EPSG:4326"
    assert shapely.Point(529000, 182000).within(wgs)
    # The National Grid is turned about 1.5° from the meridians here, so the boxes differ a little.
    assert wgs.intersection(bng).area / bng.area > 0.95


def test_multipolygon_in_either_crs_with_explicit_or_guessed_crs():
    squares = [shapely.box(528000, 181000, 529000, 182000), shapely.box(531000, 181000, 532000, 182000)]
    multi = shapely.MultiPolygon(squares)
    geojson = shapely.geometry.mapping(multi)
    normalised, geometry = parse_area({"geometry": geojson})
    assert normalised["crs"] == "EPSG:27700" and geometry.area == pytest.approx(2e6)
    as_wgs = shapely.transform(multi, lambda xy: np.column_stack(_TO_WGS84.transform(xy[:, 0], xy[:, 1])))
    for area in ({"geometry": shapely.geometry.mapping(as_wgs)}, {**shapely.geometry.mapping(as_wgs)}):
        _, back = parse_area(area)
        assert back.geom_type == "MultiPolygon" and back.area == pytest.approx(2e6, rel=1e-3)
    _, explicit = parse_area({"geometry": shapely.geometry.mapping(as_wgs), "crs": "OGC:CRS84"})
    assert explicit.area == pytest.approx(2e6, rel=1e-3)


@pytest.mark.parametrize(
    ("area", "field"),
    [
        ({}, "exactly one"),
        ({"bbox": [530000, 181000, 528000, 183000]}, "area.bbox"),
        ({"bbox": [5e6, 5e6, 6e6, 6e6]}, "area.bbox"),
        ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, "area.geometry"),
        ({"geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "area.geometry"),
        ({"boroughs": []}, "area.boroughs"),
        ({"boroughs": ["camden"]}, "area.boroughs"),
        ({"bbox": CAMDEN_BOX, "crs": "EPSG:3857"}, "area.crs"),
    ],
)
def test_bad_areas_name_the_field(area, field):
    with pytest.raises(InvalidArea, match=field):
        parse_area(area)
