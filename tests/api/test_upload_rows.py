"""``GET /uploads/{id}/rows.geojson``: an upload's valid and invalid rows as WGS84 points, for any format and CRS.

The uploads are dry runs on a database of this module's own; the rows kept by the job
(``upload_rows``) and the row errors are compared with the file sent.
"""

import geopandas as gpd
import numpy as np
import psycopg
import psycopg.types.json
import pyarrow as pa
import pytest
import shapely
from upload_helpers import send, wait

from geo.access.personal_data import Retention, purge
from geo.uploads.row_map import MAX_LIMIT, RowSample

# Greater London, generously: every point of a Camden file must fall well inside.
LONDON = (-0.52, 51.28, 0.34, 51.70)
BROKEN = {3: "height", 8: "outside", 12: "height"}  # 1-based rows of the file and what is wrong


@pytest.fixture(scope="module")
def client(isolated):
    return isolated.client


@pytest.fixture(scope="module")
def auth(isolated):
    return isolated.auth


def broken_lamps(samples, prefix: str) -> gpd.GeoDataFrame:
    """Camden's 200 sample lamps renamed ``prefix…``; rows 3 and 12 too low, row 8 in Bromley."""
    frame = samples.stops.copy()
    frame["UNITNO"] = prefix + frame["UNITNO"]
    frame.loc[[2, 11], "HEIGHT"] = -2.0
    frame.loc[7, "geometry"] = shapely.Point(540000, 168000)  # Bromley (EPSG:27700)
    return frame


def preview(client, auth, path, who="camden"):
    response = send(client, auth, path, who, kind="street_furniture", dry_run=True)
    assert response.status_code == 202, response.text
    record = wait(client, auth, response.json()["id"], who)
    assert record["state"] == "previewed", record
    return record


def rows_of(client, auth, upload_id, who="camden", **params):
    response = client.get(f"/uploads/{upload_id}/rows.geojson", params=params, headers=auth(who))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    return response.json()


@pytest.fixture(scope="module")
def csv_upload(client, auth, tmp_path_factory, camden_stops):
    """A CSV with eastings and northings (EPSG:27700, as boroughs export them) with three broken rows."""
    from types import SimpleNamespace

    from samples import write_table

    frame = broken_lamps(SimpleNamespace(stops=camden_stops), "BNG-")
    path = write_table(
        frame, tmp_path_factory.mktemp("bng") / "lamps-bng.csv", columns=("Easting", "Northing"), crs=27700
    )
    return SimpleNamespace(record=preview(client, auth, path), frame=frame)


def assert_in_london(features):
    xy = np.array([f["geometry"]["coordinates"] for f in features])
    assert xy.shape == (len(features), 2)
    west, south, east, north = LONDON
    assert (xy[:, 0] > west).all() and (xy[:, 0] < east).all(), xy[:, 0]
    assert (xy[:, 1] > south).all() and (xy[:, 1] < north).all(), xy[:, 1]


def test_a_bng_csv_comes_back_in_wgs84_with_its_rows_flagged_as_the_preview_counted(client, auth, csv_upload):
    record = csv_upload.record
    assert record["crs"] == "EPSG:27700" and record["format"] == "CSV"
    assert record["counts"]["valid"] == 197 and record["counts"]["invalid"] == 3
    assert record["report"]["map_rows"] == {"every": 1, "kept": 197}
    body = rows_of(client, auth, record["id"])
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == body["numberReturned"] == 200
    assert body["counts"] == {
        "valid": 197, "invalid": 3, "valid_kept": 197, "invalid_located": 3,
        "valid_returned": 197, "invalid_returned": 3,
    }  # fmt: skip
    features = body["features"]
    assert [f["properties"]["row"] for f in features] == list(range(1, 201))
    invalid = {f["properties"]["row"]: f["properties"] for f in features if not f["properties"]["valid"]}
    assert sorted(invalid) == sorted(BROKEN)
    assert [e["column"] for e in invalid[3]["errors"]] == ["HEIGHT"]
    assert "outside Camden" in invalid[8]["errors"][0]["message"]
    assert all(f["properties"]["errors"] == [] for f in features if f["properties"]["valid"])
    assert features[0]["properties"]["source_id"] == csv_upload.frame["UNITNO"][0]
    assert all(f["geometry"]["type"] == "Point" and f["id"] == f["properties"]["row"] for f in features)
    # Every point in WGS84 where the file put it (to 1e-6 degrees, the answer's precision).
    expected = csv_upload.frame.to_crs(4326).geometry
    got = np.array([f["geometry"]["coordinates"] for f in features])
    assert np.allclose(got[:, 0], expected.x, atol=2e-6) and np.allclose(got[:, 1], expected.y, atol=2e-6)
    assert_in_london([f for f in features if f["properties"]["row"] != 8])
    lon, lat = invalid_point = features[7]["geometry"]["coordinates"]
    assert -0.05 < lon < 0.1 and 51.35 < lat < 51.45, invalid_point  # Bromley, drawn where it is


def test_the_limit_samples_evenly_the_same_way_every_time_rows_with_errors_first(client, auth, csv_upload):
    upload_id = csv_upload.record["id"]
    ten = rows_of(client, auth, upload_id, limit=10)
    assert ten["numberReturned"] == len(ten["features"]) == 10 and ten["numberMatched"] == 200
    assert ten["counts"]["invalid_returned"] == 3 and ten["counts"]["valid_returned"] == 7
    rows = [f["properties"]["row"] for f in ten["features"] if f["properties"]["valid"]]
    gaps = np.diff(rows)
    assert gaps.min() >= 25 and gaps.max() <= 32, rows  # 197 valid rows, 7 taken: about 28 apart
    assert rows_of(client, auth, upload_id, limit=10) == ten
    # Rows with errors take up to half the limit when the valid rows fill the rest.
    four = rows_of(client, auth, upload_id, limit=4)
    assert [f["properties"]["valid"] for f in four["features"]].count(False) == 2
    assert four["numberReturned"] == 4
    one = rows_of(client, auth, upload_id, limit=1)
    assert one["numberReturned"] == 1 and one["features"][0]["properties"]["valid"] is False


def test_a_geopackage_of_ducts_is_mapped_as_a_point_on_each_line(client, auth, samples):
    ducts = samples.ducts.copy()
    ducts["DUCT_ID"] = "MAPD-" + ducts["DUCT_ID"]
    path = samples.tmp / "ducts.gpkg"
    ducts.to_file(path, layer="ducts", driver="GPKG")
    response = send(client, auth, path, kind="duct", dry_run=True)
    record = wait(client, auth, response.json()["id"])
    assert record["state"] == "previewed" and record["format"] == "GeoPackage", record
    body = rows_of(client, auth, record["id"])
    assert body["numberReturned"] == len(ducts)
    valid = [f["properties"]["valid"] for f in body["features"]]
    assert (
        valid.count(True) == record["counts"]["valid"] and valid.count(False) == record["counts"]["invalid"]
    )
    assert_in_london(body["features"])
    # Each point lies on its duct (within a metre, after the round trip through WGS84).
    points = gpd.GeoSeries(
        [shapely.Point(f["geometry"]["coordinates"]) for f in body["features"]], crs=4326
    ).to_crs(27700)
    assert (points.distance(ducts.geometry.reset_index(drop=True)) < 1.0).all()


def test_who_may_see_the_rows_is_who_may_see_the_upload(client, auth, csv_upload):
    upload_id = csv_upload.record["id"]
    other = client.get(f"/uploads/{upload_id}/rows.geojson", headers=auth("hackney"))
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    assert (
        other.status_code
        == client.get(f"/uploads/{upload_id}/errors.geojson", headers=auth("hackney")).status_code
    )
    operator = client.get(f"/uploads/{upload_id}/rows.geojson", headers=auth("operator"))
    assert operator.status_code == 403
    assert client.get(f"/uploads/{upload_id}/rows.geojson").status_code == 401
    assert rows_of(client, auth, upload_id, who="admin")["numberMatched"] == 200
    missing = client.get("/uploads/987654321/rows.geojson", headers=auth("admin"))
    assert missing.status_code == 404 and "no upload has id 987654321" in missing.json()["detail"]


@pytest.mark.parametrize(
    "limit", ["0", "-1", str(MAX_LIMIT + 1), "abc", "1e3", "nan", "inf", "9" * 400, "²", "0x10"]
)
def test_hostile_limits_are_a_400_that_names_the_limit(client, auth, csv_upload, limit):
    response = client.get(
        f"/uploads/{csv_upload.record['id']}/rows.geojson", params={"limit": limit}, headers=auth("camden")
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json" and "limit" in problem["detail"]
    assert problem["errors"][0]["where"] == "query.limit"


def test_an_upload_not_read_yet_or_rejected_whole_has_no_rows_to_map(client, auth, isolated, csv_upload):
    upload_id = csv_upload.record["id"]
    url = f"/uploads/{upload_id}/rows.geojson"
    answers = {}
    with psycopg.connect(isolated.url, autocommit=True) as conn:
        (report,) = conn.execute("SELECT report FROM uploads WHERE id = %s", [upload_id]).fetchone()
        try:
            for state in ("queued", "running"):
                conn.execute("UPDATE uploads SET state = %s WHERE id = %s", [state, upload_id])
                answers[state] = client.get(url, headers=auth("camden"))
            # As a job leaves a file refused whole (truncated, say): a report without rows.
            conn.execute(
                """UPDATE uploads SET state = 'rejected', message = 'the file is truncated at row 12',
                          report = '{"rejected": {"message": "the file is truncated at row 12"}}' WHERE id = %s""",
                [upload_id],
            )
            answers["rejected"] = client.get(url, headers=auth("camden"))
        finally:
            conn.execute(
                "UPDATE uploads SET state = 'previewed', message = NULL, report = %s WHERE id = %s",
                [psycopg.types.json.Jsonb(report), upload_id],
            )
    for state in ("queued", "running"):
        assert answers[state].status_code == 409 and f"is {state}" in answers[state].json()["detail"]
    rejected = answers["rejected"]
    assert rejected.status_code == 409 and rejected.headers["content-type"] == "application/problem+json"
    assert "has no rows to map: the file is truncated at row 12" in rejected.json()["detail"]
    assert rows_of(client, auth, upload_id)["numberMatched"] == 200


def test_applied_uploads_keep_their_rows_until_the_retention_purge(client, auth, isolated, samples):
    frame = broken_lamps(samples, "KEEP-")
    path = samples.write("gpkg", frame=frame.drop(index=[2, 7, 11]).reset_index(drop=True))
    record = preview(client, auth, path)
    assert client.post(f"/uploads/{record['id']}/apply", headers=auth("camden")).status_code == 202
    applied = wait(client, auth, record["id"])
    assert applied["state"] == "applied" and applied["report"]["map_rows"]["kept"] == 197
    assert rows_of(client, auth, record["id"])["numberReturned"] == 197
    with psycopg.connect(isolated.url) as conn:
        conn.execute(
            "UPDATE uploads SET finished_at = now() - interval '400 days' WHERE id = %s", [record["id"]]
        )
        conn.commit()
        purge(conn, Retention(upload_files_days=100_000, upload_errors_days=30, report_points_days=100_000))
        left = conn.execute(
            "SELECT count(*) FROM upload_rows WHERE upload_id = %s", [record["id"]]
        ).fetchone()
    assert left == (0,)
    gone = client.get(f"/uploads/{record['id']}/rows.geojson", headers=auth("camden"))
    assert gone.status_code == 410 and "retention" in gone.json()["detail"]


def batch(rows: np.ndarray) -> pa.Table:
    points = shapely.points(np.column_stack([530000 + rows, 180000 + rows]))
    return pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "source_id": pa.array([f"S{r}" for r in rows]),
            "geom": pa.array(shapely.to_wkb(points), pa.binary()),
        }
    )


def test_the_kept_sample_is_bounded_evenly_spaced_and_the_same_whatever_the_batches():
    rows = np.arange(1, 10_001)
    one, many = RowSample(cap=1000), RowSample(cap=1000)
    one.add(batch(rows))
    for part in np.array_split(rows, 37):
        many.add(batch(part))
    assert len(one) == len(many) <= 1000 and len(one) > 500
    assert one.every == many.every == 16
    kept = one.table(7)
    assert kept.equals(many.table(7))
    assert (np.diff(kept.column("row_number").to_numpy()) == 16).all()
    assert kept.column("upload_id").to_pylist() == [7] * len(one)
    assert kept.column("x").to_numpy()[0] == 530001 and kept.column("source_id")[0].as_py() == "S1"
    assert RowSample().table(1).num_rows == 0
