"""A received file as a source: its format, the limits it is read within, what is known of it.

:class:`SourceInfo` is what :func:`geo.uploads.inspection.open_upload` found out about a file and
how the readers (:mod:`geo.uploads.tables`, :mod:`geo.uploads.batches`) go on reading it. The GDAL
calls they share are here too: layer metadata (:func:`read_info`), the Arrow stream of a layer
(:func:`ogr_batches`) and the message of a file GDAL cannot read (:func:`ogr_error`).
"""

from __future__ import annotations

import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyogrio
from pyproj import CRS

from geo.core.row_errors import UploadRejected, scrub_paths
from geo.uploads import file_checks, gdal

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
    """What :func:`~geo.uploads.inspection.open_upload` found out about a file; use it as a context manager.

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
    read_path: Path | None = field(default=None, repr=False)
    encoding: str | None = field(default=None, repr=False)
    delimiter: str | None = field(default=None, repr=False)
    coords: tuple[str, ...] = field(default=(), repr=False)
    source_crs: CRS | None = field(default=None, repr=False)
    swap_axes: bool = field(default=False, repr=False)
    tmpdir: Path | None = field(default=None, repr=False)
    longest_line: int = field(default=0, repr=False)

    def note(self, text: str) -> None:
        """Add a note once."""
        if text not in self.notes:
            self.notes.append(text)

    def scrub(self, text: str) -> str:
        """``text`` with this file's paths on the server replaced by its name."""
        return scrub_paths(text, [p for p in (self.read_path, self.path, self.tmpdir) if p], self.file_name)

    def close(self) -> None:
        """Remove the files extracted from an archive (and the archive made again of them)."""
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir.with_suffix(".kmz").unlink(missing_ok=True)
            self.tmpdir = None

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


def ogr_error(info: SourceInfo, exc: BaseException, layer: str | None = None) -> UploadRejected:
    """The rejection of a file GDAL (pyogrio) failed to read, its message without server paths."""
    if isinstance(exc, UnicodeDecodeError):
        return UploadRejected(
            "column names or text are not valid UTF-8 (save the file as UTF-8, or for a Shapefile add a .cpg)",
            file=info.file_name,
            layer=layer,
        )
    text = info.scrub(str(exc).strip() or type(exc).__name__)
    if info.format == "GeoPackage" and _gpkg_without_layers(info.read_path):
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


def read_info(info: SourceInfo, layer: str | int | None, **options: Any) -> dict[str, Any]:
    """pyogrio's metadata of one layer (fields, features, CRS...), read by the format's own driver."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = pyogrio.read_info(info.read_path, layer=layer, **options)
    except Exception as exc:
        raise ogr_error(info, exc, layer if isinstance(layer, str) else None) from None
    _check_driver(info, meta.get("driver"))
    return meta


def _check_driver(info: SourceInfo, driver: str | None) -> None:
    """The file was opened by its format's own driver (:mod:`geo.uploads.gdal` leaves no other registered)."""
    if driver not in gdal.DRIVERS.get(info.format, ()):
        raise UploadRejected(
            f"the file is named as {info.format} but GDAL reads it as {driver or 'something else'}; refused",
            file=info.file_name,
        )


def ogr_options(info: SourceInfo) -> dict[str, Any]:
    """The GDAL open options of the file's format."""
    # XLSX: the first row always names the columns and every value is read as text, like CSV.
    return {"HEADERS": "FORCE", "FIELD_TYPES": "STRING"} if info.format == "XLSX" else {}


def ogr_batches(info: SourceInfo, batch_size: int) -> Iterator[pa.Table]:
    """The chosen layer as Arrow tables of at most ``batch_size`` rows (pyogrio's Arrow stream)."""
    kwargs: dict[str, Any] = dict(
        layer=info.layer, batch_size=batch_size, use_pyarrow=True, **ogr_options(info)
    )
    if info.encoding and info.format != "CSV":
        kwargs["encoding"] = info.encoding
    done = 0
    gdal.harden()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pyogrio.open_arrow(info.read_path, **kwargs) as (_, reader):
                for batch in reader:
                    table = pa.Table.from_batches([batch])
                    done += table.num_rows
                    yield table
    except UploadRejected:
        raise
    except Exception as exc:
        err = ogr_error(info, exc, info.layer)
        raise UploadRejected(f"{err.message} (after {done} features)") from None
