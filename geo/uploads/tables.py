"""The layers and columns of a received file: which layer to read, its fields, and for tables
(CSV, XLSX) the columns that hold the coordinates, read as text in chunks.

:func:`open_ogr` and :func:`open_csv` fill in a :class:`~geo.uploads.source.SourceInfo` (layer,
columns, row count, CRS) or reject the file; :func:`table_chunks` and :func:`table_geometry` are
what :mod:`geo.uploads.batches` reads tables with.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from geo.core.row_errors import UploadRejected
from geo.uploads import file_checks
from geo.uploads.crs import decide_crs
from geo.uploads.source import GEOMETRY_FAMILIES, SourceInfo, ogr_batches, ogr_error, ogr_options, read_info

_NORMALISE = re.compile(r"[^0-9a-z]+")
LON_NAMES = re.compile(r"^(lon|long|lng|longitude|.*longitude|.*_lon|.*_lng|x_lon)$")
LAT_NAMES = re.compile(r"^(lat|latitude|.*latitude|.*_lat|y_lat)$")
WKT_NAMES = {"wkt", "geom", "geometry", "the_geom", "shape", "wkt_geom", "geom_wkt", "wkt_geometry"}
DELIMITERS = (",", ";", "\t", "|")


def open_ogr(info: SourceInfo, layer: str | None, kind: str | None) -> None:
    """Choose the layer of a GIS file or spreadsheet, read its fields, row count and CRS into ``info``."""
    options = ogr_options(info)  # GDAL hardened by open_upload
    chosen = _choose_layer(info, layer, kind, options)
    info.layer = chosen
    meta = read_info(info, chosen, **options)
    if info.format == "Shapefile" and meta.get("encoding") and meta["encoding"].upper() != "UTF-8":
        info.encoding = meta["encoding"]
        info.note(f"attribute text read as {meta['encoding']} (no .cpg file says otherwise)")
        meta = read_info(info, chosen, encoding=info.encoding, **options)
    features = meta.get("features")
    info.row_count = None if features is None or features < 0 else int(features)
    if info.row_count == 0:
        raise UploadRejected("the layer has no features (empty)", file=info.file_name, layer=chosen)
    fields = [str(f) for f in meta["fields"]]
    if len(fields) > info.limits.max_columns:
        raise UploadRejected(
            f"the layer has {len(fields):,} columns, more than the limit of {info.limits.max_columns:,}",
            file=info.file_name,
            layer=chosen,
        )
    if info.format == "XLSX":
        _choose_table_coordinates(info, fields, layer=chosen)
        info.columns = [f for f in fields if f not in info.geometry_columns]
        x, y = _table_sample(info)
        decide_crs(info, None, x, y)
        return
    info.columns = fields
    info.geometry_type = meta.get("geometry_type")
    if info.geometry_type is None:
        raise UploadRejected("the layer has no geometry column", file=info.file_name, layer=chosen)
    _layer_crs(info, chosen, meta.get("crs"))


def _choose_layer(info: SourceInfo, layer: str | None, kind: str | None, options: dict[str, Any]) -> str:
    """The layer named, the only one, or the only one that could fit ``kind``; else a rejection."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            listed = pyogrio.list_layers(info.read_path)
    except Exception as exc:
        raise ogr_error(info, exc) from None
    layers = [str(row[0]) for row in listed]
    info.layers = layers
    if not layers:
        raise UploadRejected("the file has no layers", file=info.file_name)
    if layer is not None:
        if layer not in layers:
            raise UploadRejected(
                f"no layer named {layer!r}; the file has {', '.join(map(repr, layers))}",
                file=info.file_name,
                value=layer,
                candidates=layers,
            )
        return layer
    if len(layers) == 1:
        return layers[0]
    fitting = [name for name in layers if _layer_fits(info, name, kind, options)]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        raise UploadRejected(
            f"none of the layers ({', '.join(map(repr, layers))}) holds "
            f"{'features of a usable geometry type' if kind else 'features'}; name one with layer",
            file=info.file_name,
            candidates=layers,
        )
    raise UploadRejected(
        f"the file has several layers that could fit: {', '.join(map(repr, fitting))}; "
        "say which one to read (layer)",
        file=info.file_name,
        candidates=fitting,
    )


def _layer_crs(info: SourceInfo, layer: str, declared: str | None) -> None:
    """Decide the CRS of a GIS layer from the one it declares and the centres of its first features."""
    source_crs = None
    if declared:
        try:
            source_crs = CRS.from_user_input(declared)
        except Exception:
            info.note(f"the file's CRS could not be understood ({declared[:60]}); inferring it instead")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, bounds = pyogrio.read_bounds(info.read_path, layer=layer, max_features=info.limits.crs_sample)
    except Exception as exc:
        raise ogr_error(info, exc, layer) from None
    x = (bounds[0] + bounds[2]) / 2
    y = (bounds[1] + bounds[3]) / 2
    decide_crs(info, source_crs, x, y)


def _layer_fits(info: SourceInfo, name: str, kind: str | None, options: dict[str, Any]) -> bool:
    try:
        meta = read_info(info, name, **options)
    except UploadRejected:
        return False
    if meta.get("features") == 0:
        return False
    if info.format == "XLSX":
        fields = [_normalise(str(f)) for f in meta["fields"]]
        return _coordinate_columns(fields) is not None
    gtype = meta.get("geometry_type")
    if gtype is None:
        return False
    if kind is None or gtype.startswith(("Unknown", "Geometry")):
        return True
    return any(fam in gtype for fam in GEOMETRY_FAMILIES.get(kind, ()))


def _normalise(name: str) -> str:
    return _NORMALISE.sub("_", name.strip().lower()).strip("_")


def _coordinate_columns(normalised: list[str]) -> tuple[str, tuple[int, ...]] | None:
    """``(mode, column indexes)``: ``bng``/``xy``/``lonlat`` with (x, y), or ``wkt`` with (col,)."""

    def find(pattern: re.Pattern[str], exclude: re.Pattern[str] | None = None) -> int | None:
        for i, n in enumerate(normalised):
            squashed = n.replace("_", "")
            if (pattern.match(n) or pattern.match(squashed)) and not (exclude and exclude.match(n)):
                return i
        return None

    for xs, ys, mode in (("easting", "northing", "bng"), ("eastings", "northings", "bng")):
        x = next((i for i, n in enumerate(normalised) if n.replace("_", "").endswith(xs)), None)
        y = next((i for i, n in enumerate(normalised) if n.replace("_", "").endswith(ys)), None)
        if x is not None and y is not None:
            return mode, (x, y)
    x = next(
        (i for i, n in enumerate(normalised) if n in ("x", "xcoord", "x_coord", "point_x", "coord_x")), None
    )
    y = next(
        (i for i, n in enumerate(normalised) if n in ("y", "ycoord", "y_coord", "point_y", "coord_y")), None
    )
    if x is not None and y is not None:
        return "xy", (x, y)
    lon, lat = find(LON_NAMES), find(LAT_NAMES)
    if lon is not None and lat is not None:
        return "lonlat", (lon, lat)
    wkt = next((i for i, n in enumerate(normalised) if n in WKT_NAMES), None)
    if wkt is not None:
        return "wkt", (wkt,)
    return None


def _choose_table_coordinates(info: SourceInfo, fields: list[str], layer: str | None = None) -> None:
    found = _coordinate_columns([_normalise(f) for f in fields])
    if found is None:
        raise UploadRejected(
            "no coordinate columns found: name them easting/northing, x/y, lon/lat (or lat/long, lng), "
            f"or give a WKT column; the columns are {', '.join(map(repr, fields))}",
            file=info.file_name,
            layer=layer,
        )
    mode, idx = found
    info.coords = (mode, *(fields[i] for i in idx))
    info.geometry_columns = [fields[i] for i in idx]


def open_csv(info: SourceInfo) -> None:
    """Read a CSV's encoding, delimiter, columns, coordinate columns, row count and CRS into ``info``."""
    assert info.read_path is not None
    checks = info.limits.checks()
    with open(info.read_path, "rb") as raw:
        first = raw.readline(checks.max_line_bytes + 1)
    # Columns first: a header of a million columns is refused before anything else reads it.
    file_checks.check_csv_header(
        first, max(DELIMITERS, key=lambda d: first.count(d.encode())), info.file_name, checks
    )
    encoding, lines, info.longest_line = file_checks.scan_text(info.read_path, info.file_name, checks)
    info.encoding = encoding
    if encoding == "latin-1":
        info.note("the file is not valid UTF-8; its text was read as Latin-1")
    with open(info.read_path, encoding=encoding, newline="") as f:
        header = f.readline()
    if not header.strip():
        raise UploadRejected(
            "the first line is empty; the first line must name the columns", file=info.file_name
        )
    counts = {d: header.count(d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        delimiter = ","
    info.delimiter = delimiter
    if delimiter != ",":
        info.note(f"columns are separated by {'tab' if delimiter == chr(9) else repr(delimiter)}")
    info.layers = [info.read_path.stem]
    info.layer = info.read_path.stem
    try:
        head = pd.read_csv(info.read_path, sep=delimiter, encoding=encoding, dtype=str, nrows=0)
    except Exception as exc:
        raise UploadRejected(
            f"cannot read the CSV header: {info.scrub(str(exc))}", file=info.file_name
        ) from None
    fields = [str(c) for c in head.columns]
    _choose_table_coordinates(info, fields)
    info.columns = [f for f in fields if f not in info.geometry_columns]
    info.row_count = max(lines - 1, 0)
    x, y = _table_sample(info)
    if len(x) == 0 and info.row_count <= 0:
        raise UploadRejected("the file has a header but no rows (empty)", file=info.file_name)
    decide_crs(info, None, x, y)


def table_chunks(info: SourceInfo, batch_size: int, limit: int | None = None) -> Iterator[pd.DataFrame]:
    """The table as text, in chunks (no row limit when ``limit`` is None).

    A CSV chunk holds at most ``batch_bytes`` of text: with long lines, fewer rows.
    """
    if info.format == "CSV":
        rows = max(1, min(batch_size, info.limits.batch_bytes // max(info.longest_line, 1)))
        try:
            reader = pd.read_csv(
                info.read_path,
                sep=info.delimiter,
                encoding=info.encoding,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                chunksize=rows,
                nrows=limit,
            )
            yield from reader
        except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
            raise UploadRejected(
                f"the CSV cannot be parsed: {info.scrub(str(exc))}", file=info.file_name
            ) from None
        return
    for table in ogr_batches(info, batch_size):
        yield table.to_pandas()


def _table_sample(info: SourceInfo) -> tuple[np.ndarray, np.ndarray]:
    chunk = next(table_chunks(info, info.limits.crs_sample, info.limits.crs_sample), None)
    if chunk is None or len(chunk) == 0:
        raise UploadRejected("the file has no rows (empty)", file=info.file_name, layer=info.layer)
    geoms, _ = table_geometry(info, chunk)
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    centres = shapely.centroid(geoms[ok])
    return shapely.get_x(centres), shapely.get_y(centres)


def table_geometry(info: SourceInfo, chunk: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
    """Geometries built from the coordinate (or WKT) columns, and per-row problems by position."""
    mode, *cols = info.coords
    problems: dict[int, str] = {}
    if mode == "wkt":
        text = chunk[cols[0]]
        geoms = shapely.from_wkt(text.to_numpy(dtype=object), on_invalid="ignore")
        bad = text.notna().to_numpy() & shapely.is_missing(geoms)
        for i in np.flatnonzero(bad):
            problems[int(i)] = f"{cols[0]}: not valid WKT"
        return geoms, problems
    raw_x, raw_y = chunk[cols[0]], chunk[cols[1]]
    x = pd.to_numeric(raw_x.astype("string").str.strip(), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    y = pd.to_numeric(raw_y.astype("string").str.strip(), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    ok = np.isfinite(x) & np.isfinite(y)
    geoms = np.full(len(chunk), None, dtype=object)
    geoms[ok] = shapely.points(x[ok], y[ok])
    for i in np.flatnonzero(~ok):
        vx, vy = raw_x.iloc[i], raw_y.iloc[i]
        if pd.isna(vx) and pd.isna(vy):
            continue  # no coordinates at all: validation reports the missing geometry
        problems[int(i)] = f"coordinates ({cols[0]}={vx}, {cols[1]}={vy}) are not finite numbers"
    return geoms, problems
