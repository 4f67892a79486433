"""An upload's rows that repeat the stored assets, found before they are sent to the database.

A borough's re-import mostly repeats what is stored. :class:`StoredAssets` reads the stored
assets of the borough and kind once, with ADBC (straight into Arrow, no per-row Python), and
:meth:`StoredAssets.split` compares each validated batch with them in Arrow. The import then
stages only the rows that may have changed, and the database compares those alone.

The comparison is conservative: a row counts as unchanged only if every value is equal byte
for byte: text, numbers, dates and booleans as such, ``extra`` as the text PostgreSQL prints
for jsonb (:func:`geo.uploads.conversion.extra_json` writes that layout), the geometry as WKB. Values equal
in meaning but written otherwise are staged and compared by the database, so the outcome of an
upload never depends on this step, only its time. Should the stored assets not be readable this
way, every row is staged.

The stored assets are read in a snapshot of their own, a moment before the upload's transaction
writes. A row someone changes in between is either left alone (the file matched it before the
change, as if the upload had come first) or staged and compared with its new state.

Example::

    stored = StoredAssets.read(url, "E09000006", "street_furniture", ["subtype", "status"], limit=10**6)
    if stored is not None:
        to_stage, unchanged_ids = stored.split(batch)
"""

from __future__ import annotations

import logging

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

log = logging.getLogger(__name__)

#: Below this many rows in the file, the database compares every row (reading the stored
#: assets would cost more than it saves).
MIN_ROWS = 10_000


class StoredAssets:
    """The live (not retired) assets of one borough and kind, as Arrow, keyed by ``source_id``."""

    def __init__(self, table: pa.Table, columns: list[str]) -> None:
        self.table = table
        self.columns = columns
        self.keys = pa.table({"source_id": table.column("source_id"), "stored": np.arange(table.num_rows)})
        self.next = 0  # where the next batch would start if the file lists the assets in stored order

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
        try:
            with adbc.connect(url) as conn, conn.cursor() as cur:
                cur.execute(query.as_string())
                table = cur.fetch_arrow_table()
        except adbc.Error as exc:  # a shortcut only: the database compares every row instead
            log.warning("stored assets not read before staging (%s); every row is staged", exc)
            return None
        return cls(table, columns) if table.num_rows <= limit else None

    def split(self, batch: pa.Table) -> tuple[pa.Table, pa.Array]:
        """The rows of ``batch`` that may differ from the stored assets, and the source ids of the others.

        A file usually lists its assets in about the order they were stored (a re-export of the
        same register): rows whose ``source_id`` is where the previous batch left off in the
        stored order are compared with that slice as it is; only the others are looked up.
        """
        n = batch.num_rows
        if not n or not self.table.num_rows:
            return batch, pa.array([], pa.string())
        ids = batch.column("source_id")
        start = self.next
        following = self.table.slice(start, n)
        m = following.num_rows
        same = np.zeros(n, dtype=bool)
        aligned = np.zeros(n, dtype=bool)
        if m:
            aligned[:m] = _equal(ids.slice(0, m), following.column("source_id")).to_numpy()
            same[:m] = aligned[:m] & self._same(batch.slice(0, m), following)
        self.next = start + n
        rest = np.flatnonzero(~aligned)
        if len(rest):
            others = batch.take(rest)
            looked_up = pa.table({"source_id": others.column("source_id"), "row": np.arange(len(rest))})
            pairs = self.keys.join(looked_up, "source_id", join_type="inner")  # Arrow's hash join, in C++
            where = np.full(len(rest), -1)
            where[pairs.column("row").to_numpy()] = pairs.column("stored").to_numpy()
            found = where >= 0
            if found.any():
                same[rest[found]] = self._same(others.filter(found), self.table.take(where[found]))
            if rest[-1] == n - 1 and found[-1]:
                self.next = int(where[-1]) + 1  # the file's order continues from there
        mask = pa.array(same)
        return batch.filter(pc.invert(mask)), ids.filter(mask).combine_chunks()

    def _same(self, batch: pa.Table, stored: pa.Table) -> np.ndarray:
        """Row by row, whether every compared value of ``batch`` equals that of ``stored`` (aligned)."""
        same = pa.chunked_array([np.ones(batch.num_rows, dtype=bool)])
        for name in (*self.columns, "extra", "geom"):
            same = pc.and_(same, _equal(batch.column(name), stored.column(name)))
        return same.to_numpy()


def _equal(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """Element-wise equality in which two nulls are equal (SQL's IS NOT DISTINCT FROM)."""
    if a.type != b.type:  # not comparable here: the database compares them
        return pa.chunked_array([pa.array(np.zeros(len(a), dtype=bool))])
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(pc.fill_null(pc.equal(a, b), False), both_null)
