"""Reading whatever file a borough sends: format, layer, coordinates and CRS, in batches.

:func:`open_upload` inspects the file (format, layer, columns, CRS, row count) and rejects what
cannot be used with :class:`~geo.core.row_errors.UploadRejected`; :func:`iter_batches` then streams
it as :class:`SourceBatch` objects whose geometries are already 2D and in EPSG:27700.

Supported: GeoPackage, zipped Shapefile, GeoJSON, FlatGeobuf, KML/KMZ (all read with pyogrio's
Arrow stream) and CSV/XLSX with coordinate columns (CSV read with pandas in chunks, so odd
delimiters, a BOM and Latin-1 text are handled; XLSX with pyogrio as text).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely
from pyproj import CRS, Transformer

from geo.core.row_errors import RowError, UploadRejected, scrub_paths
from geo.uploads import file_checks, gdal

BNG = CRS.from_epsg(27700)
WGS84 = CRS.from_epsg(4326)

#: Extension -> format name. ``.zip`` holds a Shapefile (or one other supported file).
FORMATS = {
    ".gpkg": "GeoPackage",
    ".zip": "Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".kml": "KML",
    ".kmz": "KMZ",
    ".csv": "CSV",
    ".tsv": "CSV",
    ".txt": "CSV",
    ".xlsx": "XLSX",
}
TABLE_FORMATS = {"CSV", "XLSX"}
GEOMETRY_FAMILIES = {
    "duct": ("LineString",),
    "street_furniture": ("Point", "Polygon"),
    "public_building": ("Point", "Polygon"),
}

# Coordinate ranges (DOMAIN.md): London in BNG is about E 500k-565k, N 155k-205k and in WGS84 about
# lon -0.52..0.34, lat 51.28..51.70. The windows below are wider so that a file reaching a little
# past London is still recognised; whatever lies outside the borough is a row error later.
BNG_WINDOW = ((400_000, 660_000), (100_000, 260_000))
LONLAT_WINDOW = ((-2.0, 1.5), (50.8, 52.3))
GB_BNG = ((0, 700_000), (0, 1_300_000))

_NORMALISE = re.compile(r"[^0-9a-z]+")
X_NAMES = re.compile(r"^(.*easting|eastings|east|x|xcoord|xcoordinate|.*_x|point_x|coordx)$")
Y_NAMES = re.compile(r"^(.*northing|northings|north|y|ycoord|ycoordinate|.*_y|point_y|coordy)$")
LON_NAMES = re.compile(r"^(lon|long|lng|longitude|.*longitude|.*_lon|.*_lng|x_lon)$")
LAT_NAMES = re.compile(r"^(lat|latitude|.*latitude|.*_lat|y_lat)$")
WKT_NAMES = {"wkt", "geom", "geometry", "the_geom", "shape", "wkt_geom", "geom_wkt", "wkt_geometry"}
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class ReadLimits:
    """Limits that protect the service from huge or hostile files (settings, see ``UploadSettings``)."""

    max_bytes: int = 500 * 2**20
    max_uncompressed_bytes: int = 2 * 2**30
    max_compression_ratio: float = 200.0
    max_columns: int = 500
    max_line_bytes: int = 4 * 2**20
    max_field_bytes: int = 2**20
    max_spreadsheet_bytes: int = 256 * 2**20
    batch_size: int = 65_536
    # A batch of a table holds about this many bytes of text at most (long lines: fewer rows).
    batch_bytes: int = 64 * 2**20
    crs_sample: int = 10_000

    @classmethod
    def from_settings(cls, settings: Any) -> ReadLimits:
        """The limits an :class:`~geo.core.settings.UploadSettings` sets."""
        return cls(
            max_bytes=settings.max_bytes,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_columns=settings.max_columns,
            max_line_bytes=settings.max_line_bytes,
            max_field_bytes=settings.max_field_bytes,
            max_spreadsheet_bytes=settings.max_spreadsheet_bytes,
        )

    def checks(self) -> file_checks.Limits:
        """The limits the content checks apply (:mod:`geo.uploads.file_checks`)."""
        return file_checks.Limits(
            max_uncompressed_bytes=self.max_uncompressed_bytes,
            max_compression_ratio=self.max_compression_ratio,
            max_columns=self.max_columns,
            max_line_bytes=self.max_line_bytes,
            max_spreadsheet_bytes=self.max_spreadsheet_bytes,
        )


@dataclass
class SourceInfo:
    """What :func:`open_upload` found out about a file; use it as a context manager.

    Attributes
    ----------
    file_name : the name as sent.
    format : ``GeoPackage``, ``Shapefile``, ``GeoJSON``, ``FlatGeobuf``, ``KML``, ``KMZ``, ``CSV`` or ``XLSX``.
    layer, layers : the layer read, and all layers of the file.
    crs : the source CRS used, as ``EPSG:xxxx`` where possible; output is always EPSG:27700.
    crs_inferred : True when the file had no usable CRS and it was inferred from coordinate ranges.
    columns : attribute columns (coordinate and WKT columns of tables excluded).
    geometry_columns : the table columns the geometry was built from (empty for GIS formats).
    row_count : rows or features (approximate for CSV with quoted line breaks), None when unknown.
    geometry_type : as the file declares it (None for tables).
    notes : what was inferred or fixed (CRS inferred, axes swapped, Z/M dropped, encoding...).
    """

    path: Path
    file_name: str
    format: str
    layer: str | None
    layers: list[str]
    crs: str
    crs_inferred: bool
    columns: list[str]
    geometry_columns: list[str]
    row_count: int | None
    geometry_type: str | None
    notes: list[str] = field(default_factory=list)
    limits: ReadLimits = field(default_factory=ReadLimits)
    # How to read: the path GDAL/pandas opens, encoding, CSV delimiter, coordinate mode, axis swap.
    _read_path: Path | None = field(default=None, repr=False)
    _encoding: str | None = field(default=None, repr=False)
    _delimiter: str | None = field(default=None, repr=False)
    _coords: tuple[str, ...] = field(default=(), repr=False)
    _source_crs: CRS | None = field(default=None, repr=False)
    _swap_axes: bool = field(default=False, repr=False)
    _tmpdir: Path | None = field(default=None, repr=False)
    _longest_line: int = field(default=0, repr=False)

    def note(self, text: str) -> None:
        """Add a note once."""
        if text not in self.notes:
            self.notes.append(text)

    def scrub(self, text: str) -> str:
        """``text`` with this file's paths on the server replaced by its name."""
        return scrub_paths(text, [p for p in (self._read_path, self.path, self._tmpdir) if p], self.file_name)

    def close(self) -> None:
        """Remove the files extracted from an archive (and the archive made again of them)."""
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir.with_suffix(".kmz").unlink(missing_ok=True)
            self._tmpdir = None

    def __enter__(self) -> SourceInfo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, Any]:
        """The public facts, for the upload report."""
        return {
            "file_name": self.file_name,
            "format": self.format,
            "layer": self.layer,
            "layers": self.layers,
            "crs": self.crs,
            "crs_inferred": self.crs_inferred,
            "columns": self.columns,
            "geometry_columns": self.geometry_columns,
            "row_count": self.row_count,
            "geometry_type": self.geometry_type,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class PointColumn:
    """A batch whose geometries are all 2D points in EPSG:27700, as read: ``x``, ``y`` and their WKB."""

    x: np.ndarray
    y: np.ndarray
    wkb: pa.Array


class SourceBatch:
    """A slice of the file: attributes as read, geometries in EPSG:27700 (2D), reader-level errors.

    ``rows`` are 1-based row/feature numbers. ``geometry`` is an object array of shapely geometries
    (``None`` where missing or unusable). ``failed`` marks rows that already have an error in
    ``errors`` (unreadable or non-finite coordinates), so validation does not report them twice.
    ``points`` is set when every geometry of the batch is a finite 2D point already in EPSG:27700
    (the fast path: validation reads the coordinates and WKB directly; ``geometry`` is then only
    built if asked for).
    """

    def __init__(
        self,
        rows: np.ndarray,
        attributes: pa.Table,
        geometry: np.ndarray | None,
        errors: list[RowError],
        failed: np.ndarray,
        points: PointColumn | None = None,
    ) -> None:
        self.rows = rows
        self.attributes = attributes
        self._geometry = geometry
        self.errors = errors
        self.failed = failed
        self.points = points

    @property
    def geometry(self) -> np.ndarray:
        """Shapely geometries of the batch (built from ``points`` on first use in the fast path)."""
        if self._geometry is None:
            assert self.points is not None
            self._geometry = shapely.points(self.points.x, self.points.y)
        return self._geometry

    def __len__(self) -> int:
        return len(self.rows)


def point_column(wkb: pa.Array | pa.ChunkedArray) -> PointColumn | None:
    """x, y of WKB that is all little-endian 2D points with finite coordinates (21 bytes each), else None."""
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    if isinstance(wkb, pa.ExtensionArray):
        wkb = wkb.storage
    n = len(wkb)
    if n == 0 or wkb.null_count or not pa.types.is_binary(wkb.type):
        return None
    offsets = np.frombuffer(wkb.buffers()[1], dtype=np.int32, count=n + 1, offset=wkb.offset * 4)
    if offsets[-1] - offsets[0] != 21 * n or not (np.diff(offsets) == 21).all():
        return None
    data = np.frombuffer(wkb.buffers()[2], dtype=np.uint8, count=21 * n, offset=int(offsets[0])).reshape(
        n, 21
    )
    if not (data[:, 0] == 1).all() or not (data[:, 1:5].copy().view("<u4") == 1).all():
        return None
    x = data[:, 5:13].copy().view("<f8").reshape(n)
    y = data[:, 13:21].copy().view("<f8").reshape(n)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    return PointColumn(x, y, wkb.cast(pa.binary()) if wkb.type != pa.binary() else wkb)


# --------------------------------------------------------------------------------------------- opening


def open_upload(
    path: str | Path,
    *,
    layer: str | None = None,
    kind: str | None = None,
    limits: ReadLimits | None = None,
    file_name: str | None = None,
) -> SourceInfo:
    """Inspect an uploaded file and decide how to read it.

    Parameters
    ----------
    path : the file on disk.
    layer : the layer (or sheet, or Shapefile in a zip) to read; needed when several could fit.
    kind : the asset kind, used to tell which layers could fit (lines for ducts, otherwise points
        or polygons).
    limits : size and archive limits.
    file_name : the name the user sent (for messages); defaults to the file's name.

    Returns
    -------
    SourceInfo
        Close it (or use ``with``) to remove files extracted from archives.

    Raises
    ------
    UploadRejected
        Unsupported extension, empty, too large, corrupted or truncated file, hostile archive, no
        layers, several candidate layers and none named, no coordinates, undecidable CRS,
        non-UTF-8 column names.
    """
    path = Path(path)
    limits = limits or ReadLimits()
    name = file_name or path.name
    ext = "".join(PurePosixPath(name.lower()).suffixes[-1:])
    fmt = FORMATS.get(ext)
    if fmt is None:
        allowed = ", ".join(sorted(FORMATS))
        raise UploadRejected(
            f"unexpected file extension {ext or '(none)'!r}; send one of {allowed}", file=name
        )
    if not path.is_file():
        raise UploadRejected("the file does not exist", file=name)
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected("the file is empty (0 bytes)", file=name)
    if size > limits.max_bytes:
        raise UploadRejected(
            f"the file is {size / 2**20:.0f} MB, more than the limit of {limits.max_bytes / 2**20:.0f} MB",
            file=name,
        )
    gdal.harden()
    tmpdir: Path | None = None
    read_path = path
    checks = limits.checks()
    try:
        if fmt in ("Shapefile", "KMZ"):
            tmpdir = Path(tempfile.mkdtemp(prefix="upload-"))
            file_checks.extract_zip(path, tmpdir, checks, name)
            read_path, fmt = _find_in_archive(tmpdir, fmt, name, checks)
        if fmt == "KMZ" and tmpdir is not None:
            # Every document of the archive is checked; LIBKML then reads a KMZ made again of the
            # checked files only (not the one sent, whose other members it might open), as it
            # resolves the links between documents (GDAL's own KMZ files link a document per layer).
            for document in sorted(
                p for p in tmpdir.rglob("*") if p.suffix.lower() == ".kml" and p.is_file()
            ):
                file_checks.check_content(document, fmt, name, checks, archive_root=tmpdir)
            read_path = file_checks.rezip(tmpdir, tmpdir.parent / f"{tmpdir.name}.kmz")
        else:
            file_checks.check_content(read_path, fmt, name, checks)
        info = SourceInfo(
            path=path,
            file_name=name,
            format=fmt,
            layer=None,
            layers=[],
            crs="",
            crs_inferred=False,
            columns=[],
            geometry_columns=[],
            row_count=None,
            geometry_type=None,
            limits=limits,
            _read_path=read_path,
            _tmpdir=tmpdir,
        )
        if fmt == "CSV":
            _open_csv(info)
        else:
            _open_ogr(info, layer, kind)
        return info
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
            tmpdir.with_suffix(".kmz").unlink(missing_ok=True)
        raise


def _find_in_archive(tmpdir: Path, fmt: str, name: str, checks: file_checks.Limits) -> tuple[Path, str]:
    files = [p for p in tmpdir.rglob("*") if p.is_file()]
    if fmt == "KMZ":  # read as a whole (a KMZ made again of its checked documents)
        if not any(p.suffix.lower() == ".kml" for p in files):
            raise UploadRejected("the KMZ holds no .kml document", file=name)
        return tmpdir, "KMZ"
    shps = sorted(p for p in files if p.suffix.lower() == ".shp")
    if not shps:
        others = sorted(p for p in files if FORMATS.get(p.suffix.lower()) not in (None, "Shapefile", "KMZ"))
        if len(others) == 1:
            return others[0], FORMATS[others[0].suffix.lower()]
        listed = ", ".join(sorted(p.name for p in files)) or "nothing"
        raise UploadRejected(f"the zip holds no Shapefile (.shp); it holds {listed}", file=name)
    if len(shps) > 1:
        # Several Shapefiles: GDAL opens the directory with one layer per .shp.
        for shp in shps:
            file_checks.check_shapefile(shp, name, checks)
        return shps[0].parent if len({s.parent for s in shps}) == 1 else shps[0], "Shapefile"
    file_checks.check_shapefile(shps[0], name, checks)
    return shps[0], "Shapefile"


def _ogr_error(info: SourceInfo, exc: BaseException, layer: str | None = None) -> UploadRejected:
    if isinstance(exc, UnicodeDecodeError):
        return UploadRejected(
            "column names or text are not valid UTF-8 (save the file as UTF-8, or for a Shapefile add a .cpg)",
            file=info.file_name,
            layer=layer,
        )
    text = info.scrub(str(exc).strip() or type(exc).__name__)
    if info.format == "GeoPackage" and _gpkg_without_layers(info._read_path):
        return UploadRejected("the file has no layers (an empty GeoPackage)", file=info.file_name)
    if (
        "not recognized as being in a supported file format" in text
        or "not recognized as a supported" in text
    ):
        text = f"not a readable {info.format} file"
    return UploadRejected(
        f"cannot read the file (corrupted or truncated?): {text}", file=info.file_name, layer=layer
    )


def _gpkg_without_layers(path: Path | None) -> bool:
    """GDAL does not open a GeoPackage without layers at all; tell that case from a corrupt file."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute("SELECT count(*) FROM gpkg_contents").fetchone()[0] == 0
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _read_info(info: SourceInfo, layer: str | int | None, **options: Any) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = pyogrio.read_info(info._read_path, layer=layer, **options)
    except Exception as exc:
        raise _ogr_error(info, exc, layer if isinstance(layer, str) else None) from None
    _check_driver(info, meta.get("driver"))
    return meta


def _check_driver(info: SourceInfo, driver: str | None) -> None:
    """The file was opened by its format's own driver (:mod:`geo.uploads.gdal` leaves no other registered)."""
    if driver not in gdal.DRIVERS.get(info.format, ()):
        raise UploadRejected(
            f"the file is named as {info.format} but GDAL reads it as {driver or 'something else'}; refused",
            file=info.file_name,
        )


def _open_ogr(info: SourceInfo, layer: str | None, kind: str | None) -> None:
    options = _ogr_options(info)  # GDAL hardened by open_upload
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            listed = pyogrio.list_layers(info._read_path)
    except Exception as exc:
        raise _ogr_error(info, exc) from None
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
        chosen = layer
    elif len(layers) == 1:
        chosen = layers[0]
    else:
        fitting = [name for name in layers if _layer_fits(info, name, kind, options)]
        if len(fitting) == 1:
            chosen = fitting[0]
        elif not fitting:
            raise UploadRejected(
                f"none of the layers ({', '.join(map(repr, layers))}) holds "
                f"{'features of a usable geometry type' if kind else 'features'}; name one with layer",
                file=info.file_name,
                candidates=layers,
            )
        else:
            raise UploadRejected(
                f"the file has several layers that could fit: {', '.join(map(repr, fitting))}; "
                "say which one to read (layer)",
                file=info.file_name,
                candidates=fitting,
            )
    info.layer = chosen
    meta = _read_info(info, chosen, **options)
    if info.format == "Shapefile" and meta.get("encoding") and meta["encoding"].upper() != "UTF-8":
        info._encoding = meta["encoding"]
        info.note(f"attribute text read as {meta['encoding']} (no .cpg file says otherwise)")
        meta = _read_info(info, chosen, encoding=info._encoding, **options)
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
        _decide_crs(info, None, x, y)
        return
    info.columns = fields
    info.geometry_type = meta.get("geometry_type")
    if info.geometry_type is None:
        raise UploadRejected("the layer has no geometry column", file=info.file_name, layer=chosen)
    declared = meta.get("crs")
    source_crs = None
    if declared:
        try:
            source_crs = CRS.from_user_input(declared)
        except Exception:
            info.note(f"the file's CRS could not be understood ({declared[:60]}); inferring it instead")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, bounds = pyogrio.read_bounds(
                info._read_path, layer=chosen, max_features=info.limits.crs_sample
            )
    except Exception as exc:
        raise _ogr_error(info, exc, chosen) from None
    x = (bounds[0] + bounds[2]) / 2
    y = (bounds[1] + bounds[3]) / 2
    _decide_crs(info, source_crs, x, y)


def _ogr_options(info: SourceInfo) -> dict[str, Any]:
    # XLSX: the first row always names the columns and every value is read as text, like CSV.
    return {"HEADERS": "FORCE", "FIELD_TYPES": "STRING"} if info.format == "XLSX" else {}


def _layer_fits(info: SourceInfo, name: str, kind: str | None, options: dict[str, Any]) -> bool:
    try:
        meta = _read_info(info, name, **options)
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


# ------------------------------------------------------------------------------------------------ tables


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
    info._coords = (mode, *(fields[i] for i in idx))
    info.geometry_columns = [fields[i] for i in idx]


def _open_csv(info: SourceInfo) -> None:
    assert info._read_path is not None
    checks = info.limits.checks()
    with open(info._read_path, "rb") as raw:
        first = raw.readline(checks.max_line_bytes + 1)
    # Columns first: a header of a million columns is refused before anything else reads it.
    file_checks.check_csv_header(
        first, max(DELIMITERS, key=lambda d: first.count(d.encode())), info.file_name, checks
    )
    encoding, lines, info._longest_line = file_checks.scan_text(info._read_path, info.file_name, checks)
    info._encoding = encoding
    if encoding == "latin-1":
        info.note("the file is not valid UTF-8; its text was read as Latin-1")
    with open(info._read_path, encoding=encoding, newline="") as f:
        header = f.readline()
    if not header.strip():
        raise UploadRejected(
            "the first line is empty; the first line must name the columns", file=info.file_name
        )
    counts = {d: header.count(d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        delimiter = ","
    info._delimiter = delimiter
    if delimiter != ",":
        info.note(f"columns are separated by {'tab' if delimiter == chr(9) else repr(delimiter)}")
    info.layers = [info._read_path.stem]
    info.layer = info._read_path.stem
    try:
        head = pd.read_csv(info._read_path, sep=delimiter, encoding=encoding, dtype=str, nrows=0)
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
    _decide_crs(info, None, x, y)


def _table_chunks(info: SourceInfo, batch_size: int, limit: int | None = None) -> Iterator[pd.DataFrame]:
    """The table as text, in chunks (no row limit when ``limit`` is None).

    A CSV chunk holds at most ``batch_bytes`` of text: with long lines, fewer rows.
    """
    if info.format == "CSV":
        rows = max(1, min(batch_size, info.limits.batch_bytes // max(info._longest_line, 1)))
        try:
            reader = pd.read_csv(
                info._read_path,
                sep=info._delimiter,
                encoding=info._encoding,
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
    for table in _ogr_batches(info, batch_size):
        yield table.to_pandas()


def _table_sample(info: SourceInfo) -> tuple[np.ndarray, np.ndarray]:
    chunk = next(_table_chunks(info, info.limits.crs_sample, info.limits.crs_sample), None)
    if chunk is None or len(chunk) == 0:
        raise UploadRejected("the file has no rows (empty)", file=info.file_name, layer=info.layer)
    geoms, _ = _table_geometry(info, chunk)
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    centres = shapely.centroid(geoms[ok])
    return shapely.get_x(centres), shapely.get_y(centres)


def _table_geometry(info: SourceInfo, chunk: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
    """Geometries built from the coordinate (or WKT) columns, and per-row problems by position."""
    mode, *cols = info._coords
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


# -------------------------------------------------------------------------------------------------- CRS


def _in(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (values >= lo) & (values <= hi)


def _decide_crs(info: SourceInfo, declared: CRS | None, x: np.ndarray, y: np.ndarray) -> None:
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
    info._source_crs = crs
    info.crs = _crs_name(crs)
    info.crs_inferred = inferred
    info._swap_axes = swap


# ----------------------------------------------------------------------------------------------- batches


def _ogr_batches(info: SourceInfo, batch_size: int) -> Iterator[pa.Table]:
    kwargs: dict[str, Any] = dict(
        layer=info.layer, batch_size=batch_size, use_pyarrow=True, **_ogr_options(info)
    )
    if info._encoding and info.format != "CSV":
        kwargs["encoding"] = info._encoding
    done = 0
    gdal.harden()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pyogrio.open_arrow(info._read_path, **kwargs) as (_, reader):
                for batch in reader:
                    table = pa.Table.from_batches([batch])
                    done += table.num_rows
                    yield table
    except UploadRejected:
        raise
    except Exception as exc:
        err = _ogr_error(info, exc, info.layer)
        raise UploadRejected(f"{err.message} (after {done} features)") from None


def _check_field_sizes(info: SourceInfo, table: pa.Table, start: int) -> None:
    """Refuse a value longer than ``max_field_bytes`` (the geometry aside), naming its row and column."""
    limit = info.limits.max_field_bytes
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                or pa.types.is_binary(column.type)):  # fmt: skip
            continue
        lengths = pc.binary_length(column)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > limit:
            row = start + int(np.flatnonzero(lengths.to_numpy(zero_copy_only=False) > limit)[0])
            raise UploadRejected(
                f"row {row:,}: the value of column {name!r} is {longest:,} bytes long, more than the limit "
                f"of {limit:,}",
                file=info.file_name,
                layer=info.layer,
                column=name,
            )


def _to_bng(info: SourceInfo, geoms: np.ndarray) -> np.ndarray:
    """Geometries as 2D EPSG:27700, axes swapped back where the file had them swapped."""
    present = ~shapely.is_missing(geoms)
    if present.any() and (shapely.has_z(geoms[present]).any() or shapely.has_m(geoms[present]).any()):
        info.note("Z and M coordinates were dropped (assets are stored in 2D)")
        geoms = geoms.copy()
        geoms[present] = shapely.force_2d(geoms[present])
    crs = info._source_crs
    assert crs is not None
    if crs == BNG and not info._swap_axes:
        return geoms
    transformer = None if crs == BNG else Transformer.from_crs(crs, BNG, always_xy=True)
    swap = info._swap_axes

    def convert(coords: np.ndarray) -> np.ndarray:
        if swap:
            coords = coords[:, ::-1]
        if transformer is None:
            return np.ascontiguousarray(coords)
        ex, ny = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([ex, ny])

    return shapely.transform(geoms, convert)


def _non_finite(geoms: np.ndarray) -> np.ndarray:
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    bad = np.zeros(len(geoms), dtype=bool)
    bad[index[~np.isfinite(coords).all(axis=1)]] = True
    return bad


def iter_batches(info: SourceInfo, batch_size: int | None = None) -> Iterator[SourceBatch]:
    """Stream the file as :class:`SourceBatch` objects of at most ``batch_size`` rows.

    Geometries come out 2D in EPSG:27700; rows with unreadable or non-finite coordinates have
    ``None`` geometry, a :class:`RowError` and ``failed`` set.

    Performance: memory is bounded by one batch (pyogrio Arrow batches, pandas CSV chunks).
    """
    size = batch_size or info.limits.batch_size
    start = 1
    if info.format in TABLE_FORMATS:
        for chunk in _table_chunks(info, size):
            n = len(chunk)
            geoms, problems = _table_geometry(info, chunk)
            attributes = pa.Table.from_pandas(chunk.drop(columns=info.geometry_columns), preserve_index=False)
            _check_field_sizes(info, attributes, start)
            yield _finish(info, start, attributes, geoms, problems, info.geometry_columns[0])
            start += n
        return
    bng = info._source_crs == BNG and not info._swap_axes
    for table in _ogr_batches(info, size):
        geom_name = next(
            (
                f.name
                for f in table.schema
                if (f.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb"
            ),
            table.schema.names[-1],
        )
        _check_field_sizes(info, table.drop_columns([geom_name]), start)
        if bng:
            points = point_column(table.column(geom_name))
            if points is not None:  # the fast path: nothing to decode, convert or report
                n = table.num_rows
                rows = np.arange(start, start + n, dtype=np.int64)
                attributes = table.drop_columns([geom_name])
                yield SourceBatch(rows, attributes, None, [], np.zeros(n, dtype=bool), points)
                start += n
                continue
        wkb = table.column(geom_name).to_numpy(zero_copy_only=False)
        geoms = shapely.from_wkb(wkb, on_invalid="ignore")
        problems = {
            int(i): "the geometry cannot be decoded"
            for i in np.flatnonzero(pd.notna(wkb) & shapely.is_missing(geoms))
        }
        attributes = table.drop_columns([geom_name])
        yield _finish(info, start, attributes, geoms, problems, None)
        start += table.num_rows


def _finish(
    info: SourceInfo,
    start: int,
    attributes: pa.Table,
    geoms: np.ndarray,
    problems: dict[int, str],
    column: str | None,
) -> SourceBatch:
    n = attributes.num_rows
    rows = np.arange(start, start + n, dtype=np.int64)
    non_finite = _non_finite(geoms)
    for i in np.flatnonzero(non_finite):
        problems.setdefault(int(i), "coordinates are not finite numbers (NaN or infinite)")
    failed = np.zeros(n, dtype=bool)
    if problems:
        idx = np.fromiter(problems, dtype=np.int64)
        failed[idx] = True
        geoms = geoms.copy()
        geoms[idx] = None
    geoms = _to_bng(info, geoms)
    errors = [
        RowError(row=int(rows[i]), source_id=None, column=column or "geometry", value=None, message=msg)
        for i, msg in sorted(problems.items())
    ]
    return SourceBatch(rows=rows, attributes=attributes, geometry=geoms, errors=errors, failed=failed)
