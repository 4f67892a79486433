"""Demand layers: postcode households, the British National Grid grid, premises points."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.core.settings import DATA_DIR
from geo.coverage.demand import assign_boroughs, grid_centroids, grid_demand, points_demand, postcode_demand

CRS = "EPSG:27700"


@pytest.fixture(scope="module")
def london_boroughs():
    return gpd.read_file(DATA_DIR / "london_boroughs.geojson").to_crs(CRS)


def test_postcode_demand_sums_to_london_households():
    demand = postcode_demand()
    assert len(demand) == 181_216
    assert demand.crs == CRS
    assert abs(demand["households"].sum() - 3_266_173) <= 1
    assert (demand["households"] >= 0).all()
    assert demand["borough_code"].str.fullmatch(r"E09\d{6}").all()
    assert demand["borough_code"].nunique() == 33
    assert list(demand.columns) == ["postcode", "borough_code", "households", "geometry"]
    assert (demand.geom_type == "Point").all()
    assert demand["postcode"].is_unique


def test_postcode_demand_is_cached_copy():
    first = postcode_demand()
    first.loc[0, "households"] = -5
    assert postcode_demand().loc[0, "households"] >= 0


def test_postcode_demand_borough_totals_match_lsoas():
    demand = postcode_demand()
    lsoa = gpd.read_file(DATA_DIR / "london_lsoa_2011.geojson", columns=["LAD11CD", "HHOLDS"])
    expected = lsoa.groupby("LAD11CD")["HHOLDS"].sum()
    got = demand.groupby("borough_code")["households"].sum()
    # Postcodes are assigned by location, so a few straddle borough lines: within 1 %.
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=0.01)


def test_grid_demand_aligned_and_centroid_rule():
    area = shapely.Polygon([(10, 10), (160, 10), (160, 90), (10, 90)])
    cells = grid_demand(area, 50)
    # centroids at 25, 75, 125 (x) and 25, 75 (y) lie inside; 175 does not
    assert cells["cell_id"].tolist() == ["0_0", "50_0", "100_0", "0_50", "50_50", "100_50"]
    assert (cells["area_m2"] == 2500.0).all()  # full cells, not clipped
    np.testing.assert_allclose(cells.area, 2500.0)
    assert cells.crs == CRS
    bounds = cells.bounds
    assert (bounds % 50 == 0).all().all()
    np.testing.assert_allclose(cells.geometry.centroid.x, cells["x"])
    np.testing.assert_allclose(cells.geometry.centroid.y, cells["y"])


def test_grid_demand_multipolygon():
    area = shapely.MultiPolygon([shapely.box(0, 0, 100, 100), shapely.box(1000, 1000, 1100, 1050)])
    cells = grid_demand(area, 50)
    assert sorted(cells["cell_id"]) == sorted(["0_0", "50_0", "0_50", "50_50", "1000_1000", "1050_1000"])
    bare = grid_demand(area, 50, polygons=False)
    assert bare["cell_id"].tolist() == cells["cell_id"].tolist()
    assert bare.geometry.isna().all()
    assert len(grid_demand(shapely.Polygon(), 50)) == 0
    with pytest.raises(ValueError):
        grid_centroids(area, 0)


def test_grid_demand_with_boroughs():
    x0, y0 = 530_000, 180_000
    boroughs = gpd.GeoDataFrame(
        {"GSS_CODE": ["E09000001", "E09000002"]},
        geometry=[
            shapely.box(x0, y0, x0 + 1000, y0 + 1000),
            shapely.box(x0 + 1000, y0, x0 + 2000, y0 + 1000),
        ],
        crs=CRS,
    ).to_crs("EPSG:4326")  # any CRS
    cells = grid_demand(shapely.box(x0, y0, x0 + 2500, y0 + 1000), 250, boroughs=boroughs)
    codes = dict(zip(cells["cell_id"], cells["borough_code"], strict=True))
    assert len(codes) == 40
    assert codes["530250_180500"] == "E09000001" and codes["531500_180250"] == "E09000002"
    assert codes["532250_180000"] is None or codes["532250_180000"] != codes["532250_180000"]  # None/NaN


def test_assign_boroughs_boundary_goes_to_first():
    boroughs = gpd.GeoDataFrame(
        {"GSS_CODE": ["A", "B"]}, geometry=[shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)], crs=CRS
    )
    assert assign_boroughs(np.array([[10.0, 5.0], [15.0, 5.0], [25.0, 5.0]]), boroughs).tolist() == [
        "A",
        "B",
        None,
    ]


@pytest.mark.slow
def test_grid_demand_london_50m(london_boroughs):
    area = shapely.union_all(london_boroughs.geometry.values)
    cells = grid_demand(area, 50, boroughs=london_boroughs, polygons=False)
    # London is 1,572 km2: about 629,000 cells of 0.0025 km2
    assert 620_000 <= len(cells) <= 640_000
    assert abs(len(cells) * 2500 - area.area) / area.area < 0.001
    assert cells["cell_id"].is_unique
    assert cells["borough_code"].notna().all()
    assert len(grid_centroids(area, 50)) == len(cells)


def test_points_demand_normalises():
    premises = gpd.GeoDataFrame(
        {"weight": [2, 3], "name": ["a", "b"]},
        geometry=[shapely.Point(-0.1, 51.5), shapely.box(-0.1, 51.5, -0.099, 51.501)],
        crs="EPSG:4326",
    )
    out = points_demand(premises)
    assert out.crs == CRS
    assert out["households"].tolist() == [2.0, 3.0]
    assert "weight" not in out and out["name"].tolist() == ["a", "b"]
    assert (out.geom_type == "Point").all()
    x, y = out.geometry.x.iloc[0], out.geometry.y.iloc[0]
    assert 531_000 < x < 533_000 and 179_000 < y < 181_000

    plain = points_demand(gpd.GeoDataFrame(geometry=[shapely.Point(530000, 180000)], crs=CRS))
    assert plain["households"].tolist() == [1.0]
    assert plain.geometry.iloc[0].equals(shapely.Point(530000, 180000))


def test_points_demand_rejects_bad_input():
    with pytest.raises(ValueError, match="CRS"):
        points_demand(gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]))
    with pytest.raises(ValueError, match="households"):
        points_demand(gpd.GeoDataFrame({"households": [-1]}, geometry=[shapely.Point(0, 0)], crs=CRS))
    with pytest.raises(ValueError, match="lines"):
        points_demand(gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (1, 1)])], crs=CRS))
