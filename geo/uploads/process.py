"""Borough uploads into the database: stage, preview (dry run), apply in one transaction.

The file half (reading, mapping, validation) is :mod:`geo.uploads.staging`; this module records the
upload, streams its validated rows into a temporary staging table (on a large re-import,
only the rows :mod:`geo.uploads.unchanged` cannot prove unchanged), works out what would change, and
applies it in one transaction: upsert by borough, kind and ``source_id``; in
replace mode, retire (never delete) the borough's assets of that kind that the file no
longer holds. History is kept by the database trigger on ``assets``, so every replaced
version stays readable. An upload with row errors is rejected whole unless
``skip_invalid`` is set; a rejected or failed upload leaves the assets exactly as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import shapely
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.access.audit import Actor, record, record_async
from geo.access.principals import Principal
from geo.core.errors import Conflict, InvalidInput, NotFound
from geo.core.jobs import ACTIVE, JobStatus, finish, owner
from geo.core.progress import Progress, silent
from geo.core.row_errors import RowError, UploadRejected
from geo.core.settings import UploadSettings
from geo.db import pgcopy
from geo.layers.collections import COLLECTIONS
from geo.layers.tiles import refresh_summaries, summaries_current
from geo.reference.boroughs import check_code
from geo.reference.model import KINDS
from geo.uploads import gdal, sandbox
from geo.uploads.readers import ReadLimits, open_upload
from geo.uploads.staging import prepare_upload, read_ahead
from geo.uploads.unchanged import MIN_ROWS, StoredAssets
from geo.uploads.validation import output_schema

log = logging.getLogger("connectivity.uploads")
KEY_COLUMNS = ("row", "borough_code", "kind", "source_id")
ARROW_TO_PG = {
    pa.float64(): "float8",
    pa.bool_(): "bool",
    pa.date32(): "date",
    pa.string(): "text",
    pa.int64(): "int8",
}


class UploadNotFound(NotFound):
    """No upload has that id (404)."""


class UploadStateError(Conflict):
    """The upload is not in a state that allows this (409)."""


class InvalidUploadRequest(InvalidInput):
    """A parameter of the upload request is not acceptable (422)."""


@dataclass(frozen=True)
class UploadRequest:
    """What a borough asks for, besides the file."""

    borough_code: str
    kind: str
    mode: str = "append"
    dry_run: bool = False
    skip_invalid: bool = False
    layer: str | None = None
    mapping_spec: dict[str, Any] | None = None

    def checked(self) -> UploadRequest:
        """The request with its values validated."""
        check_fields(self.kind, self.mode)
        return UploadRequest(
            check_code(self.borough_code), self.kind, self.mode, self.dry_run, self.skip_invalid,
            self.layer or None, self.mapping_spec,
        )  # fmt: skip


def check_fields(kind: str | None, mode: str) -> None:
    """Raise :class:`InvalidUploadRequest` for an unknown kind (None: decided later) or mode."""
    if kind is not None and kind not in KINDS:
        raise InvalidUploadRequest(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if mode not in ("append", "replace"):
        raise InvalidUploadRequest(f"mode: {mode!r} is not append or replace")


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(2**20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def inspect_upload(
    path: Path, layer: str | None, kind: str | None, file_name: str, limits: ReadLimits
) -> str:
    """Open a received file (format, layers, CRS, coordinates) and return the asset kind to load it as.

    Whole-file problems raise :class:`UploadRejected` here, before anything is queued. Without
    ``kind``, the geometry decides: lines are ducts, polygons public buildings, points street furniture.
    """
    with open_upload(path, layer=layer, kind=kind, limits=limits, file_name=file_name) as info:
        geometry = info.geometry_type or ""
    if kind:
        return kind
    if "LineString" in geometry:
        return "duct"
    if "Polygon" in geometry:
        return "public_building"
    return "street_furniture"


async def register_upload(
    conn: psycopg.AsyncConnection[Any],
    request: UploadRequest,
    path: Path,
    file_name: str,
    principal: Principal,
) -> int:
    """Record a received file as a queued upload; the caller must be allowed to write the borough."""
    request = request.checked()
    principal.require_borough_write(request.borough_code)
    sha256, size = await asyncio.to_thread(file_digest, path)  # up to the upload limit: off the event loop
    async with conn.transaction():
        upload_id = await _insert_upload(conn, request, path, file_name, principal, sha256, size)
        await record_async(
            conn, principal, "upload.create", "upload", upload_id,
            {"borough_code": request.borough_code, "kind": request.kind, "mode": request.mode,
             "dry_run": request.dry_run, "file_name": file_name, "size_bytes": size, "sha256": sha256},
        )  # fmt: skip
    return upload_id


async def _insert_upload(
    conn: psycopg.AsyncConnection[Any],
    request: UploadRequest,
    path: Path,
    file_name: str,
    principal: Principal,
    sha256: str,
    size: int,
) -> int:
    cur = await conn.execute(
        """INSERT INTO uploads (borough_code, kind, mode, dry_run, skip_invalid, layer, mapping_spec,
                                file_name, file_path, size_bytes, sha256, key_id, created_by, owner, heartbeat_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now()) RETURNING id""",
        [
            request.borough_code, request.kind, request.mode, request.dry_run, request.skip_invalid,
            request.layer, Jsonb(request.mapping_spec) if request.mapping_spec else None, file_name,
            str(path), size, sha256, principal.key_id, principal.name, owner(),
        ],
    )  # fmt: skip
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def _stage_columns(kind: str) -> list[tuple[str, str]]:
    schema = output_schema(kind)
    return [(f.name, "geometry" if f.name == "geom" else ARROW_TO_PG[f.type]) for f in schema]


def _copy_batch(conn: psycopg.Connection[Any], table: pa.Table, columns: list[tuple[str, str]]) -> None:
    """Binary COPY of one validated batch into ``stage``, encoded with Arrow (no per-row Python)."""
    pgcopy.copy_table(conn, "stage", table, [c for c, _ in columns if c not in ("borough_code", "kind")])


def _compared(kind: str) -> list[str]:
    """Asset columns an upload writes (and compares), besides the key, extra and geometry."""
    return [c for c, _ in _stage_columns(kind) if c not in KEY_COLUMNS and c not in ("extra", "geom")]


def _tuple(prefix: str, columns: list[str]) -> sql.Composable:
    parts: list[sql.Composable] = [
        sql.SQL("{}.{}").format(sql.Identifier(prefix), sql.Identifier(c)) for c in columns
    ]
    if prefix == "s":
        parts += [sql.SQL("s.extra::jsonb"), sql.SQL("ST_SetSRID(s.geom, 27700)")]
    else:
        parts += [sql.SQL("a.extra"), sql.SQL("a.geom")]
    return sql.SQL("({})").format(sql.SQL(", ").join(parts))


def _diff(
    conn: psycopg.Connection[Any], request: UploadRequest, valid: int, existing: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """Count new, changed, unchanged (and retired) rows; leave the new and changed ones in ``delta``.

    ``valid`` counts the file's valid rows: the staged ones, and those :mod:`geo.uploads.unchanged`
    found unchanged before staging (they count as unchanged).

    ``delta`` (source_id, asset_id: NULL for a new asset) is what :func:`_apply` writes, so rows
    that did not change never reach the writes (an unchanged re-import writes nothing). When the
    borough holds no assets of the kind (``existing`` false), every staged row is new and nothing
    is joined.
    """
    columns = _compared(request.kind)
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


def _apply(
    conn: psycopg.Connection[Any],
    request: UploadRequest,
    load_id: int,
    by: str,
    counts: dict[str, int],
    existing: bool,
) -> None:
    """Write what :func:`_diff` found: insert the new rows, update the changed ones, retire (replace mode).

    Every write sets ``load_id`` to the upload's load: the view ``upload_assets`` (migration
    0011) reads which assets the upload touched, and how, from those rows and their history.
    """
    columns = _compared(request.kind)
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


def _store_errors(conn: psycopg.Connection[Any], upload_id: int, errors: list[RowError]) -> None:
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


def process_upload(
    url: str,
    upload_id: int,
    settings: UploadSettings,
    *,
    apply: bool | None = None,
    raw_min_zoom: int = 13,
    progress: Progress = silent,
) -> dict[str, Any]:
    """Validate, preview and (unless a dry run) apply one registered upload; return its record.

    ``apply=True`` applies an upload that was previewed (its stored file is read again).
    Whatever happens, the upload's state says how it ended: ``previewed``, ``applied``,
    ``rejected`` (the file or its rows are unusable; nothing written) or ``failed``; the final
    state is written on a fresh connection (:meth:`JobStatus.finish`).
    """
    status = JobStatus(url, "uploads", upload_id, every=0.5)
    try:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            up = conn.execute("SELECT * FROM uploads WHERE id = %s", [upload_id]).fetchone()
        if up is None:
            raise UploadNotFound(f"no upload has id {upload_id}")
        request = UploadRequest(
            up["borough_code"], up["kind"], up["mode"], up["dry_run"] and not apply, up["skip_invalid"], up["layer"],
            up["mapping_spec"],
        )  # fmt: skip
        status.set(state="running", started_at=_now(), message=None, progress_done=0)
        outcome = _run(url, upload_id, up, request, settings, raw_min_zoom, status, progress)
        status.finish(finished_at=_now(), **outcome)
    except UploadRejected as exc:
        status.finish(
            state="rejected", message=exc.message, report={"rejected": exc.to_dict()}, finished_at=_now()
        )
    except Exception as exc:  # recorded, so the upload never stays 'running'
        status.finish(state="failed", message=f"{type(exc).__name__}: {exc}", finished_at=_now())
        raise
    finally:
        status.close()
    with psycopg.connect(url) as conn:
        return get_upload_sync(conn, upload_id)


def run_upload_job(
    url: str, upload_id: int, settings: UploadSettings, *, apply: bool = False, raw_min_zoom: int = 13
) -> None:
    """:func:`process_upload` in a child process within the upload's memory and time limits (the service's jobs).

    A file that needs more than ``max_memory_mb`` or ``max_seconds`` is stopped and the upload
    ``rejected`` with the reason; a reader that crashes leaves it ``failed``. Either way nothing
    is written: the child's transaction dies with its connection.
    """
    with ACTIVE.tracking("uploads", upload_id):
        try:
            sandbox.run(
                process_upload, url, upload_id, settings, apply=apply, raw_min_zoom=raw_min_zoom,
                memory_mb=settings.max_memory_mb, seconds=settings.max_seconds,
            )  # fmt: skip
        except sandbox.LimitExceeded as exc:
            message = (
                f"reading the file was stopped: {exc} (the limit for one upload); nothing was written. "
                "Split the file, or simplify its geometries"
            )
            values = {"state": "rejected", "finished_at": _now(), "message": message}
            finish(url, "uploads", upload_id, values, unless_finished=True)
        except sandbox.WorkerCrashed as exc:
            message = f"reading the file failed: {exc}; nothing was written"
            values = {"state": "failed", "finished_at": _now(), "message": message}
            finish(url, "uploads", upload_id, values, unless_finished=True)


def inspect_isolated(
    path: Path, layer: str | None, kind: str | None, file_name: str, settings: UploadSettings
) -> str:
    """:func:`inspect_upload` in a child process within the upload limits; a file beyond them is rejected."""
    try:
        return sandbox.run(
            inspect_upload, path, layer, kind, file_name, ReadLimits.from_settings(settings),
            memory_mb=settings.max_memory_mb, seconds=settings.inspect_seconds,
        )  # fmt: skip
    except sandbox.LimitExceeded as exc:
        raise UploadRejected(
            f"reading the file was stopped: {exc} (the limit for one upload)", file=file_name
        ) from None
    except sandbox.WorkerCrashed as exc:
        raise UploadRejected(f"the file cannot be read: {exc}", file=file_name) from None
    except (UploadRejected, InvalidUploadRequest, gdal.GdalUnavailable):  # the last: the server's fault (503)
        raise
    except Exception as exc:  # whatever else a reader raised on this file: the file's fault, not a 500
        log.error("reading %s failed", file_name, exc_info=exc)
        raise UploadRejected(f"the file cannot be read ({type(exc).__name__})", file=file_name) from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _run(
    url: str,
    upload_id: int,
    up: dict[str, Any],
    request: UploadRequest,
    settings: UploadSettings,
    raw_min_zoom: int,
    status: JobStatus,
    progress: Progress,
) -> dict[str, Any]:
    path = Path(up["file_path"])
    sha256, _ = file_digest(path)
    if sha256 != up["sha256"]:
        raise UploadRejected(
            "the stored file changed since it was uploaded; upload it again", file=up["file_name"]
        )

    def report(step: str, done: int, total: int) -> None:
        status.progress(step, done, total)
        progress(step, done, total)

    limits = ReadLimits.from_settings(settings)
    columns = _stage_columns(request.kind)
    with (
        prepare_upload(
            path, request.borough_code, request.kind, layer=request.layer, mapping=request.mapping_spec,
            tolerance_m=settings.tolerance_m, limits=limits, progress=report, file_name=up["file_name"],
            max_errors=settings.max_errors,
        ) as prepared,
        psycopg.connect(url) as conn,
    ):  # fmt: skip
        conn.execute("SET LOCAL work_mem = '256MB'")
        # The job's own limit: no statement may outlast the job (API requests have 30 s).
        conn.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(settings.max_seconds * 1000))
        )
        conn.execute(
            sql.SQL("CREATE TEMP TABLE stage ({}) ON COMMIT DROP").format(
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns)
            )
        )
        conn.execute("CREATE TEMP TABLE held (source_id text) ON COMMIT DROP")
        found = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM assets WHERE borough_code = %s AND kind = %s)",
            [request.borough_code, request.kind],
        ).fetchone()
        has_assets = bool(found and found[0])
        unchanged_ids: list[pa.Array] = []
        # A large re-import: the stored assets are read meanwhile (the file is read further ahead
        # while they come), and the rows equal to them are not sent.
        file_rows = prepared.source.row_count or 0
        compare = has_assets and file_rows >= MIN_ROWS
        with (
            ThreadPoolExecutor(1) as pool,
            contextlib.closing(read_ahead(prepared.batches(), depth=8 if compare else 2)) as batches,
        ):
            reading = (
                pool.submit(
                    StoredAssets.read, url, request.borough_code, request.kind, _compared(request.kind),
                    limit=2 * file_rows,
                )
                if compare
                else None
            )  # fmt: skip
            for table in batches:
                stored = reading.result() if reading else None
                if stored is not None:
                    table, same = stored.split(table)
                    unchanged_ids.append(same)
                if table.num_rows:
                    _copy_batch(conn, table, columns)
        rep = prepared.report
        # Source ids the file holds that are not staged: replace mode must not retire them.
        held = pa.array(sorted({e.source_id for e in rep.errors if e.source_id}), pa.string())
        if request.mode == "replace":
            held = pa.concat_arrays([held, *unchanged_ids])
        pgcopy.copy_table(conn, "held", pa.table({"source_id": held}))
        conn.execute("ANALYZE stage (source_id)")  # what the comparison joins on; geometry stats cost 1 s
        report("compare", 0, 1)
        counts, changed_fields = _diff(conn, request, rep.rows_valid, has_assets)
        counts.update(
            rows=rep.rows_read, valid=rep.rows_valid, invalid=rep.rows_invalid, errors=rep.error_count
        )
        _store_errors(status.conn, upload_id, rep.errors)
        summary: dict[str, Any] = {
            "counts": counts,
            "changed_fields": changed_fields,
            "format": rep.source.get("format"),
            "crs": rep.source.get("crs"),
            "mapping": rep.mapping,
            "report": {"source": rep.source, "notes": rep.notes, "repairs": [r.to_dict() for r in rep.repairs[:100]],
                       "errors_kept": len(rep.errors), "tolerance_m": rep.tolerance_m},
        }  # fmt: skip
        if request.dry_run:
            conn.rollback()
            return {"state": "previewed", **summary}
        if rep.error_count and not request.skip_invalid:
            conn.rollback()
            message = (
                f"{rep.error_count} row(s) have errors, so nothing was applied; fix them, "
                "or upload again with skip_invalid to apply the valid rows"
            )
            return {"state": "rejected", "message": message, **summary}
        report("apply", 0, 1)
        # Who writes: the key that applied a dry run, else the one that uploaded.
        by = up["applied_by"] if up["dry_run"] and up["applied_by"] else up["created_by"]
        load = conn.execute(
            """INSERT INTO loads (source, description, borough_code, created_by, details)
               VALUES ('upload', %s, %s, %s, %s) RETURNING id""",
            [f"upload {upload_id}: {up['file_name']}", request.borough_code, by,
             Jsonb({"upload_id": upload_id, "sha256": up["sha256"]})],
        ).fetchone()  # fmt: skip
        assert load is not None
        # The summaries of the other boroughs stay valid if they were current before this write.
        current = summaries_current(conn, request.kind, raw_min_zoom)
        _apply(
            conn,
            request,
            int(load[0]),
            f"upload {upload_id} ({by})",
            counts,
            has_assets,
        )
        conn.execute("UPDATE loads SET finished_at = now() WHERE id = %s", [load[0]])
        applier = up["applied_key_id"] if up["dry_run"] and up["applied_by"] else up["key_id"]
        record(
            conn, Actor(by, applier), "upload.applied", "upload", upload_id,
            {"load_id": load[0], "counts": {k: counts[k] for k in ("new", "changed", "retired")},
             "borough_code": request.borough_code, "kind": request.kind},
        )  # fmt: skip
        if counts["new"] or counts["changed"] or counts["retired"]:
            layers = [c for c in COLLECTIONS.values() if c.kind == request.kind]
            refresh_summaries(
                conn, layers, raw_min_zoom, borough_code=request.borough_code if current else None
            )
        # The state turns 'applied' in the same transaction as the assets and with its counts,
        # so nobody reading the upload sees one without the other.
        conn.execute(
            """UPDATE uploads SET state = 'applied', load_id = %s, applied_at = now(), dry_run = false,
                      counts = %s, changed_fields = %s, format = %s, crs = %s, mapping = %s, report = %s
               WHERE id = %s""",
            [load[0], *(Jsonb(summary[k]) for k in ("counts", "changed_fields")), summary["format"],
             summary["crs"], Jsonb(summary["mapping"]), Jsonb(summary["report"]), upload_id],
        )  # fmt: skip
        conn.commit()
        report("apply", 1, 1)
        return {"state": "applied", **summary}


UPLOAD_COLUMNS = """id, borough_code, kind, mode, dry_run, skip_invalid, layer, file_name, size_bytes, sha256, state,
    progress_done, progress_total, format, crs, mapping, counts, changed_fields, report, message, load_id,
    created_by, applied_by, created_at, started_at, finished_at, applied_at, file_deleted_at"""


def get_upload_sync(conn: psycopg.Connection[Any], upload_id: int) -> dict[str, Any]:
    """One upload's record (synchronous, for the CLI and background jobs)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = %s", [upload_id])
        row = cur.fetchone()
    if row is None:
        raise UploadNotFound(f"no upload has id {upload_id}")
    return row


async def get_upload(
    conn: psycopg.AsyncConnection[Any], upload_id: int, principal: Principal
) -> dict[str, Any]:
    """One upload's record; a borough key sees only its own borough's uploads."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = %s", [upload_id])
        row = await cur.fetchone()
    if row is None or (principal.role == "borough" and row["borough_code"] != principal.borough_code):
        raise UploadNotFound(f"no upload has id {upload_id}")
    return row


async def list_uploads(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    borough_code: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Recent uploads, newest first (a borough key sees its own borough's only)."""
    if principal.role == "borough":
        borough_code = principal.borough_code
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {UPLOAD_COLUMNS} FROM uploads
                WHERE (%(b)s::text IS NULL OR borough_code = %(b)s) ORDER BY id DESC LIMIT %(limit)s""",
            {"b": borough_code, "limit": limit},
        )
        return await cur.fetchall()


async def upload_errors(conn: psycopg.AsyncConnection[Any], upload_id: int) -> list[dict[str, Any]]:
    """The row errors of an upload, in row order, with WGS84 GeoJSON geometry where there is one."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT row_number AS row, source_id, column_name AS column, value, message,
                      ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json AS geometry
               FROM upload_errors WHERE upload_id = %s ORDER BY seq""",
            [upload_id],
        )
        return await cur.fetchall()


async def mark_for_apply(
    conn: psycopg.AsyncConnection[Any], upload_id: int, principal: Principal
) -> dict[str, Any]:
    """Queue a previewed upload to be applied by this caller; 409 unless this call moved it.

    The conditional update is the claim: of two applies at once, one changes the row and
    starts a job, the other is told the upload is no longer a previewed dry run.
    """
    upload = await get_upload(conn, upload_id, principal)
    principal.require_borough_write(upload["borough_code"])
    if upload["file_deleted_at"] is not None:
        raise UploadStateError(
            f"upload {upload_id}: its file was deleted on {upload['file_deleted_at']:%Y-%m-%d} (retention of "
            "received files); upload the file again"
        )
    cur = await conn.execute(
        """UPDATE uploads SET state = 'queued', applied_by = %s, applied_key_id = %s, owner = %s,
                  heartbeat_at = now(), message = NULL
           WHERE id = %s AND state = 'previewed' RETURNING id""",
        [principal.name, principal.key_id, owner(), upload_id],
    )
    if await cur.fetchone() is None:
        current = await get_upload(conn, upload_id, principal)
        raise UploadStateError(
            f"upload {upload_id} is {current['state']}; only a previewed dry run can be applied"
        )
    await record_async(conn, principal, "upload.apply", "upload", upload_id)
    return upload
