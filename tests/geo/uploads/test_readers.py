import sqlite3
import zipfile

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo.core.row_errors import UploadRejected
from geo.uploads.batches import iter_batches
from geo.uploads.inspection import open_upload
from geo.uploads.source import ReadLimits
from geo.uploads.staging import prepare_upload

CAMDEN = "E09000007"
FORMATS = [
    ("gpkg", 27700),
    ("gpkg", 4326),
    ("geojson", 4326),
    ("geojson", 27700),
    ("fgb", 27700),
    ("fgb", 4326),
    ("kml", 4326),
    ("kmz", 4326),
    ("shp", 27700),
    ("shp", 4326),
    ("shp-noprj", 27700),
    ("shp-noprj", 4326),
    ("csv", 27700),
    ("csv", 4326),
    ("xlsx", 27700),
    ("xlsx", 4326),
]


def run(path, kind="street_furniture", **kw):
    with prepare_upload(path, CAMDEN, kind, **kw) as upload:
        tables = list(upload.batches())
        return upload.report, tables


@pytest.mark.parametrize(("fmt", "crs"), FORMATS)
def test_every_format_in_both_crs_reads_and_validates(samples, fmt, crs):
    path = samples.write(fmt, crs)
    report, tables = run(path, batch_size=64)
    assert report.error_count == 0, report.errors[:3]
    assert report.rows_valid == len(samples.stops) == sum(t.num_rows for t in tables)
    assert len(tables) == -(-len(samples.stops) // 64)
    table = tables[0]
    assert table.column("source_id").to_pylist()[:3] == samples.stops["UNITNO"].tolist()[:3]
    assert table.column("subtype").to_pylist()[:2] == ["lamp_post", "cctv_column"]
    assert table.column("status").unique().to_pylist() == ["in_service"]
    got = shapely.from_wkb(table.column("geom").to_numpy(zero_copy_only=False))
    want = samples.stops.geometry.to_numpy()[: len(got)]
    assert (
        shapely.distance(got, want).max() < 0.5
    )  # lon/lat round trips agree well inside the 2 m Helmert error
    mapping = report.mapping["columns"]
    if fmt not in ("kml", "kmz"):
        assert mapping["UNITNO"] == "source_id" and mapping["HEIGHT"] == "height_m"
        assert table.column("height_m").to_pylist()[:2] == [8.0, 10.0]
    assert mapping["WARD"] == "extra"
    if fmt == "shp-noprj":
        assert report.source["crs_inferred"]
        assert any("inferred from the coordinates" in n for n in report.notes)
        assert report.source["crs"] == f"EPSG:{crs}"


def test_csv_swapped_lat_lon_is_fixed_with_a_note(samples):
    path = samples.write("csv", 4326)
    frame = pd.read_csv(path).rename(columns={"Longitude": "Latitude", "Latitude": "Longitude"})
    frame.to_csv(path, index=False)
    report, _ = run(path)
    assert report.error_count == 0
    assert any("swapped" in n for n in report.notes)


@pytest.mark.parametrize("sep", [";", "|", "\t"])
def test_csv_other_delimiters_bom_and_latin1(samples, sep):
    path = samples.tmp / "lamps.csv"
    frame = pd.read_csv(samples.write("csv", 27700))
    frame.loc[0, "STREET"] = "Rue de la Paix, café"
    frame.to_csv(path, sep=sep, index=False, encoding="latin-1")
    report, tables = run(path)
    assert report.error_count == 0
    assert tables[0].column("name")[0].as_py() == "Rue de la Paix, café"
    assert any("Latin-1" in n for n in report.notes)
    frame.to_csv(path, sep=sep, index=False, encoding="utf-8-sig")
    report, tables = run(path)
    assert report.error_count == 0 and report.mapping["columns"]["UNITNO"] == "source_id"


def test_shapefile_latin1_without_cpg(samples):
    frame = samples.stops.copy()
    frame.loc[0, "STREET"] = "Café Row"
    path = samples.tmp / "latin.zip"
    samples.shapefile_zip(frame, path, cpg=False, encoding="latin1")
    report, tables = run(path)
    assert tables[0].column("name")[0].as_py() == "Café Row"
    assert any("ISO-8859-1" in n for n in report.notes)


def test_gpkg_several_layers_needs_a_name(samples):
    path = samples.write("gpkg")
    pyogrio.write_dataframe(samples.stops.head(5), path, layer="cctv", append=False)
    with pytest.raises(UploadRejected, match="several layers that could fit: 'lamps', 'cctv'") as err:
        open_upload(path)
    assert err.value.candidates == ["lamps", "cctv"]
    with pytest.raises(UploadRejected, match="no layer named 'nope'"):
        open_upload(path, layer="nope")
    report, _ = run(path, layer="cctv")
    assert report.rows_valid == 5
    # Only one layer holds lines: for ducts it is chosen without a name.
    pyogrio.write_dataframe(samples.ducts, path, layer="ducts")
    with open_upload(path, kind="duct") as info:
        assert info.layer == "ducts"


def test_z_and_m_coordinates_are_dropped_with_a_note(samples):
    frame = samples.stops.head(3).copy()
    frame.geometry = shapely.force_3d(frame.geometry.values, 12.0)
    path = samples.write("gpkg", frame=frame)
    report, tables = run(path)
    assert report.rows_valid == 3
    assert "Z and M coordinates were dropped (assets are stored in 2D)" in report.notes
    assert not shapely.has_z(shapely.from_wkb(tables[0].column("geom").to_numpy(zero_copy_only=False))).any()
    wkt = "POINT M ({x} {y} 7)"
    csv = samples.tmp / "m.csv"
    pd.DataFrame({"UNITNO": ["a"], "WKT": [wkt.format(x=529000, y=184000)]}).to_csv(csv, index=False)
    report, _ = run(csv)
    assert (
        report.rows_valid == 1
        and "Z and M coordinates were dropped (assets are stored in 2D)" in report.notes
    )


def test_nan_and_infinite_coordinates_are_row_errors(samples):
    path = samples.tmp / "nan.csv"
    pd.DataFrame(
        {"UNITNO": ["a", "b", "c", "d"], "Easting": [529000, np.nan, np.inf, "abc"], "Northing": [184000] * 4}
    ).to_csv(path, index=False)
    report, _ = run(path)
    assert report.rows_valid == 1
    assert [(e.row, e.source_id) for e in report.errors] == [(2, "b"), (3, "c"), (4, "d")]
    assert "are not finite numbers" in report.errors[1].message
    assert report.errors[1].column == "Easting"


def test_coordinates_far_outside_london_cannot_decide_crs(tmp_path):
    path = tmp_path / "far.csv"
    pd.DataFrame({"UNITNO": ["a"], "x": [1500.0], "y": [2500.0]}).to_csv(path, index=False)
    with pytest.raises(UploadRejected, match="cannot tell which CRS they are in"):
        open_upload(path)


def test_file_in_bng_outside_the_borough_is_row_errors(samples):
    path = samples.tmp / "leeds.csv"
    pd.DataFrame({"UNITNO": ["a"], "Easting": [530000.0], "Northing": [240000.0]}).to_csv(path, index=False)
    report, _ = run(path)
    assert "outside Camden (E09000007)" in report.errors[0].message


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("assets.dwg", b"x", "unexpected file extension '.dwg'"),
        ("assets.gpkg", b"", "the file is empty"),
        ("assets.csv", b"", "the file is empty"),
        ("assets.gpkg", b"SQLite format 3\x00" + b"\x00" * 50, "corrupted or truncated"),
        ("assets.zip", b"PK\x03\x04garbage", "not a readable zip archive"),
        ("assets.geojson", b'{"type": "FeatureCollection", "features": [', "corrupted or truncated"),
        ("assets.csv", b"a,b\n1,2\n", "no coordinate columns found"),
        ("assets.csv", b"UNITNO,Easting,Northing\n", "no rows"),
        (
            "assets.geojson",
            b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"h\xe9ight":1},'
            b'"geometry":{"type":"Point","coordinates":[-0.14,51.54]}}]}',
            "not valid UTF-8",
        ),
    ],
)
def test_broken_files_are_rejected_with_a_message(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadRejected, match=message) as err:
        open_upload(path)
    assert name in str(err.value)


def test_truncated_flatgeobuf_and_gpkg(samples):
    for fmt in ("fgb", "gpkg"):
        path = samples.write(fmt)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        with pytest.raises(UploadRejected, match="corrupted or truncated"):
            with prepare_upload(path, CAMDEN, "street_furniture") as upload:
                list(upload.batches())


def test_gpkg_with_no_layers(tmp_path):
    path = tmp_path / "empty.gpkg"
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 1196444487")
    con.execute("PRAGMA user_version = 10300")
    con.execute(
        "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY, organization TEXT, "
        "organization_coordsys_id INTEGER, definition TEXT, description TEXT)"
    )
    con.execute(
        "CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT, identifier TEXT, description TEXT, "
        "last_change DATETIME, min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER)"
    )
    con.commit()
    con.close()
    with pytest.raises(UploadRejected, match="the file has no layers"):
        open_upload(path)
    kml = tmp_path / "empty.kml"
    kml.write_text(
        '<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document></Document></kml>'
    )
    with pytest.raises(UploadRejected, match="empty.kml: the file has no layers"):
        open_upload(kml)


def test_size_limit(samples):
    path = samples.write("gpkg")
    with pytest.raises(UploadRejected, match="more than the limit of 0 MB"):
        open_upload(path, limits=ReadLimits(max_bytes=1000))


def test_zip_bomb_and_path_traversal(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("assets.shp", b"\x00" * 50_000_000)
    with pytest.raises(UploadRejected, match=r"compressed \d+ to 1.*zip bomb"):
        open_upload(bomb)
    with pytest.raises(UploadRejected, match="would expand to 48 MB.*zip bomb"):
        open_upload(bomb, limits=ReadLimits(max_uncompressed_bytes=10 * 2**20))
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/cron.d/x.shp", b"x")
    with pytest.raises(UploadRejected, match=r"'\.\./\.\./etc/cron\.d/x\.shp'.*path traversal"):
        open_upload(evil)
    absolute = tmp_path / "abs.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr(zipfile.ZipInfo("/tmp/x.shp"), b"x")
    with pytest.raises(UploadRejected, match="path traversal"):
        open_upload(absolute)


def test_zip_ignores_macosx_and_needs_all_parts(samples):
    path = samples.write("shp")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("__MACOSX/._assets.shp", b"junk")
    with open_upload(path) as info:
        assert info.format == "Shapefile"
    broken = samples.tmp / "nodbf.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.namelist():
            if not item.endswith(".dbf"):
                dst.writestr(item, src.read(item))
    with pytest.raises(UploadRejected, match="without .dbf"):
        open_upload(broken)


def test_reader_batches_are_bounded(samples):
    with open_upload(samples.write("geojson", 4326)) as info:
        sizes = [len(b) for b in iter_batches(info, 50)]
        rows = [b.rows[0] for b in iter_batches(info, 50)]
    assert sizes == [50, 50, 50, 50] and rows == [1, 51, 101, 151]


def test_wkt_column_and_xlsx_sheet_choice(samples):
    csv = samples.tmp / "wkt.csv"
    frame = pd.DataFrame({"UNITNO": ["a", "b"], "geometry": ["POINT (529000 184000)", "POINT (nonsense"]})
    frame.to_csv(csv, index=False)
    report, _ = run(csv)
    assert report.rows_valid == 1 and report.errors[0].message == "geometry: not valid WKT"
