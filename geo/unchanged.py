"""An upload's rows that repeat the stored assets, found before they are sent to the database.

A borough's re-import mostly repeats what is stored. :class:`StoredAssets` reads the stored
assets of the borough and kind once, with ADBC (straight into Arrow, no per-row Python), and
:meth:`StoredAssets.split` compares each validated batch with them in Arrow. The import then
stages only the rows that may have changed, and the database compares those alone.

The comparison is conservative: a row counts as unchanged only if every value is equal byte
for byte: text, numbers, dates and booleans as such, ``extra`` as the text PostgreSQL prints
for jsonb (:func:`geo.mapping.extra_json` writes that layout), the geometry as WKB. Values equal
in meaning but written otherwise are staged and compared by the database, so the outcome of an
upload never depends on this step, only its time.

Example::

    stored = StoredAssets.read(url, "E09000006", "street_furniture", ["subtype", "status"], limit=10**6)
    if stored is not None:
        to_stage, unchanged_ids = stored.split(batch)
"""

from __future__ import annotations

from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

#: Below this many rows in the file, the database compares every row (reading the stored
#: assets would cost more than it saves).
MIN_ROWS = 10_000


class StoredAssets:
    """The live (not retired) assets of one borough and kind, as Arrow, keyed by ``source_id``."""

    def __init__(self, table: pa.Table, columns: list[str]) -> None:
        self.table = table
        self.columns = columns
        self.keys = pa.table({"source_id": table.column("source_id"), "stored": np.arange(table.num_rows)})

    @classmethod
    def read(
        cls, url: str, borough_code: str, kind: str, columns: list[str], limit: int
    ) -> StoredAssets | None:
        """Read the compared ``columns``, ``extra`` (as jsonb text) and the geometry (WKB).

        None if there are more than ``limit`` assets: reading them would cost more than
        comparing the file's rows in the database (reading one stored asset costs about as
        much as comparing one staged row there).
        """
        query = sql.SQL(
            """SELECT source_id, {columns}, extra::text AS extra, ST_AsBinary(geom) AS geom FROM assets
               WHERE borough_code = {borough} AND kind = {kind} AND retired_at IS NULL LIMIT {limit}"""
        ).format(
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            borough=sql.Literal(borough_code),
            kind=sql.Literal(kind),
            limit=sql.Literal(limit + 1),
        )
        # Literals, not parameters: with parameters the driver cannot stream the result by COPY
        # (twice as slow).
        with adbc.connect(url) as conn, conn.cursor() as cur:
            cur.execute(query.as_string())
            table = cur.fetch_arrow_table()
        return cls(table, columns) if table.num_rows <= limit else None

    def split(self, batch: pa.Table) -> tuple[pa.Table, pa.Array]:
        """The rows of ``batch`` that may differ from the stored assets, and the source ids of the others."""
        if not batch.num_rows or not self.table.num_rows:
            return batch, pa.array([], pa.string())
        rows = pa.table({"source_id": batch.column("source_id"), "row": np.arange(batch.num_rows)})
        pairs = self.keys.join(rows, "source_id", join_type="inner")  # Arrow's hash join, in C++
        where = np.full(batch.num_rows, -1)
        where[pairs.column("row").to_numpy()] = pairs.column("stored").to_numpy()
        found = where >= 0
        stored = self.table.take(np.where(found, where, 0))
        same: Any = pa.array(found)
        for name in (*self.columns, "extra", "geom"):
            same = pc.and_(same, _equal(batch.column(name), stored.column(name)))
        return batch.filter(pc.invert(same)), batch.column("source_id").filter(same).combine_chunks()


def _equal(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """Element-wise equality in which two nulls are equal (SQL's IS NOT DISTINCT FROM)."""
    if a.type != b.type:
        b = b.cast(a.type)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(pc.fill_null(pc.equal(a, b), False), both_null)
