"""A large re-import leaves out the rows equal to the stored assets before staging them.

The shortcut must find every change (else an upload would silently miss it) and should find
the unchanged rows (else it saves nothing); the counts, values and history it leads to are
those of comparing every row in the database.
"""

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyogrio
import pytest
import shapely
from typer.testing import CliRunner

from cli.main import app
from geo.reference import model
from geo.reference.boroughs import load_boroughs, read_boundaries
from geo.uploads.apply import compared
from geo.uploads.conversion import extra_json
from geo.uploads.staging import prepare_upload
from geo.uploads.unchanged import MIN_ROWS, StoredAssets, _equal

CAMDEN = "E09000007"
ROWS = MIN_ROWS + 2_000


def lamps(rows: int) -> gpd.GeoDataFrame:
    camden = read_boundaries().set_index("code").geometry[CAMDEN]
    rng = np.random.default_rng(11)
    x0, y0, x1, y1 = camden.bounds
    x, y = rng.uniform(x0, x1, 4 * rows), rng.uniform(y0, y1, 4 * rows)
    inside = shapely.contains_xy(camden.buffer(-60), x, y)
    x, y = np.round(x[inside][:rows], 2), np.round(y[inside][:rows], 2)
    return gpd.GeoDataFrame(
        {
            "UNITNO": [f"L{i:05d}" for i in range(rows)],
            "TYPE": rng.choice(["Lamp Column", "CCTV"], rows),
            "HEIGHT": np.where(rng.random(rows) < 0.1, np.nan, rng.choice([5.0, 6.5, 8.0], rows)),
            "OWNER": rng.choice(["Camden Council", "TfL", None], rows),
            "SURVEYED": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, rows)],
            "Ward": rng.choice(["Kentish Town", "Gospel Oak", "Holborn & Covent Garden", None], rows),
            "Lamps": rng.integers(1, 4, rows),
        },
        geometry=gpd.points_from_xy(x, y),
        crs=27700,
    )


def run_import(url: str, path, *extra: str) -> dict:
    result = CliRunner().invoke(
        app,
        ["import", str(path), "--borough", CAMDEN, "--kind", "street_furniture", *extra],
        env={"DATABASE_URL": url, "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT counts, changed_fields FROM uploads ORDER BY id DESC LIMIT 1").fetchone()


def test_a_reimport_stages_only_changes_and_ends_as_a_full_comparison_would(fresh_db_url, tmp_path):
    with psycopg.connect(fresh_db_url) as conn:
        model.migrate(conn)
        load_boroughs(conn)
        conn.commit()
    first = lamps(ROWS)
    pyogrio.write_dataframe(first, tmp_path / "v1.gpkg")
    counts, _ = run_import(fresh_db_url, tmp_path / "v1.gpkg")
    assert counts["new"] == ROWS

    second = first.copy()
    second.loc[second.index[:5], "HEIGHT"] = 12.0  # none had 12 m
    second.loc[second.index[5:8], "OWNER"] = "Network Rail"
    second.loc[second.index[8:10], "geometry"] = second.geometry.iloc[8:10].translate(1.0, 0.0)
    second.loc[second.index[10:12], "Ward"] = "Bloomsbury"
    second.loc[second.index[12], "Ward"] = "Kentish Town – Nord é"  # non-ASCII text in extra
    second.loc[second.index[13], "Lamps"] = 99
    removed = list(second["UNITNO"].iloc[20:24])
    second = second.drop(second.index[20:24])
    added = first.iloc[:3].copy()
    added["UNITNO"] = ["N1", "N2", "N3"]
    second = gpd.GeoDataFrame(pd.concat([second, added]), geometry="geometry", crs=27700)
    pyogrio.write_dataframe(second, tmp_path / "v2.gpkg")
    changed_ids = set(first["UNITNO"].iloc[:14])

    # The shortcut itself: exactly the changed and new rows are left to stage.
    with psycopg.connect(fresh_db_url) as conn:
        unchanged_before = conn.execute("SELECT count(*) FROM assets").fetchone()[0]
    stored = StoredAssets.read(fresh_db_url, CAMDEN, "street_furniture", compared("street_furniture"), ROWS)
    assert stored is not None and stored.table.num_rows == unchanged_before == ROWS
    staged, same = set(), 0
    with prepare_upload(tmp_path / "v2.gpkg", CAMDEN, "street_furniture") as upload:
        for batch in upload.batches():
            rest, unchanged = stored.split(batch)
            staged |= set(rest.column("source_id").to_pylist())
            same += len(unchanged)
    assert staged == changed_ids | {"N1", "N2", "N3"}
    assert same == len(second) - len(staged)
    # Beyond the limit, nothing is read and the database compares every row.
    assert StoredAssets.read(fresh_db_url, CAMDEN, "street_furniture", ["subtype"], ROWS - 1) is None

    counts, fields = run_import(fresh_db_url, tmp_path / "v2.gpkg", "--mode", "replace")
    assert (counts["new"], counts["changed"], counts["retired"]) == (3, 14, 4)
    assert counts["unchanged"] == len(second) - 3 - 14
    assert fields == {"height_m": 5, "owner": 3, "geom": 2, "extra": 4}
    with psycopg.connect(fresh_db_url) as conn:
        versions = dict(conn.execute("SELECT source_id, version FROM assets").fetchall())
        retired = {r[0] for r in conn.execute("SELECT source_id FROM assets WHERE retired_at IS NOT NULL")}
        history = conn.execute("SELECT count(*) FROM asset_versions").fetchone()[0]
        ward = conn.execute(
            "SELECT extra->>'Ward' FROM assets WHERE source_id = %s", [first["UNITNO"].iloc[12]]
        )
        assert ward.fetchone()[0] == "Kentish Town – Nord é"
    assert retired == set(removed)
    assert {s for s, v in versions.items() if v == 2} == changed_ids | set(removed)
    assert history == 14 + 4

    # The same file again: nothing changes, nothing is retired, no version is written.
    counts, fields = run_import(fresh_db_url, tmp_path / "v2.gpkg", "--mode", "replace")
    assert (counts["new"], counts["changed"], counts["retired"], counts["unchanged"]) == (
        0,
        0,
        0,
        len(second),
    )
    assert fields == {}
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM asset_versions").fetchone()[0] == history


@pytest.mark.parametrize(
    "columns",
    [
        {"Ward": ["Gospel Oak", None], "n": [1, 2]},
        {"a_long_key": [True, False], "b": [0.5, 12.0], "é": ["café – ✓", 'quote " and \\ back']},
        {"Z": ["line\nbreak", "tab\there"], "AA": [-3, 10**12]},
    ],
)
def test_extra_text_is_laid_out_as_postgresql_prints_jsonb(conn, columns):
    table = pa.table(columns)
    for text in extra_json(table, list(columns)).to_pylist():
        assert conn.execute("SELECT %s::jsonb::text", [text]).fetchone()[0] == text


def test_values_of_another_type_count_as_changed_and_an_unreadable_store_as_no_shortcut():
    same = pa.chunked_array([["a", None, "b"]])
    assert _equal(same, pa.chunked_array([["a", None, "c"]])).to_pylist() == [True, True, False]
    assert _equal(
        pa.chunked_array([["2020-01-01"]]), pa.chunked_array([[dt.date(2020, 1, 1)]])
    ).to_pylist() == [False]
    nowhere = "postgresql://nobody:secret@127.0.0.1:1/none"
    assert StoredAssets.read(nowhere, CAMDEN, "street_furniture", ["subtype"], 10) is None


def test_split_finds_the_same_rows_in_stored_order_shuffled_or_shifted():
    n = 1_000
    stored = pa.table(
        {
            "source_id": [f"S{i:04d}" for i in range(n)],
            "subtype": ["lamp_post"] * n,
            "height_m": [float(i % 7) if i % 5 else None for i in range(n)],
            "extra": ["{}"] * n,
            "geom": [shapely.to_wkb(shapely.Point(i, i)) for i in range(n)],
        }
    )
    assets = StoredAssets(stored, ["subtype", "height_m"])
    in_order = stored.slice(0, 300)
    shuffled = stored.take(np.random.default_rng(3).permutation(np.arange(300, 600)))
    shifted = stored.slice(600).filter(pa.array([i not in (650, 651) for i in range(600, n)]))
    changed = shifted.set_column(2, "height_m", pa.array([99.0] + shifted.column("height_m").to_pylist()[1:]))
    new = pa.table({c: stored.column(c).slice(0, 1) for c in stored.column_names}).set_column(
        0, "source_id", pa.array(["NEW"])
    )
    kept = 0
    for batch, left in ((in_order, []), (shuffled, []), (changed, ["S0600"]), (new, ["NEW"])):
        rest, same = assets.split(batch)
        assert rest.column("source_id").to_pylist() == left
        assert len(same) == batch.num_rows - len(left)
        kept += len(same)
    assert kept == n - 2 - 1
