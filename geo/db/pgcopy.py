"""PostgreSQL binary ``COPY`` from Arrow tables, encoded with numpy and pyarrow compute (no per-row Python).

:func:`encode` turns an Arrow table into the body of a ``COPY ... FROM STDIN (FORMAT BINARY)``
stream (one tuple per row: an int16 field count, then per field an int32 length, -1 for NULL,
and the value in network byte order); :func:`copy_table` sends it with its signature and trailer.

The service's one binary COPY encoder: upload staging and the points of coverage reports are
written through it. Supported column types and the PostgreSQL types they go to: string
(``text``), binary (``bytea``, or ``geometry``: ``geometry_recv`` reads WKB), float64
(``float8``), int64 (``int8``), int32 (``int4``), bool (``bool``), date32 (``date``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"
PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days since 1970-01-01
CHUNK = 4 * 2**20


def _from_rows(matrix: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """A binary array whose row i is ``matrix[i]`` (length prefix and value) or only its 4-byte prefix when not valid."""
    n, width = matrix.shape
    if valid is None or valid.all():
        data = matrix.reshape(-1)
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    else:
        matrix[~valid, :4] = np.frombuffer(NULL, dtype=np.uint8)
        keep = np.ones((n, width), dtype=bool)
        keep[~valid, 4:] = False
        data = matrix[keep]
        lengths = np.where(valid, width, 4).astype(np.int32)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _fixed(values: np.ndarray, dtype: str, valid: np.ndarray | None) -> pa.Array:
    """Fixed-width values (already in the big-endian ``dtype``) with their length prefix."""
    n = len(values)
    size = np.dtype(dtype).itemsize
    matrix = np.empty((n, 4 + size), dtype=np.uint8)
    matrix[:, :4] = np.frombuffer(np.array([size], dtype=">i4").tobytes(), dtype=np.uint8)
    matrix[:, 4:] = np.ascontiguousarray(values, dtype=dtype).view(np.uint8).reshape(n, size)
    return _from_rows(matrix, valid)


def _valid(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return pc.is_valid(arr).to_numpy(zero_copy_only=False)


def encode_field(arr: pa.Array) -> pa.Array:
    """One column as binary COPY fields (length prefix and value, or -1 for NULL), one per row."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    valid = _valid(arr)
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    ):
        data = arr.cast(pa.binary()) if not pa.types.is_binary(t) else arr
        lengths = pc.fill_null(pc.binary_length(data), -1).to_numpy()
        n = len(lengths)
        prefix = np.ascontiguousarray(lengths, dtype=">i4").view(np.uint8).reshape(n, 4)
        prefix = _from_rows(prefix, None)
        data = pc.fill_null(data, b"")
        return pc.binary_join_element_wise(prefix, data, b"")
    if pa.types.is_float64(t) or pa.types.is_float32(t):
        values = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy()
        return _fixed(values, ">f8", valid)
    if pa.types.is_int64(t) or pa.types.is_int32(t) or pa.types.is_int16(t):
        fmt = {8: ">i8", 4: ">i4", 2: ">i2"}[t.bit_width // 8]
        values = pc.fill_null(arr, 0).to_numpy()
        return _fixed(values, fmt, valid)
    if pa.types.is_boolean(t):
        values = pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(np.uint8)
        return _fixed(values, "u1", valid)
    if pa.types.is_date32(t):
        values = pc.fill_null(arr.cast(pa.int32()), 0).to_numpy().astype(np.int64) - PG_EPOCH_DAYS
        return _fixed(values, ">i4", valid)
    raise TypeError(f"no binary COPY encoding for Arrow type {t}")


def encode(table: pa.Table | pa.RecordBatch) -> pa.Buffer:
    """The tuples of a binary COPY stream for all rows of ``table`` (no signature, no trailer)."""
    n = table.num_rows
    if n == 0:
        return pa.py_buffer(b"")
    count = np.array([table.num_columns], dtype=">i2").tobytes()
    fields = [encode_field(table.column(i)) for i in range(table.num_columns)]
    rows = pc.binary_join_element_wise(count, *fields, b"")
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=len(rows) + 1, offset=rows.offset * 4)
    return rows.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def chunks(body: pa.Buffer, size: int = CHUNK) -> Iterator[memoryview]:
    """The body in slices of at most ``size`` bytes."""
    view = memoryview(body)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def copy_table(
    conn: psycopg.Connection[Any], table_name: str, table: pa.Table, columns: Sequence[str] | None = None
) -> None:
    """``COPY table_name (columns) FROM STDIN (FORMAT BINARY)`` with the rows of an Arrow table.

    ``columns`` are the table's columns to send, in the order of the target columns of the same
    names (default: all of them).
    """
    names = list(columns) if columns is not None else table.column_names
    body = encode(table.select(names))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table_name), sql.SQL(", ").join(sql.Identifier(c) for c in names)
    )
    with conn.cursor().copy(statement) as copy:
        copy.write(SIGNATURE)
        for part in chunks(body):
            copy.write(part)
        copy.write(TRAILER)
