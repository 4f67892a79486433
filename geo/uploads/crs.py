"""The CRS of a received file: declared, or inferred from where its coordinates lie; and the
reprojection of each read batch to 2D British National Grid (EPSG:27700).
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS, Transformer

from geo.core.row_errors import UploadRejected
from geo.uploads.source import SourceInfo

BNG = CRS.from_epsg(27700)
WGS84 = CRS.from_epsg(4326)

# Coordinate ranges (DOMAIN.md): London in BNG is about E 500k-565k, N 155k-205k and in WGS84 about
# lon -0.52..0.34, lat 51.28..51.70. The windows below are wider so that a file reaching a little
# past London is still recognised; whatever lies outside the borough is a row error later.
BNG_WINDOW = ((400_000, 660_000), (100_000, 260_000))
LONLAT_WINDOW = ((-2.0, 1.5), (50.8, 52.3))


def _in(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (values >= lo) & (values <= hi)


def decide_crs(info: SourceInfo, declared: CRS | None, x: np.ndarray, y: np.ndarray) -> None:
    """Choose the source CRS and axis order; infer from coordinate ranges when the file has none."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) == 0:
        if declared is None:
            raise UploadRejected(
                "the file has no CRS and no finite coordinates to infer one from",
                file=info.file_name,
                layer=info.layer,
            )
        _set_crs(info, declared, inferred=False)
        return
    mx, my = float(np.median(x)), float(np.median(y))
    looks_lonlat = bool(
        _in(np.array([mx]), *LONLAT_WINDOW[0])[0] and _in(np.array([my]), *LONLAT_WINDOW[1])[0]
    )
    looks_latlon = bool(
        _in(np.array([my]), *LONLAT_WINDOW[0])[0] and _in(np.array([mx]), *LONLAT_WINDOW[1])[0]
    )
    looks_bng = bool(_in(np.array([mx]), *BNG_WINDOW[0])[0] and _in(np.array([my]), *BNG_WINDOW[1])[0])
    where = f"median x={mx:.6g}, y={my:.6g}"
    if declared is not None and not declared.is_geographic:
        _set_crs(info, declared, inferred=False)
        return
    if declared is not None and declared.is_geographic:
        if looks_latlon:
            _set_crs(info, declared, inferred=False, swap=True)
            info.note(f"latitude and longitude are swapped in the file ({where}); swapped them back")
        elif looks_bng:
            _set_crs(info, BNG, inferred=True)
            info.note(
                f"the file says {_crs_name(declared)} but its coordinates are British National Grid ({where}); "
                "read them as EPSG:27700"
            )
        else:
            _set_crs(info, declared, inferred=False)
        return
    if looks_bng:
        _set_crs(info, BNG, inferred=True)
        info.note(
            f"the file has no CRS; British National Grid (EPSG:27700) inferred from the coordinates ({where})"
        )
    elif looks_lonlat:
        _set_crs(info, WGS84, inferred=True)
        info.note(
            f"the file has no CRS; WGS84 longitude/latitude (EPSG:4326) inferred from the coordinates ({where})"
        )
    elif looks_latlon:
        _set_crs(info, WGS84, inferred=True, swap=True)
        info.note(
            f"the file has no CRS; WGS84 inferred, with latitude and longitude swapped in the file ({where}); "
            "swapped them back"
        )
    else:
        raise UploadRejected(
            f"the file has no CRS and its coordinates ({where}) are neither British National Grid near London "
            "(easting 500,000-565,000, northing 155,000-205,000) nor longitude/latitude near London "
            "(-0.52..0.34, 51.28..51.70); cannot tell which CRS they are in. Send the file with its CRS "
            "(for a Shapefile, the .prj)",
            file=info.file_name,
            layer=info.layer,
        )


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _set_crs(info: SourceInfo, crs: CRS, *, inferred: bool, swap: bool = False) -> None:
    info.source_crs = crs
    info.crs = _crs_name(crs)
    info.crs_inferred = inferred
    info.swap_axes = swap


def to_bng(info: SourceInfo, geoms: np.ndarray) -> np.ndarray:
    """Geometries as 2D EPSG:27700, axes swapped back where the file had them swapped."""
    present = ~shapely.is_missing(geoms)
    if present.any() and (shapely.has_z(geoms[present]).any() or shapely.has_m(geoms[present]).any()):
        info.note("Z and M coordinates were dropped (assets are stored in 2D)")
        geoms = geoms.copy()
        geoms[present] = shapely.force_2d(geoms[present])
    crs = info.source_crs
    assert crs is not None
    if crs == BNG and not info.swap_axes:
        return geoms
    transformer = None if crs == BNG else Transformer.from_crs(crs, BNG, always_xy=True)
    swap = info.swap_axes

    def convert(coords: np.ndarray) -> np.ndarray:
        if swap:
            coords = coords[:, ::-1]
        if transformer is None:
            return np.ascontiguousarray(coords)
        ex, ny = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([ex, ny])

    return shapely.transform(geoms, convert)
