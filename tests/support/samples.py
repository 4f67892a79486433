"""Sample upload files generated with pyogrio from the real data in ``data/`` (bus stops, boundaries, postcodes).

A pytest plugin (``pytest_plugins`` in ``conftest.py``): its fixtures serve every test package.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo.core.settings import DATA_DIR

CAMDEN = "E09000007"


@pytest.fixture(scope="session")
def camden_stops() -> gpd.GeoDataFrame:
    """Camden's bus stops with the column names boroughs use for street lighting."""
    raw = pd.read_csv(DATA_DIR / "tfl_bus_stops.csv")
    raw = raw[raw["BOROUGH_GSS"] == CAMDEN].head(200).reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "UNITNO": raw["Stop_Code_LBSL"].astype(str),
            "TYPE": np.where(np.arange(len(raw)) % 2 == 0, "Lamp Column", "CCTV"),
            "HEIGHT": np.where(np.arange(len(raw)) % 3 == 0, 8.0, 10.0),
            "STATUS": "Live",
            "STREET": raw["Stop_Name"],
            "WARD": "Camden Town",
        }
    )
    return gpd.GeoDataFrame(
        frame, geometry=gpd.points_from_xy(raw["Location_Easting"], raw["Location_Northing"]), crs=27700
    )


@pytest.fixture(scope="session")
def camden_ducts() -> gpd.GeoDataFrame:
    """Synthetic duct lines joining consecutive Camden postcode centroids."""
    pc = pd.read_csv(DATA_DIR / "london_postcodes_codepoint_2014.csv")
    pc = pc[pc["LAD_GSS"] == CAMDEN].head(101).reset_index(drop=True)
    xy = pc[["EASTING", "NORTHING"]].to_numpy(float)
    lines = [shapely.LineString([xy[i], xy[i + 1]]) for i in range(len(xy) - 1)]
    frame = pd.DataFrame({"DUCT_ID": [f"D{i:04d}" for i in range(len(lines))], "DIA_MM": 100, "TYPE": "Duct"})
    return gpd.GeoDataFrame(frame, geometry=lines, crs=27700)


def write_shapefile_zip(
    frame: gpd.GeoDataFrame, dest: Path, *, prj: bool = True, cpg: bool = True, **kw
) -> Path:
    """Write a Shapefile and zip its parts (optionally without .prj or .cpg)."""
    folder = dest.parent / (dest.stem + "_parts")
    folder.mkdir()
    pyogrio.write_dataframe(frame, folder / "assets.shp", **kw)
    with zipfile.ZipFile(dest, "w") as zf:
        for part in sorted(folder.iterdir()):
            if (part.suffix == ".prj" and not prj) or (part.suffix == ".cpg" and not cpg):
                continue
            zf.write(part, part.name)
    return dest


def write_table(
    frame: gpd.GeoDataFrame,
    dest: Path,
    *,
    columns: tuple[str, str],
    crs: int,
    sep: str = ",",
    encoding: str = "utf-8",
    swap: bool = False,
) -> Path:
    """Write points as a CSV or XLSX table with coordinate columns named ``columns``."""
    pts = frame.geometry.to_crs(crs)
    x, y = pts.x.to_numpy(), pts.y.to_numpy()
    if swap:
        x, y = y, x
    table = pd.DataFrame(frame.drop(columns="geometry"))
    table[columns[0]] = x
    table[columns[1]] = y
    if dest.suffix == ".xlsx":
        pyogrio.write_dataframe(table, dest, driver="XLSX")
    else:
        table.to_csv(dest, sep=sep, index=False, encoding=encoding)
    return dest


@pytest.fixture
def samples(
    tmp_path: Path, camden_stops: gpd.GeoDataFrame, camden_ducts: gpd.GeoDataFrame
) -> SimpleNamespace:
    """Writers of sample files into ``tmp_path``: ``samples.write(fmt, crs=...)`` returns the path."""

    def write(
        fmt: str, crs: int = 27700, frame: gpd.GeoDataFrame | None = None, name: str = "assets"
    ) -> Path:
        data = (camden_stops if frame is None else frame).to_crs(crs)
        if fmt == "gpkg":
            path = tmp_path / f"{name}.gpkg"
            pyogrio.write_dataframe(data, path, layer="lamps")
        elif fmt == "geojson":
            path = tmp_path / f"{name}.geojson"
            pyogrio.write_dataframe(data, path, driver="GeoJSON")
        elif fmt == "fgb":
            path = tmp_path / f"{name}.fgb"
            pyogrio.write_dataframe(data, path, driver="FlatGeobuf", SPATIAL_INDEX="NO")  # keep row order
        elif fmt == "kml":
            path = tmp_path / f"{name}.kml"
            pyogrio.write_dataframe(data.to_crs(4326), path, driver="KML")
        elif fmt == "kmz":
            path = tmp_path / f"{name}.kmz"
            pyogrio.write_dataframe(data.to_crs(4326), path, driver="LIBKML")
        elif fmt == "shp":
            path = write_shapefile_zip(data, tmp_path / f"{name}.zip")
        elif fmt == "shp-noprj":
            path = write_shapefile_zip(data, tmp_path / f"{name}.zip", prj=False)
        elif fmt == "csv":
            cols = ("Easting", "Northing") if crs == 27700 else ("Longitude", "Latitude")
            path = write_table(data, tmp_path / f"{name}.csv", columns=cols, crs=crs)
        elif fmt == "xlsx":
            cols = ("X", "Y") if crs == 27700 else ("lon", "lat")
            path = write_table(data, tmp_path / f"{name}.xlsx", columns=cols, crs=crs)
        else:
            raise ValueError(fmt)
        return path

    return SimpleNamespace(
        write=write, shapefile_zip=write_shapefile_zip, stops=camden_stops, ducts=camden_ducts, tmp=tmp_path
    )
