"""Reading a received file in Arrow batches, geometries 2D in EPSG:27700, with the rows' reader errors.

:func:`iter_batches` streams an opened file (:class:`~geo.uploads.source.SourceInfo`) as
:class:`SourceBatch` objects: pyogrio's Arrow batches for GIS formats, pandas chunks for tables.
A batch of finite 2D points already in EPSG:27700 takes the fast path (:class:`PointColumn`):
nothing is decoded or reprojected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo.core.row_errors import RowError, UploadRejected
from geo.uploads.crs import BNG, to_bng
from geo.uploads.source import TABLE_FORMATS, SourceInfo, ogr_batches
from geo.uploads.tables import table_chunks, table_geometry


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
        for chunk in table_chunks(info, size):
            n = len(chunk)
            geoms, problems = table_geometry(info, chunk)
            attributes = pa.Table.from_pandas(chunk.drop(columns=info.geometry_columns), preserve_index=False)
            _check_field_sizes(info, attributes, start)
            yield _finish(info, start, attributes, geoms, problems, info.geometry_columns[0])
            start += n
        return
    bng = info.source_crs == BNG and not info.swap_axes
    for table in ogr_batches(info, size):
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
    geoms = to_bng(info, geoms)
    errors = [
        RowError(row=int(rows[i]), source_id=None, column=column or "geometry", value=None, message=msg)
        for i, msg in sorted(problems.items())
    ]
    return SourceBatch(rows=rows, attributes=attributes, geometry=geoms, errors=errors, failed=failed)
