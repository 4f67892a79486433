import numpy as np
import pyarrow as pa
import pytest
import shapely

from geo.uploads.mapping import build_mapping
from geo.uploads.validation import BatchValidator, output_schema

CAMDEN = "E09000007"
INSIDE = (529000.0, 184000.0)  # Camden Town


def check(columns, geoms, kind="street_furniture", validator=None, start=1, **kw):
    table = pa.table(columns)
    mapping = validator.mapping if validator else build_mapping(table.column_names, kind)
    validator = validator or BatchValidator(CAMDEN, mapping, **kw)
    rows = np.arange(start, start + table.num_rows)
    result = validator.validate(rows, np.array(geoms, dtype=object), mapping.apply(table))
    return result, validator


def pt(dx=0.0, dy=0.0):
    return shapely.Point(INSIDE[0] + dx, INSIDE[1] + dy)


def test_clean_rows_make_the_staged_table():
    result, _ = check({"UNITNO": ["a", "b"], "TYPE": ["LC", "CCTV"], "HEIGHT": ["8", "12"]}, [pt(), pt(5)])
    assert result.errors == [] and result.table.schema == output_schema("street_furniture")
    assert result.table.column("row").to_pylist() == [1, 2]
    assert result.table.column("borough_code").to_pylist() == [CAMDEN] * 2


def test_keys_missing_and_duplicated_across_batches():
    result, validator = check({"UNITNO": ["a", None, "a"]}, [pt(), pt(), pt()])
    assert [(e.row, e.column, e.message) for e in result.errors] == [
        (2, "UNITNO", "source_id is missing: every asset needs the borough's own identifier"),
        (3, "UNITNO", "duplicate source_id 'a': row 1 has it already"),
    ]
    result, _ = check({"UNITNO": ["b", "a"]}, [pt(), pt()], validator=validator, start=4)
    assert [(e.row, e.source_id, e.message) for e in result.errors] == [
        (5, "a", "duplicate source_id 'a': row 1 has it already")
    ]
    assert result.table.column("source_id").to_pylist() == ["b"]


def test_vocabularies_types_and_ranges():
    result, _ = check(
        {
            "UNITNO": ["a", "b", "c", "d", "e"],
            "TYPE": ["Bench", "LC", "LC", "LC", "LC"],
            "HEIGHT": ["8", "tall", "500", "8", "8"],
            "POWER": ["Y", "Y", "Y", "maybe", "Y"],
            "SURVEY_DATE": ["01/01/2020", None, None, None, "32/13/2020"],
        },
        [pt()] * 5,
    )
    got = [(e.row, e.column, e.value, e.message) for e in result.errors]
    assert (1, "TYPE", "Bench", got[0][3]) == got[0]
    assert "'Bench' is not a known subtype for street_furniture; use one of access_chamber" in got[0][3]
    assert (2, "HEIGHT", "tall", "height_m: 'tall' is not a number") in got
    assert (3, "HEIGHT", "500", "height_m: 500 is outside 0.1..400") in got
    assert (
        4,
        "POWER",
        "maybe",
        "power_available: 'maybe' is not yes/no (Y/N, Yes/No, True/False, 1/0)",
    ) in got
    assert (
        5,
        "SURVEY_DATE",
        "32/13/2020",
        "last_surveyed: '32/13/2020' is not a date (dd/mm/yyyy or yyyy-mm-dd)",
    ) in got
    assert result.table.num_rows == 0


def test_outside_the_borough_with_tolerance():
    west = shapely.Point(523000, 184000)  # Brent, well outside Camden
    result, _ = check({"UNITNO": ["a", "b"]}, [pt(), west], tolerance_m=50)
    assert len(result.errors) == 1 and result.errors[0].row == 2
    assert result.errors[0].message.startswith("outside Camden (E09000007): ")
    assert result.errors[0].message.endswith("m beyond the boundary (tolerance 50 m)")
    assert shapely.from_wkb(result.errors[0].geometry).equals(west)
    far = shapely.Point(400000, 400000)
    result, _ = check({"UNITNO": ["a"]}, [far])
    assert "far outside London: check the coordinates and the CRS" in result.errors[0].message


def test_tolerance_lets_a_point_just_outside_in():
    from geo.uploads.validation import _borough

    _, boundary, _, _ = _borough(CAMDEN, 0.0)
    ring = shapely.get_exterior_ring(shapely.get_geometry(boundary, 0))
    edge = shapely.line_interpolate_point(ring, 0.0)
    centre = shapely.centroid(boundary)
    dx, dy = edge.x - centre.x, edge.y - centre.y
    d = np.hypot(dx, dy)
    outside = shapely.Point(edge.x + dx / d * 20, edge.y + dy / d * 20)
    assert (
        check({"UNITNO": ["a"]}, [outside], tolerance_m=50)[0].errors == []
        or shapely.distance(boundary, outside) > 50
    )
    result, _ = check({"UNITNO": ["a"]}, [outside], tolerance_m=0)
    if shapely.distance(boundary, outside) > 0:
        assert result.errors and "tolerance 0 m" in result.errors[0].message


def test_geometry_types_for_the_kind():
    line = shapely.LineString([INSIDE, (INSIDE[0] + 10, INSIDE[1])])
    mixed = shapely.GeometryCollection([pt(), line])
    result, _ = check({"UNITNO": ["a", "b", "c", "d"]}, [line, mixed, None, shapely.MultiPoint([pt()])])
    got = {e.row: e.message for e in result.errors}
    assert got[1] == "LineString is not allowed for street_furniture; use Point, Polygon, MultiPolygon"
    assert got[2].startswith("mixed geometry types in one feature (GeometryCollection)")
    assert got[3] == "geometry is missing or empty"
    assert 4 not in got  # a one-part MultiPoint is a Point
    result, _ = check({"DUCT_ID": ["a", "b"]}, [line, pt()], kind="duct")
    assert [e.row for e in result.errors] == [2]


def test_invalid_polygons_repaired_when_safe():
    x, y = INSIDE
    # A square with a repeated spike back along an edge: tiny change of area, repairable.
    spike = shapely.Polygon(
        [
            (x, y),
            (x + 100, y),
            (x + 100, y + 100),
            (x + 50, y + 100),
            (x + 50, y + 100.001),
            (x + 50, y + 100),
            (x, y + 100),
        ]
    )
    bowtie = shapely.Polygon([(x, y), (x + 100, y + 100), (x + 100, y), (x, y + 100)])
    result, _ = check({"UNITNO": ["a", "b"]}, [spike, bowtie], kind="public_building")
    if not shapely.is_valid(spike):
        assert [r.row for r in result.repairs] == [1]
        assert "repaired with make_valid" in result.repairs[0].message
    assert [e.row for e in result.errors] == [2]
    assert "cannot be repaired safely" in result.errors[0].message
    assert result.table.num_rows == 1
    assert shapely.is_valid(shapely.from_wkb(result.table.column("geom")[0].as_py()))


def test_absurdly_large_polygon():
    huge = shapely.box(500000, 150000, 560000, 210000)
    result, _ = check({"UNITNO": ["a"]}, [huge], kind="public_building")
    assert "is larger than the whole of Camden" in result.errors[0].message


@pytest.mark.slow
def test_a_large_batch_is_validated_whole():
    # Speed is measured by bench/bench_import.py, not asserted here.
    n = 200_000
    rng = np.random.default_rng(1)
    geoms = shapely.points(INSIDE[0] + rng.uniform(-500, 500, n), INSIDE[1] + rng.uniform(-500, 500, n))
    cols = {"UNITNO": [str(i) for i in range(n)], "TYPE": ["LC"] * n, "HEIGHT": ["8"] * n, "Ward": ["w"] * n}
    result, _ = check(cols, geoms)
    assert result.table.num_rows == n and not result.errors
    assert set(result.table.column("subtype").to_pylist()) == {"lamp_post"}
