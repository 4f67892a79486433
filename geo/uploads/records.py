"""The ``uploads`` table: a submitted file registered as a queued upload, read, listed, claimed for apply.

A borough key sees its own borough's uploads only; an admin sees every one. The job that
processes an upload is :mod:`geo.uploads.process`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.access.audit import record_async
from geo.access.principals import Principal
from geo.core.errors import Conflict, InvalidInput, NotFound
from geo.core.jobs import owner
from geo.reference.boroughs import check_code
from geo.reference.model import KINDS


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


UPLOAD_COLUMNS = """id, borough_code, kind, mode, dry_run, skip_invalid, layer, file_name, size_bytes, sha256, state,
    progress_done, progress_total, format, crs, mapping, counts, changed_fields, report, message, load_id,
    created_by, applied_by, created_at, started_at, finished_at, applied_at, file_deleted_at"""


_SELECT_ONE = f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = %s"


def _visible(row: dict[str, Any] | None, upload_id: int, principal: Principal | None) -> dict[str, Any]:
    """``row`` if it exists and ``principal`` (None: the service itself) may see it, else :class:`UploadNotFound`."""
    if row is None or (
        principal is not None
        and principal.role == "borough"
        and row["borough_code"] != principal.borough_code
    ):
        raise UploadNotFound(f"no upload has id {upload_id}")
    return row


def get_upload_sync(conn: psycopg.Connection[Any], upload_id: int) -> dict[str, Any]:
    """One upload's record (synchronous, for the CLI and background jobs)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELECT_ONE, [upload_id])
        return _visible(cur.fetchone(), upload_id, None)


async def get_upload(
    conn: psycopg.AsyncConnection[Any], upload_id: int, principal: Principal
) -> dict[str, Any]:
    """One upload's record; a borough key sees only its own borough's uploads."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT_ONE, [upload_id])
        return _visible(await cur.fetchone(), upload_id, principal)


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
