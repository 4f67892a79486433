"""The map of an upload's rows: its valid and invalid rows as WGS84 GeoJSON points, bounded.

The staged rows do not outlive the job: they are in a temporary table that its transaction
drops (a dry run rolls it back). So the job keeps a :class:`RowSample` of the valid rows as it
stages them (at most :data:`MAX_KEPT`, evenly spaced by row, one point each) in
``upload_rows`` (migration 0018); the invalid rows' geometry is already in ``upload_errors``
(:mod:`geo.uploads.row_errors`). Every run of the job (the preview, then the apply, which reads
the same file again) replaces both, so an applied upload keeps its map; the retention purge
deletes both after ``CONNECTIVITY_RETENTION_UPLOAD_ERRORS_DAYS``, and the map then answers 410.

:func:`row_map` reads them back for ``GET /uploads/{id}/rows.geojson``: one SQL statement
samples, transforms to WGS84 and writes the GeoJSON, so a request holds at most ``limit``
features in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import shapely
from psycopg.rows import dict_row

from geo.core.errors import Gone, InvalidParameter
from geo.db import pgcopy
from geo.uploads.records import UploadStateError

#: Most valid rows the job keeps for the map of one upload.
MAX_KEPT = 20_000
#: Features one answer may hold, and how many it holds when not told.
MAX_LIMIT = 20_000
DEFAULT_LIMIT = 5_000


class RowSample:
    """An evenly spaced sample of the valid rows, at most ``cap``: those whose row number is 1 modulo ``every``.

    ``every`` doubles whenever the sample would pass ``cap`` (and the rows off the new spacing
    go), so the sample is the same whatever the batches, and memory stays within ``cap`` rows
    plus one batch. Rows are taken as a point each: the geometry's point on its surface
    (a point stays itself), in EPSG:27700.

    Examples
    --------
    >>> sample = RowSample(cap=4)
    >>> sample.every
    1
    """

    def __init__(self, cap: int = MAX_KEPT) -> None:
        self.cap = cap
        self.every = 1
        self._parts: list[tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, table: pa.Table) -> None:
        """Take the rows of a validated batch (columns ``row``, ``source_id``, ``geom`` as WKB) that fall on the spacing."""
        rows = table.column("row").to_numpy()
        take = np.flatnonzero((rows - 1) % self.every == 0)
        if not take.size:
            return
        points = shapely.from_wkb(table.column("geom").take(pa.array(take)).to_numpy(zero_copy_only=False))
        other = shapely.get_type_id(points) != 0  # a point is its own (and GEOS's way to it costs 1 µs)
        if other.any():
            points[other] = shapely.point_on_surface(points[other])
        x, y = shapely.get_x(points), shapely.get_y(points)
        usable = np.isfinite(x) & np.isfinite(y)  # an empty geometry has no point
        ids = table.column("source_id").take(pa.array(take[usable])).combine_chunks()
        self._parts.append((rows[take][usable], ids, x[usable], y[usable]))
        self._count += int(usable.sum())
        while self._count > self.cap:
            self._thin()

    def _thin(self) -> None:
        self.every *= 2
        parts = []
        for rows, ids, x, y in self._parts:
            keep = (rows - 1) % self.every == 0
            parts.append((rows[keep], ids.filter(pa.array(keep)), x[keep], y[keep]))
        self._parts = parts
        self._count = sum(len(p[0]) for p in parts)

    def table(self, upload_id: int) -> pa.Table:
        """The sample as the rows of ``upload_rows``."""
        if not self._parts:
            rows, ids, x, y = np.empty(0, np.int64), pa.array([], pa.string()), np.empty(0), np.empty(0)
        else:
            rows = np.concatenate([p[0] for p in self._parts])
            ids = pa.concat_arrays([p[1].cast(pa.string()) for p in self._parts])
            x = np.concatenate([p[2] for p in self._parts])
            y = np.concatenate([p[3] for p in self._parts])
        return pa.table(
            {
                "upload_id": pa.array(np.full(len(rows), upload_id, np.int64)),
                "row_number": pa.array(rows.astype(np.int64)),
                "source_id": ids,
                "x": pa.array(x, pa.float64()),
                "y": pa.array(y, pa.float64()),
            }
        )

    def summary(self) -> dict[str, int]:
        """What the upload's report keeps of the sample: its spacing and size."""
        return {"every": self.every, "kept": self._count}


def store_rows(conn: psycopg.Connection[Any], upload_id: int, sample: RowSample) -> None:
    """Replace the upload's kept rows with ``sample`` (binary COPY), in one transaction."""
    with conn.transaction():
        conn.execute("DELETE FROM upload_rows WHERE upload_id = %s", [upload_id])
        pgcopy.copy_table(conn, "upload_rows", sample.table(upload_id))


def check_limit(limit: int) -> int:
    """``limit`` if it is a number of features one answer may hold, else :class:`InvalidParameter`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit: {limit} is not between 1 and {MAX_LIMIT}")
    return limit


# One statement: the invalid rows (those with a usable geometry among the errors kept) and the
# kept valid rows are each sampled evenly by row, invalid first (they are what needs fixing: up
# to half the limit, or more when the valid rows leave room), then transformed and written as
# GeoJSON by PostGIS. The i-th of n rows is taken when (i+1)q/n passes an integer that iq/n had
# not: exactly q rows, spread evenly, the same on every call.
_ROW_MAP = """
WITH errors AS (
    SELECT row_number AS rn, (array_agg(source_id ORDER BY seq))[1] AS source_id,
           json_agg(json_build_object('column', column_name, 'message', message) ORDER BY seq) AS errors,
           (array_agg(geom ORDER BY seq) FILTER (WHERE geom IS NOT NULL AND NOT ST_IsEmpty(geom)))[1] AS geom
    FROM upload_errors WHERE upload_id = %(upload)s GROUP BY row_number
), located AS (
    -- A point for the marker: on the surface of a valid geometry; an invalid one (a bow-tie
    -- polygon) can make GEOS fail there, and its centroid is near enough.
    SELECT rn, source_id, errors,
           CASE WHEN ST_IsValid(geom) THEN ST_PointOnSurface(geom) ELSE ST_Centroid(geom) END AS geom
    FROM errors WHERE geom IS NOT NULL
), invalid AS (
    SELECT rn, source_id, errors, geom, row_number() OVER (ORDER BY rn) - 1 AS i, count(*) OVER () AS n
    FROM located
    -- Usable: within the British National Grid's extent, so that it has WGS84 coordinates.
    WHERE geom && ST_MakeEnvelope(-100000, -100000, 800000, 1400000, 27700)
), valid AS (
    SELECT row_number AS rn, source_id, ST_SetSRID(ST_MakePoint(x, y), 27700) AS geom,
           row_number() OVER (ORDER BY row_number) - 1 AS i, count(*) OVER () AS n
    FROM upload_rows WHERE upload_id = %(upload)s
), quota AS (
    SELECT q.ne, q.ni, q.nv, q.qi, LEAST(q.nv, %(limit)s - q.qi) AS qv
    FROM (SELECT ne, ni, nv, LEAST(ni, GREATEST(%(limit)s - nv, (%(limit)s + 1) / 2)) AS qi
          FROM (SELECT (SELECT count(*) FROM errors) AS ne, (SELECT count(*) FROM invalid) AS ni,
                       (SELECT count(*) FROM valid) AS nv) c) q
), chosen AS (
    SELECT rn, source_id, false AS valid, errors, geom FROM invalid, quota
    WHERE ((i + 1) * qi) / n > (i * qi) / n
    UNION ALL
    SELECT rn, source_id, true, '[]'::json, geom FROM valid, quota
    WHERE ((i + 1) * qv) / n > (i * qv) / n
)
SELECT quota.ne AS error_rows, quota.ni AS invalid_located, quota.nv AS valid_kept,
       quota.qi AS invalid_returned, quota.qv AS valid_returned,
       (SELECT coalesce(json_agg(json_build_object(
            'type', 'Feature', 'id', rn,
            'geometry', ST_AsGeoJSON(ST_Transform(geom, 4326), 6)::json,
            'properties', json_build_object('row', rn, 'source_id', source_id, 'valid', valid, 'errors', errors)
        ) ORDER BY rn), '[]'::json)::text FROM chosen) AS features
FROM quota
"""


@dataclass(frozen=True)
class RowMap:
    """The rows of one upload for its map: counts, and the chosen features as GeoJSON text."""

    counts: dict[str, int]
    sampled_every: int
    features: str

    def to_json(self) -> str:
        """The GeoJSON FeatureCollection (the features already serialised by PostGIS)."""
        c = self.counts
        head = {
            "type": "FeatureCollection",
            "numberMatched": c["valid"] + c["invalid_located"],
            "numberReturned": c["valid_returned"] + c["invalid_returned"],
            "counts": c,
            "sampled_every": self.sampled_every,
        }
        return json.dumps(head)[:-1] + ', "features": ' + self.features + "}"


def _check_mapped(upload: dict[str, Any]) -> dict[str, int]:
    """The job's record of the kept rows, or :class:`UploadStateError` saying why the upload has none."""
    upload_id, state = upload["id"], upload["state"]
    if state in ("queued", "running"):
        raise UploadStateError(
            f"upload {upload_id} is {state}: its rows can be mapped once its file has been read "
            f"(GET /uploads/{upload_id} shows how far it is)"
        )
    kept = (upload.get("report") or {}).get("map_rows")
    if kept is None:
        why = upload.get("message") or "its file was read before rows were kept for the map"
        raise UploadStateError(f"upload {upload_id} ({state}) has no rows to map: {why}")
    return dict(kept)


async def row_map(conn: psycopg.AsyncConnection[Any], upload: dict[str, Any], limit: int) -> RowMap:
    """The map of a read ``upload`` (its record, already checked visible): at most ``limit`` features.

    Parameters
    ----------
    conn : a connection of the service.
    upload : the upload's record (:func:`geo.uploads.records.get_upload`).
    limit : most features to return, 1 to :data:`MAX_LIMIT`.

    Returns
    -------
    RowMap
        ``counts``: ``valid`` and ``invalid`` (the file's), ``valid_kept`` (the job's sample),
        ``invalid_located`` (invalid rows with a usable geometry among the errors kept), and
        how many of each are returned.

    Raises
    ------
    UploadStateError
        The upload's file has not been read, or it was rejected before its rows were.
    Gone
        Its rows were deleted (retention).

    Notes
    -----
    One statement over the upload's primary-key ranges of ``upload_rows`` and
    ``upload_errors`` (at most :data:`MAX_KEPT` and ``max_errors`` rows).
    """
    check_limit(limit)
    kept = _check_mapped(upload)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_ROW_MAP, {"upload": upload["id"], "limit": limit})
        found = await cur.fetchone()
    assert found is not None
    counts = upload.get("counts") or {}
    errors_kept = (upload.get("report") or {}).get("errors_kept", 0)
    if (kept.get("kept", 0) and not found["valid_kept"]) or (errors_kept and not found["error_rows"]):
        raise Gone(f"upload {upload['id']}: its rows were deleted after the retention period of row errors")
    return RowMap(
        counts={
            "valid": int(counts.get("valid", 0)),
            "invalid": int(counts.get("invalid", 0)),
            "valid_kept": int(found["valid_kept"]),
            "invalid_located": int(found["invalid_located"]),
            "valid_returned": int(found["valid_returned"]),
            "invalid_returned": int(found["invalid_returned"]),
        },
        sampled_every=int(kept.get("every", 1)),
        features=found["features"],
    )
