"""A first import into an empty assets table builds the indexes after the insert, as they were."""

from urllib.parse import urlsplit

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import shapely
from servers import with_dbname
from typer.testing import CliRunner

from cli.main import app
from geo.reference import model
from geo.reference.boroughs import load_boroughs, read_boundaries

INDEXES = """SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisprimary
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = 'assets'::regclass ORDER BY 1"""


def test_first_import_into_an_empty_table_keeps_every_index(fresh_db_url, app_server_url, tmp_path):
    with psycopg.connect(fresh_db_url) as conn:
        model.migrate(conn)
        load_boroughs(conn)
        conn.commit()
        before = conn.execute(INDEXES).fetchall()
    assert {"assets_pkey", "assets_source_key", "assets_geom_gix", "assets_geom_3857_gix"} <= {
        r[0] for r in before
    }
    camden = read_boundaries().set_index("code").geometry["E09000007"]
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = camden.bounds
    x, y = rng.uniform(x0, x1, 40_000), rng.uniform(y0, y1, 40_000)
    inside = shapely.contains_xy(camden.buffer(-60), x, y)
    x, y = x[inside][:12_000], y[inside][:12_000]
    frame = gpd.GeoDataFrame(
        {"UNITNO": [f"E{i:05d}" for i in range(len(x))], "TYPE": "Lamp Column"},
        geometry=gpd.points_from_xy(x, y),
        crs=27700,
    )
    path = tmp_path / "lamps.gpkg"
    pyogrio.write_dataframe(frame, path)
    # As the service's role: the indexes are dropped and built by the owner's functions (0014).
    app_url = with_dbname(app_server_url, urlsplit(fresh_db_url).path.lstrip("/"))
    result = CliRunner().invoke(
        app,
        ["import", str(path), "--borough", "E09000007", "--kind", "street_furniture"],
        env={"DATABASE_URL": app_url, "CONNECTIVITY_DB_OWNER_URL": fresh_db_url, "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 12_000
        assert conn.execute(INDEXES).fetchall() == before  # all valid, the primary key still primary
        duplicate = conn.execute(
            """INSERT INTO assets (borough_code, kind, subtype, source_id, geom)
               SELECT borough_code, kind, subtype, source_id, geom FROM assets LIMIT 1
               ON CONFLICT (borough_code, kind, source_id) DO NOTHING RETURNING id"""
        ).fetchone()
        assert duplicate is None  # the unique key is back, and upserts find it
        inside_box = conn.execute(
            """SELECT count(*) FROM assets WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 27700)""",
            [x0, y0, (x0 + x1) / 2, y1],
        ).fetchone()[0]
        assert inside_box == int(((x >= x0) & (x <= (x0 + x1) / 2)).sum())
