"""An upload's row errors in the database (``upload_errors``): written by its job, read for the downloads.

The errors themselves are :class:`~geo.core.row_errors.RowError` records; their CSV is
:func:`geo.core.row_errors.errors_csv`.
"""

from __future__ import annotations

from typing import Any

import psycopg
import shapely
from psycopg.rows import dict_row

from geo.core.row_errors import RowError


def store_errors(conn: psycopg.Connection[Any], upload_id: int, errors: list[RowError]) -> None:
    """Replace the upload's stored row errors with ``errors`` (binary COPY, geometry as EWKB)."""
    conn.execute("DELETE FROM upload_errors WHERE upload_id = %s", [upload_id])
    with conn.cursor().copy(
        "COPY upload_errors (upload_id, seq, row_number, source_id, column_name, value, message, geom) "
        "FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int4", "int8", "text", "text", "text", "text", "bytea"])
        for seq, e in enumerate(errors, start=1):
            geom = None
            if e.geometry is not None:  # EWKB with SRID 27700, so the geometry column accepts it
                geom = shapely.to_wkb(
                    shapely.set_srid(shapely.from_wkb(e.geometry), 27700), include_srid=True
                )
            copy.write_row([upload_id, seq, e.row, e.source_id, e.column, e.value, e.message, geom])


#: An upload's row errors in row order, the first ``%(limit)s`` (all when NULL), geometry as WGS84 GeoJSON.
_SELECT_ERRORS = """SELECT row_number AS row, source_id, column_name AS column, value, message,
                           ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json AS geometry
                    FROM upload_errors WHERE upload_id = %(upload)s ORDER BY seq LIMIT %(limit)s"""


async def upload_errors(
    conn: psycopg.AsyncConnection[Any], upload_id: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """The row errors of an upload in row order (the first ``limit``), with WGS84 GeoJSON geometry where
    there is one."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT_ERRORS, {"upload": upload_id, "limit": limit})
        return await cur.fetchall()


def upload_errors_sync(
    conn: psycopg.Connection[Any], upload_id: int, limit: int | None = None
) -> list[dict[str, Any]]:
    """:func:`upload_errors` on a synchronous connection (the command line)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_SELECT_ERRORS, {"upload": upload_id, "limit": limit}).fetchall()
