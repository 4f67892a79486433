"""A layer's items as the files GIS tools open: CSV, GeoPackage, FlatGeobuf and GeoParquet, streamed.

Every format is written from the one statement of the GeoJSON items
(:func:`geo.layers.features.rows_statement`: the same conditions, bbox, CQL2 filter, cursor, id
order, CRS and properties), so a format is only an encoder and a property a role may not see
reaches none of them. The rows come from PostgreSQL as Arrow record batches through ADBC's
PostgreSQL driver, which reads the result by ``COPY`` in batches of about :data:`BATCH_BYTES`,
never whole; the libraries that own each format write them batch by batch:

- **GeoParquet 1.1** (pyarrow's ``ParquetWriter``, one row group per batch, sent as it is
  written): the geometry as WKB with a ``bbox`` covering column (``xmin``, ``ymin``, ``xmax``,
  ``ymax``: GeoParquet 1.1's ``covering``, so readers skip row groups by their statistics), and
  the ``geo`` metadata (CRS as PROJJSON, the geometry types and bbox met while writing) added
  to the footer at the end. Not GeoArrow: its column type is one geometry type, known before
  the first batch, and a layer holds points and polygons together (street furniture, public
  buildings); WKB is also what every GeoParquet reader takes (GDAL before 3.8 reads no GeoArrow).
- **CSV** (pyarrow's CSV writer, sent batch by batch): ``id``, the properties, ``geometry`` as
  WKT and, for layers that hold points, the point's coordinates in two columns named after
  the CRS (``easting``/``northing`` in EPSG:27700, ``longitude``/``latitude`` in CRS84, ``x``/``y``
  in EPSG:3857; empty for other geometries). Text cells a spreadsheet would run as formulas get
  the leading apostrophe of :func:`geo.core.csv_out.safe_cell` (the same rule, in Arrow); lists
  are joined with ``"; "`` as the Pipeline CSV does; dates and times are ISO 8601.
- **GeoPackage** and **FlatGeobuf** (GDAL through pyogrio's ``write_arrow``, pulling the batches
  as they come): neither can be written to a stream (a GeoPackage is a SQLite database, a
  FlatGeobuf's spatial index precedes its features), so GDAL writes a file in a temporary
  folder of its own, which is sent in chunks and removed once sent (or the request failed).

Coordinates are always x first (longitude, easting), as files store them, whatever the CRS's
axis order. Time is bounded by the statement timeout of the connection (the whole ``COPY``
is one statement) and the size by :data:`MAX_FEATURES`; memory by a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from geo.core.crs import BNG, WEB_MERCATOR
from geo.core.csv_out import _PLAIN_NUMBER, FORMULA_START
from geo.core.errors import TooLarge, Unavailable
from geo.layers.collections import Collection
from geo.layers.features import BBOX_COLUMNS, ItemsQuery, rows_statement


@dataclass(frozen=True)
class Format:
    """One output format of a collection's items."""

    name: str
    media_type: str
    extension: str
    title: str


GEOJSON = Format("json", "application/geo+json", "geojson", "GeoJSON")
#: ``f`` value -> format; the first is the default.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        GEOJSON,
        Format("csv", "text/csv", "csv", "CSV (geometry as WKT)"),
        Format("gpkg", "application/geopackage+sqlite3", "gpkg", "GeoPackage"),
        Format("fgb", "application/flatgeobuf", "fgb", "FlatGeobuf"),
        Format("parquet", "application/vnd.apache.parquet", "parquet", "GeoParquet 1.1"),
    )
}
#: Other names of the formats in ``f``.
ALIASES = {"geojson": "json"}
#: The formats written as files (every one but GeoJSON, which pages through ``next`` links).
FILE_FORMATS = tuple(name for name in FORMATS if name != "json")
#: Most features in one file download (a request without ``limit`` gets all up to this).
MAX_FEATURES = 1_000_000
#: Size of the Arrow batches read from PostgreSQL, about (and of GeoParquet's row groups).
BATCH_BYTES = 8 * 2**20
#: Batches read ahead from the database while one is written.
PREFETCH = 2
#: Bytes of a GeoPackage or FlatGeobuf file sent at a time.
CHUNK_BYTES = 2**20
_WKB_TYPES = {
    1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString", 6: "MultiPolygon",
    7: "GeometryCollection",
}  # fmt: skip
_OGR_DRIVERS = {"gpkg": "GPKG", "fgb": "FlatGeobuf"}
_COORDINATES = {BNG: ("easting", "northing"), WEB_MERCATOR: ("x", "y")}
_FORMULA_START = "^[" + "".join(re.escape(c) for c in FORMULA_START) + "]"
_NUMBER = "^(?:" + _PLAIN_NUMBER.pattern + ")$"


class ExportTooLarge(TooLarge):
    """More features match than one download may hold (413)."""


class ExportTimedOut(Unavailable):
    """The export took longer than the statement timeout (503)."""


def coordinate_names(srid: int) -> tuple[str, str]:
    """The CSV's two coordinate columns in ``srid``."""
    return _COORDINATES.get(srid, ("longitude", "latitude"))


def has_points(collection: Collection) -> bool:
    """Whether the layer may hold points (its CSV then has coordinate columns)."""
    return collection.geometry_type in ("Point", "MultiPoint", "Geometry")


# -- the rows ------------------------------------------------------------------------------------


class Rows:
    """The rows of one export as Arrow batches, read by ADBC (a context manager; iterate for the batches).

    ``statement`` has its values bound already (:func:`render`): with parameters the driver
    cannot read the result by ``COPY``. More than ``cap`` rows is :class:`ExportTooLarge`.
    """

    def __init__(self, url: str, statement: str, cap: int) -> None:
        self.url, self.statement, self.cap = url, statement, cap
        self.count = 0
        self._stack = contextlib.ExitStack()
        self.schema: pa.Schema

    def __enter__(self) -> Rows:
        try:
            conn = self._stack.enter_context(adbc.connect(self.url))
            cur = self._stack.enter_context(conn.cursor())
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            cur.execute(self.statement)
            self._reader = cur.fetch_record_batch()
        except adbc.Error as exc:
            self._stack.close()
            raise _translated(exc) from exc
        except BaseException:
            self._stack.close()
            raise
        self.schema = _plain_schema(self._reader.schema)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """The batches; the next ones are read from the database while this one is written."""
        batches: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()

        def read() -> None:
            try:
                for batch in self._reader:
                    if stop.is_set():
                        return
                    batches.put(batch)
                batches.put(None)
            except BaseException as exc:
                batches.put(exc)

        reader = threading.Thread(target=read, name="export-rows", daemon=True)
        reader.start()
        try:
            while (item := batches.get()) is not None:
                if isinstance(item, adbc.Error):
                    raise _translated(item) from item
                if isinstance(item, BaseException):
                    raise item
                self.count += item.num_rows
                if self.count > self.cap:
                    raise ExportTooLarge(
                        f"more than {self.cap:,} features match; ask for fewer with limit and after, "
                        "a bbox or a filter"
                    )
                yield pa.RecordBatch.from_arrays(item.columns, schema=self.schema)
        finally:
            stop.set()
            while reader.is_alive():  # let it finish its batch (the connection closes after it)
                with contextlib.suppress(queue.Empty):
                    batches.get(timeout=0.05)


def _translated(exc: adbc.Error) -> Exception:
    if getattr(exc, "sqlstate", None) == "57014":
        return ExportTimedOut(
            "the export took longer than the service allows (statement timeout); narrow it down"
        )
    return exc


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema without the driver's field metadata (``POSTGRESQL:type``)."""
    return pa.schema([pa.field(f.name, f.type, f.nullable) for f in schema])


def render(conn: psycopg.AsyncConnection[Any], statement: sql.Composed, params: dict[str, Any]) -> str:
    """``statement`` with its parameters bound by psycopg on the client (its escaping, as ``mogrify``)."""
    return psycopg.AsyncClientCursor(conn).mogrify(statement, params)


# -- GeoParquet ------------------------------------------------------------------------------------


class _Sink:
    """A file-like object collecting what a writer writes, taken out chunk by chunk."""

    closed = False

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def wkb_types(geometries: pa.Array) -> set[str]:
    """The geometry types of WKB values (GeoParquet's names, `` Z`` for 3D)."""
    types = set()
    for head in pc.unique(pc.binary_slice(geometries.drop_null(), 0, 5)).to_pylist():
        code = int.from_bytes(head[1:5], "little" if head[0] == 1 else "big")
        base = _WKB_TYPES.get(code % 1000, "Unknown")
        types.add(base + (" Z" if code // 1000 in (1, 3) else ""))
    return types


def _crs_projjson(srid: int) -> dict[str, Any]:
    import pyproj

    return pyproj.CRS("OGC:CRS84" if srid == 4326 else f"EPSG:{srid}").to_json_dict()  # type: ignore[no-any-return]


def _parquet_batch(batch: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
    bbox = pa.StructArray.from_arrays([batch.column(c) for c in BBOX_COLUMNS], names=list(BBOX_COLUMNS))
    return pa.RecordBatch.from_arrays([*(batch.column(n) for n in names), bbox], names=[*names, "bbox"])


def parquet_chunks(rows: Rows, srid: int) -> Iterator[bytes]:
    """GeoParquet 1.1, one row group per batch: the bytes as they are written."""
    names = [n for n in rows.schema.names if n not in BBOX_COLUMNS]
    bbox_type = pa.struct([(c, pa.float64()) for c in BBOX_COLUMNS])
    schema = pa.schema([*(rows.schema.field(n) for n in names), pa.field("bbox", bbox_type)])
    sink = _Sink()
    # No ARROW:schema: readers then take the schema metadata from the footer, where "geo" is
    # written once the geometry types and the extent are known.
    writer = pq.ParquetWriter(sink, schema, compression="zstd", store_schema=False)
    types: set[str] = set()
    extent = [math.inf, math.inf, -math.inf, -math.inf]
    try:
        for batch in rows:
            if not batch.num_rows:
                continue
            writer.write_batch(_parquet_batch(batch, names), row_group_size=batch.num_rows)
            types |= wkb_types(batch.column("geometry"))
            for i, (name, pick) in enumerate(zip(BBOX_COLUMNS, (min, min, max, max), strict=True)):
                value = (pc.min if pick is min else pc.max)(batch.column(name)).as_py()
                if value is not None:
                    extent[i] = pick(extent[i], value)
            yield sink.take()
        column: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": sorted(types),
            "crs": _crs_projjson(srid),
            "covering": {"bbox": {c: ["bbox", c] for c in BBOX_COLUMNS}},
        }
        if rows.count:
            column["bbox"] = extent
        meta = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
        writer.add_key_value_metadata({"geo": json.dumps(meta)})
    finally:
        writer.close()
    yield sink.take()


# -- CSV ---------------------------------------------------------------------------------------------


def safe_texts(values: pa.Array) -> pa.Array:
    """Text values as :func:`geo.core.csv_out.safe_cell` writes them: a formula gets a leading apostrophe."""
    formula = pc.and_(
        pc.match_substring_regex(values, _FORMULA_START),
        pc.invert(pc.match_substring_regex(values, _NUMBER)),
    )
    return pc.if_else(formula, pc.binary_join_element_wise(pa.scalar("'"), values, ""), values)


def _csv_column(values: pa.Array) -> pa.Array:
    kind = values.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return safe_texts(pc.binary_join(values, "; "))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return safe_texts(values)
    if pa.types.is_boolean(kind):
        return pc.if_else(values, "true", "false")
    if pa.types.is_timestamp(kind):
        return pc.strftime(values, "%Y-%m-%dT%H:%M:%S%z" if kind.tz else "%Y-%m-%dT%H:%M:%S")
    return pc.cast(values, pa.string())


def csv_chunks(rows: Rows, coordinates: tuple[str, str] | None) -> Iterator[bytes]:
    """CSV with a header, every cell text (see the module's description): the bytes batch by batch."""
    names = [n for n in rows.schema.names if n not in ("x", "y")]
    header = names + (list(coordinates) if coordinates else [])
    schema = pa.schema([(n, pa.string()) for n in header])
    sink = _Sink()
    with pacsv.CSVWriter(sink, schema, write_options=pacsv.WriteOptions(quoting_style="needed")) as writer:
        for batch in rows:
            columns = [_csv_column(batch.column(n)) for n in names]
            if coordinates:
                columns += [pc.cast(batch.column(axis), pa.string()) for axis in ("x", "y")]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            yield sink.take()
    yield sink.take()


# -- GeoPackage and FlatGeobuf -------------------------------------------------------------------------


def write_ogr(rows: Rows, path: Path, fmt: str, layer: str, srid: int, geometry_type: str) -> int:
    """Write the rows to a GeoPackage or FlatGeobuf file with GDAL, batch by batch; the feature count."""
    import pyogrio

    names = [n for n in rows.schema.names if n not in BBOX_COLUMNS]
    schema = pa.schema([rows.schema.field(n) for n in names])
    batches = (b.select(names) for b in rows)
    pyogrio.write_arrow(
        pa.RecordBatchReader.from_batches(schema, batches),
        path,
        layer=layer,
        driver=_OGR_DRIVERS[fmt],
        geometry_name="geometry",
        geometry_type=geometry_type if geometry_type != "Geometry" else "Unknown",
        crs=f"EPSG:{srid}",
    )
    return rows.count


# -- for a request ----------------------------------------------------------------------------------


class _Pull:
    """A generator of chunks pulled from threads one at a time, closed once nothing pulls it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._lock = threading.Lock()

    def next(self) -> bytes | None:
        with self._lock:
            return next(self._chunks, None)

    def close(self) -> None:
        with self._lock:
            self._chunks.close()  # type: ignore[attr-defined]


def _chunks_of(rows: Rows, fmt: str, collection: Collection, srid: int) -> Iterator[bytes]:
    with rows:
        if fmt == "parquet":
            yield from parquet_chunks(rows, srid)
        else:
            yield from csv_chunks(rows, coordinate_names(srid) if has_points(collection) else None)


def _ogr_file(rows: Rows, fmt: str, collection: Collection, srid: int) -> tuple[Path, int]:
    folder = Path(tempfile.mkdtemp(prefix="connectivity-export-"))
    path = folder / f"{collection.id}.{FORMATS[fmt].extension}"
    try:
        with rows:
            count = write_ogr(rows, path, fmt, collection.id, srid, collection.geometry_type)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path, count


def _read_chunks(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield chunk
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@dataclass
class Download:
    """An export under way: its format, and its bytes (the first chunk is already read)."""

    format: Format
    chunks: AsyncIterator[bytes]
    size: int | None = None


async def _pulled(pull: _Pull, first: bytes | None) -> AsyncIterator[bytes]:
    try:
        chunk = first
        while chunk is not None:
            if chunk:
                yield chunk
            chunk = await asyncio.to_thread(pull.next)
    finally:
        # Closed in a thread, not awaited: a cancelled download (the client went away) frees the
        # database connection and the temporary file as soon as the thread pulling it is done.
        asyncio.get_running_loop().run_in_executor(None, pull.close)


async def export(
    conn: psycopg.AsyncConnection[Any],
    url: str,
    collection: Collection,
    query: ItemsQuery,
    fmt: str,
    limit: int | None,
) -> Download:
    """The items of ``query`` in ``fmt`` (a file format): at most ``limit`` features, all without one.

    ``conn`` binds the statement's values; the rows are read on a connection of their own to
    ``url`` (whose statement timeout bounds the export). Errors before the first byte (a
    timeout, a layer over :data:`MAX_FEATURES` for a GeoPackage or FlatGeobuf) are raised here;
    later ones end the download unfinished.
    """
    srid = query.crs.srid
    statement, params = rows_statement(
        collection,
        query,
        limit=limit if limit is not None else MAX_FEATURES + 1,
        text=fmt == "csv",
        covering=fmt == "parquet",
        coordinates=fmt == "csv" and has_points(collection),
    )
    rows = Rows(url, render(conn, statement, params), cap=limit or MAX_FEATURES)
    if fmt in _OGR_DRIVERS:
        path, _ = await asyncio.to_thread(_ogr_file, rows, fmt, collection, srid)
        pull = _Pull(_read_chunks(path))
        size = os.path.getsize(path)
    else:
        pull, size = _Pull(_chunks_of(rows, fmt, collection, srid)), None
    try:
        first = await asyncio.to_thread(pull.next)  # opens the connection: its errors come before the headers
    except BaseException:
        await asyncio.to_thread(pull.close)
        raise
    return Download(FORMATS[fmt], _pulled(pull, first), size)
