"""Writing an upload: its validated rows staged, compared with the borough's assets, applied.

The job (:mod:`geo.uploads.process`) copies each validated batch into a temporary ``stage``
table (:func:`copy_batch`); :func:`count_changes` finds what is new, changed, unchanged and (in
replace mode) to retire, leaving the new and changed rows in ``delta``; :func:`apply_changes`
writes them: upsert by borough, kind and ``source_id``, and in replace mode retire (never
delete) the borough's assets of that kind that the file no longer holds.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from geo.db import pgcopy
from geo.uploads.records import UploadRequest
from geo.uploads.validation import output_schema

KEY_COLUMNS = ("row", "borough_code", "kind", "source_id")
ARROW_TO_PG = {
    pa.float64(): "float8",
    pa.bool_(): "bool",
    pa.date32(): "date",
    pa.string(): "text",
    pa.int64(): "int8",
}


def stage_columns(kind: str) -> list[tuple[str, str]]:
    """The columns of the ``stage`` table for ``kind``, with their PostgreSQL types."""
    schema = output_schema(kind)
    return [(f.name, "geometry" if f.name == "geom" else ARROW_TO_PG[f.type]) for f in schema]


def create_stage(conn: psycopg.Connection[Any], columns: list[tuple[str, str]]) -> None:
    """Create the transaction's ``stage`` (validated rows) and ``held`` (source ids not to retire) tables."""
    conn.execute(
        sql.SQL("CREATE TEMP TABLE stage ({}) ON COMMIT DROP").format(
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns)
        )
    )
    conn.execute("CREATE TEMP TABLE held (source_id text) ON COMMIT DROP")


def has_assets(conn: psycopg.Connection[Any], borough_code: str, kind: str) -> bool:
    """Whether the borough holds any asset of ``kind`` (retired ones included)."""
    found = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM assets WHERE borough_code = %s AND kind = %s)", [borough_code, kind]
    ).fetchone()
    return bool(found and found[0])


def copy_batch(conn: psycopg.Connection[Any], table: pa.Table, columns: list[tuple[str, str]]) -> None:
    """Binary COPY of one validated batch into ``stage``, encoded with Arrow (no per-row Python)."""
    pgcopy.copy_table(conn, "stage", table, [c for c, _ in columns if c not in ("borough_code", "kind")])


def compared(kind: str) -> list[str]:
    """Asset columns an upload writes (and compares), besides the key, extra and geometry."""
    return [c for c, _ in stage_columns(kind) if c not in KEY_COLUMNS and c not in ("extra", "geom")]


def _tuple(prefix: str, columns: list[str]) -> sql.Composable:
    parts: list[sql.Composable] = [
        sql.SQL("{}.{}").format(sql.Identifier(prefix), sql.Identifier(c)) for c in columns
    ]
    if prefix == "s":
        parts += [sql.SQL("s.extra::jsonb"), sql.SQL("ST_SetSRID(s.geom, 27700)")]
    else:
        parts += [sql.SQL("a.extra"), sql.SQL("a.geom")]
    return sql.SQL("({})").format(sql.SQL(", ").join(parts))


def count_changes(
    conn: psycopg.Connection[Any], request: UploadRequest, valid: int, existing: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """Count new, changed, unchanged (and retired) rows; leave the new and changed ones in ``delta``.

    ``valid`` counts the file's valid rows: the staged ones, and those :mod:`geo.uploads.unchanged`
    found unchanged before staging (they count as unchanged).

    ``delta`` (source_id, asset_id: NULL for a new asset) is what :func:`apply_changes` writes, so rows
    that did not change never reach the writes (an unchanged re-import writes nothing). When the
    borough holds no assets of the kind (``existing`` false), every staged row is new and nothing
    is joined.
    """
    columns = compared(request.kind)
    params = {"borough": request.borough_code, "kind": request.kind}
    if not existing:
        return {"new": valid, "changed": 0, "unchanged": 0, "retired": 0}, {}
    flags = [
        sql.SQL("a.{c} IS DISTINCT FROM s.{c} AS {f}").format(c=sql.Identifier(c), f=sql.Identifier(f"d_{c}"))
        for c in columns
    ] + [
        sql.SQL("a.extra IS DISTINCT FROM s.extra::jsonb AS d_extra"),
        sql.SQL("a.geom IS DISTINCT FROM ST_SetSRID(s.geom, 27700) AS d_geom"),
    ]
    conn.execute(
        sql.SQL(
            """CREATE TEMP TABLE delta ON COMMIT DROP AS
               SELECT s.source_id, a.id AS asset_id, {flags}
               FROM stage s LEFT JOIN assets a
                 ON a.borough_code = %(borough)s AND a.kind = %(kind)s AND a.source_id = s.source_id
               WHERE a.id IS NULL OR a.retired_at IS NOT NULL OR {old} IS DISTINCT FROM {new}"""
        ).format(flags=sql.SQL(", ").join(flags), old=_tuple("a", columns), new=_tuple("s", columns)),
        params,
    )
    names = [*columns, "extra", "geom"]
    per_field = [
        sql.SQL("count(*) FILTER (WHERE asset_id IS NOT NULL AND {})").format(sql.Identifier(f"d_{c}"))
        for c in names
    ]
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE asset_id IS NULL), count(*) FILTER (WHERE asset_id IS NOT NULL), {} "
        "FROM delta"
    ).format(sql.SQL(", ").join(per_field))
    row = conn.execute(query).fetchone()
    assert row is not None
    counts = {"new": row[0], "changed": row[1], "unchanged": valid - row[0] - row[1], "retired": 0}
    changed_fields = {name: n for name, n in zip(names, row[2:], strict=True) if n}
    if request.mode == "replace":
        retired = conn.execute(RETIRE_CANDIDATES.format(select="count(*)"), params).fetchone()
        counts["retired"] = retired[0] if retired else 0
    return counts, changed_fields


# Assets of the borough and kind that the file no longer holds. The file holds its staged
# rows and those in ``held``: rows with errors (in skip_invalid mode, so they are not retired
# by mistake) and rows found unchanged before staging.
RETIRE_CANDIDATES = """
SELECT {select} FROM assets a
WHERE a.borough_code = %(borough)s AND a.kind = %(kind)s AND a.retired_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM stage s WHERE s.source_id = a.source_id)
  AND NOT EXISTS (SELECT 1 FROM held h WHERE h.source_id = a.source_id)
"""


def _table_has_rows(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM assets)").fetchone()
    return bool(row and row[0])


def apply_changes(
    conn: psycopg.Connection[Any],
    request: UploadRequest,
    load_id: int,
    by: str,
    counts: dict[str, int],
    existing: bool,
) -> None:
    """Write what :func:`count_changes` found: insert the new rows, update the changed ones, retire (replace mode).

    Every write sets ``load_id`` to the upload's load: the view ``upload_assets`` (migration
    0011) reads which assets the upload touched, and how, from those rows and their history.
    """
    columns = compared(request.kind)
    idents = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    values = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns)
    params = {
        "borough": request.borough_code,
        "kind": request.kind,
        "load": load_id,
        "by": by,
    }
    # Into an empty table the indexes are cheaper to build once, sorted, after the insert than
    # to maintain row by row (the two GiST indexes about 2.7 times, all of them 1.5 times). DDL
    # is transactional, so a failed import leaves them as they were; the table is locked for
    # the import meanwhile.
    # The owner's functions (migration 0014) drop them, and build them again from the definitions
    # they saved: DDL the service's role may not run itself.
    rebuild = counts["new"] > 10_000 and not _table_has_rows(conn)
    if rebuild:
        conn.execute("SELECT assets_drop_indexes()")
    if counts["new"]:
        # Without existing assets every staged row is new; otherwise the new ones are in delta.
        source = (
            sql.SQL("stage s JOIN delta d ON d.source_id = s.source_id AND d.asset_id IS NULL")
            if existing
            else sql.SQL("stage s")
        )
        conn.execute(
            sql.SQL(
                """INSERT INTO assets (borough_code, kind, source_id, {idents}, extra, geom, load_id, changed_by)
                   SELECT %(borough)s, %(kind)s, s.source_id, {values}, s.extra::jsonb, ST_SetSRID(s.geom, 27700),
                          %(load)s, %(by)s
                   FROM {source}"""
            ).format(idents=idents, values=values, source=source),
            params,
        )
    if counts["changed"]:
        conn.execute(
            sql.SQL(
                """UPDATE assets a SET ({idents}, extra, geom, retired_at, load_id, changed_by)
                                     = ({values}, s.extra::jsonb, ST_SetSRID(s.geom, 27700), NULL, %(load)s, %(by)s)
                   FROM delta d JOIN stage s ON s.source_id = d.source_id
                   WHERE a.id = d.asset_id"""
            ).format(idents=idents, values=values),
            params,
        )
    if request.mode == "replace" and counts["retired"]:
        conn.execute(
            """UPDATE assets SET retired_at = now(), load_id = %(load)s, changed_by = %(by)s
               WHERE id IN ("""
            + RETIRE_CANDIDATES.format(select="a.id")
            + ")",
            params,
        )
    if rebuild:
        conn.execute("SELECT assets_create_indexes()")
