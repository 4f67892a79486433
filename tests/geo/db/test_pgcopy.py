import datetime as dt

import pyarrow as pa
import pytest
import shapely

from geo.db import pgcopy


def test_round_trip_through_postgis(conn):
    point = shapely.to_wkb(shapely.Point(530000.5, 180000.25))
    line = shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)]))
    table = pa.table(
        {
            "t": pa.array(["a", None, "", "é ünïcode", "x" * 300], pa.string()),
            "f": pa.array([1.5, None, -0.0, 1e300, 8.0], pa.float64()),
            "i": pa.array([1, -2, None, 2**40, 0], pa.int64()),
            "b": pa.array([True, False, None, True, False], pa.bool_()),
            "d": pa.array(
                [dt.date(2020, 1, 31), None, dt.date(1999, 12, 31), dt.date(2000, 1, 1), None], pa.date32()
            ),
            "g": pa.array([point, line, None, point, point], pa.binary()),
            "y": pa.array([b"\x00\xff", None, b"", b"z", b"q"], pa.binary()),
        }
    )
    conn.execute(
        "CREATE TEMP TABLE rt (t text, f float8, i int8, b bool, d date, g geometry, y bytea) ON COMMIT DROP"
    )
    pgcopy.copy_table(conn, "rt", table)
    pgcopy.copy_table(conn, "rt", table.slice(1, 2))  # an offset slice
    rows = conn.execute("SELECT t, f, i, b, d, ST_AsText(g), y FROM rt").fetchall()
    expect = [
        ("a", 1.5, 1, True, dt.date(2020, 1, 31), "POINT(530000.5 180000.25)", b"\x00\xff"),
        (None, None, -2, False, None, "LINESTRING(0 0,1 1)", None),
        ("", -0.0, None, None, dt.date(1999, 12, 31), None, b""),
        ("é ünïcode", 1e300, 2**40, True, dt.date(2000, 1, 1), "POINT(530000.5 180000.25)", b"z"),
        ("x" * 300, 8.0, 0, False, None, "POINT(530000.5 180000.25)", b"q"),
    ]
    assert rows == expect + expect[1:3]


def test_empty_and_unsupported():
    assert pgcopy.encode(pa.table({"a": pa.array([], pa.string())})).size == 0
    with pytest.raises(TypeError):
        pgcopy.encode_field(pa.array([[1]]))
