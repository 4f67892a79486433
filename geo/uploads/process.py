"""The job of an upload: validate its file, preview the changes (dry run), or apply them in one transaction.

The file half (reading, mapping, validation) is :mod:`geo.uploads.staging`; this job streams the
validated rows into a temporary staging table (on a large re-import, only the rows
:mod:`geo.uploads.unchanged` cannot prove unchanged), works out what would change and applies it
(:mod:`geo.uploads.apply`). History is kept by the database trigger on ``assets``, so every
replaced version stays readable. An upload with row errors is rejected whole unless
``skip_invalid`` is set; a rejected or failed upload leaves the assets exactly as they were.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.access.audit import Actor, record
from geo.core.jobs import ACTIVE, JobStatus, finish
from geo.core.progress import Progress, silent
from geo.core.row_errors import UploadRejected
from geo.core.settings import UploadSettings
from geo.db import pgcopy
from geo.layers.collections import COLLECTIONS
from geo.layers.tiles import refresh_summaries, summaries_current
from geo.uploads import sandbox
from geo.uploads.apply import (
    apply_changes,
    compared,
    copy_batch,
    count_changes,
    create_stage,
    has_assets,
    stage_columns,
)
from geo.uploads.records import UploadNotFound, UploadRequest, file_digest, get_upload_sync
from geo.uploads.row_errors import store_errors
from geo.uploads.row_map import RowSample, store_rows
from geo.uploads.source import ReadLimits
from geo.uploads.staging import PreparedUpload, UploadReport, prepare_upload, read_ahead
from geo.uploads.unchanged import MIN_ROWS, StoredAssets


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
        if outcome["state"] != "applied":  # an applied upload's record was written with its assets
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
        existing = has_assets(conn, request.borough_code, request.kind)
        sample = _stage(conn, url, prepared, request, existing)
        report("compare", 0, 1)
        rep = prepared.report
        counts, changed_fields = count_changes(conn, request, rep.rows_valid, existing)
        counts.update(
            rows=rep.rows_read, valid=rep.rows_valid, invalid=rep.rows_invalid, errors=rep.error_count
        )
        store_errors(status.conn, upload_id, rep.errors)
        store_rows(status.conn, upload_id, sample)
        summary = _summary(rep, counts, changed_fields)
        summary["report"]["map_rows"] = sample.summary()
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
        _write(conn, upload_id, up, request, summary, existing, raw_min_zoom)
        conn.commit()
        report("apply", 1, 1)
        return {"state": "applied", **summary}


def _stage(
    conn: psycopg.Connection[Any], url: str, prepared: PreparedUpload, request: UploadRequest, existing: bool
) -> RowSample:
    """Stream the validated rows into ``stage``, and into ``held`` the source ids replace mode must keep.

    Returns the sample of the valid rows kept for the upload's map (:mod:`geo.uploads.row_map`):
    the stage is temporary, and unchanged rows of a large re-import never reach it.
    """
    columns = stage_columns(request.kind)
    create_stage(conn, columns)
    unchanged_ids: list[pa.Array] = []
    sample = RowSample()
    # A large re-import: the stored assets are read meanwhile (the file is read further ahead
    # while they come), and the rows equal to them are not sent.
    file_rows = prepared.source.row_count or 0
    compare = existing and file_rows >= MIN_ROWS
    with (
        ThreadPoolExecutor(1) as pool,
        contextlib.closing(read_ahead(prepared.batches(), depth=8 if compare else 2)) as batches,
    ):
        reading = (
            pool.submit(
                StoredAssets.read, url, request.borough_code, request.kind, compared(request.kind),
                limit=2 * file_rows,
            )
            if compare
            else None
        )  # fmt: skip
        for table in batches:
            sample.add(table)
            stored = reading.result() if reading else None
            if stored is not None:
                table, same = stored.split(table)
                unchanged_ids.append(same)
            if table.num_rows:
                copy_batch(conn, table, columns)
    rep = prepared.report
    # Source ids the file holds that are not staged: replace mode must not retire them.
    held = pa.array(sorted({e.source_id for e in rep.errors if e.source_id}), pa.string())
    if request.mode == "replace":
        held = pa.concat_arrays([held, *unchanged_ids])
    pgcopy.copy_table(conn, "held", pa.table({"source_id": held}))
    conn.execute("ANALYZE stage (source_id)")  # what the comparison joins on; geometry stats cost 1 s
    return sample


def _summary(rep: UploadReport, counts: dict[str, int], changed_fields: dict[str, int]) -> dict[str, Any]:
    """What the upload's record keeps of the run: counts, fields changed, format, CRS, mapping, report."""
    return {
        "counts": counts,
        "changed_fields": changed_fields,
        "format": rep.source.get("format"),
        "crs": rep.source.get("crs"),
        "mapping": rep.mapping,
        "report": {"source": rep.source, "notes": rep.notes, "repairs": [r.to_dict() for r in rep.repairs[:100]],
                   "errors_kept": len(rep.errors), "tolerance_m": rep.tolerance_m},
    }  # fmt: skip


def _write(
    conn: psycopg.Connection[Any],
    upload_id: int,
    up: dict[str, Any],
    request: UploadRequest,
    summary: dict[str, Any],
    existing: bool,
    raw_min_zoom: int,
) -> None:
    """Apply the staged changes as a load of their own, audit it, mark the upload applied (uncommitted)."""
    counts = summary["counts"]
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
    apply_changes(
        conn,
        request,
        int(load[0]),
        f"upload {upload_id} ({by})",
        counts,
        existing,
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
        refresh_summaries(conn, layers, raw_min_zoom, borough_code=request.borough_code if current else None)
    # The state turns 'applied' in the same transaction as the assets and with its counts,
    # so nobody reading the upload sees one without the other.
    conn.execute(
        """UPDATE uploads SET state = 'applied', load_id = %s, applied_at = now(), finished_at = now(),
                  dry_run = false,
                  counts = %s, changed_fields = %s, format = %s, crs = %s, mapping = %s, report = %s
           WHERE id = %s""",
        [load[0], *(Jsonb(summary[k]) for k in ("counts", "changed_fields")), summary["format"],
         summary["crs"], Jsonb(summary["mapping"]), Jsonb(summary["report"]), upload_id],
    )  # fmt: skip
