"""Importing a Pipeline file: one transaction of upserts, the import record and its row errors.

:func:`import_pipeline` upserts by Pipeline id, or for the id-less CSV by organisation and
title. Only the fields a file carries are written, so a summary list never erases a full
project's description, and a re-import of the same file changes nothing. History is kept by
the database trigger on ``pipeline_projects``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from shapely.geometry.base import BaseGeometry

from geo.access.audit import record
from geo.access.principals import Principal
from geo.core.jobs import ACTIVE, finish, owner
from geo.core.progress import Progress, silent
from geo.core.row_errors import RowError, UploadRejected
from geo.projects.model import DATA_FIELDS, PLACEMENT_FIELDS, ImportNotFound
from geo.projects.placing import BOROUGH_AT, placement_of
from geo.projects.source import ParsedProject, detect_format, read_projects
from geo.reference.gazetteer import place

WRITE_FIELDS = (*DATA_FIELDS, *PLACEMENT_FIELDS)
EXISTING_SQL = sql.SQL(
    "SELECT id, {fields}, ST_AsBinary(location) AS location FROM pipeline_projects"
).format(fields=sql.SQL(", ").join(sql.Identifier(f) for f in WRITE_FIELDS))
_COLUMN_LIST = ", ".join((*WRITE_FIELDS, "location", "source", "import_id", "changed_by"))
_VALUES = ", ".join(["%s"] * len(WRITE_FIELDS) + ["ST_GeomFromWKB(%s, 27700)", "%s", "%s", "%s"])
_INSERT_SQL = f"INSERT INTO pipeline_projects ({_COLUMN_LIST}) VALUES ({_VALUES}) RETURNING id"
_UPDATE_SQL = f"UPDATE pipeline_projects SET ({_COLUMN_LIST}) = ({_VALUES}) WHERE id = %s"


def _same_location(old: bytes | None, new: BaseGeometry | None) -> bool:
    if old is None or new is None:
        return old is None and new is None
    return bool(shapely.from_wkb(bytes(old)).equals_exact(new, 0))


class _Matcher:
    """Finds the stored project a parsed row updates."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.by_id = {r["pipeline_id"]: r for r in rows if r["pipeline_id"] is not None}
        self.by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            self.by_name.setdefault((r["organisation"].lower(), r["title"].lower()), []).append(r)

    def find(self, project: ParsedProject) -> dict[str, Any] | None:
        pid = project.fields.get("pipeline_id")
        if pid is not None and pid in self.by_id:
            return self.by_id[pid]
        name = ((project.fields.get("organisation") or "").lower(), project.fields["title"].lower())
        candidates = self.by_name.get(name, [])
        csv_rows = [r for r in candidates if r["pipeline_id"] is None]
        if csv_rows:
            # A project first seen in the CSV export, now known by its Pipeline id (or seen again).
            return csv_rows[0]
        if pid is None:
            if len(candidates) > 1:
                raise ValueError(
                    f"{len(candidates)} Pipeline projects of {name[0]!r} are titled {project.fields['title']!r}; "
                    "import the JSON to tell them apart"
                )
            return candidates[0] if candidates else None
        return None

    def remember(self, row: dict[str, Any]) -> None:
        if row["pipeline_id"] is not None:
            self.by_id[row["pipeline_id"]] = row
        self.by_name.setdefault((row["organisation"].lower(), row["title"].lower()), []).append(row)


def _apply(
    conn: psycopg.Connection[Any],
    projects: list[ParsedProject],
    import_id: int,
    source: str,
    by: str,
    progress: Progress,
) -> tuple[dict[str, int], list[RowError]]:
    counts = {"new": 0, "changed": 0, "unchanged": 0, "unplaced": 0}
    errors: list[RowError] = []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(EXISTING_SQL)
        matcher = _Matcher(cur.fetchall())
    for done, project in enumerate(projects, start=1):
        try:
            match = matcher.find(project)
        except ValueError as exc:
            errors.append(
                RowError(project.row, project.source_id, "Title", project.fields["title"], str(exc))
            )
            continue
        merged: dict[str, Any] = {f: (match[f] if match else None) for f in DATA_FIELDS}
        if not match:
            merged.update(tags=[], organisation="")
        merged.update(project.fields)
        if match and merged["pipeline_id"] is None:
            merged["pipeline_id"] = match["pipeline_id"]
        old_location = match["location"] if match else None
        location = project.location
        if not project.has_location and old_location is not None:
            location = shapely.from_wkb(bytes(old_location))
        borough_at = None
        if location is not None and not place(merged["organisation"]).borough_code:
            found = conn.execute(BOROUGH_AT, [shapely.to_wkb(location)]).fetchone()
            borough_at = found[0] if found else None
        merged.update(placement_of(merged["organisation"], location is not None, borough_at))
        counts["unplaced"] += merged["placement"] == "unplaced"
        wkb = None if location is None else shapely.to_wkb(location)
        values = [*(merged[f] for f in WRITE_FIELDS), wkb, source, import_id, by]
        if match is None:
            inserted = conn.execute(_INSERT_SQL, values).fetchone()
            assert inserted is not None
            counts["new"] += 1
            matcher.remember({**merged, "id": inserted[0], "location": wkb})
        elif any(match[f] != merged[f] for f in WRITE_FIELDS) or not _same_location(old_location, location):
            conn.execute(_UPDATE_SQL, [*values, match["id"]])
            counts["changed"] += 1
            match.update({**merged, "location": wkb})
        else:
            counts["unchanged"] += 1
        progress("import", done, len(projects))
    return counts, errors


def _store_errors(conn: psycopg.Connection[Any], import_id: int, errors: list[RowError]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO pipeline_import_errors (import_id, seq, row_number, source_id, column_name, value, message)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            [
                (import_id, i, e.row, e.source_id, e.column, e.value, e.message)
                for i, e in enumerate(errors, 1)
            ],
        )


def import_pipeline(
    conn: psycopg.Connection[Any],
    data: bytes,
    file_name: str,
    principal: Principal,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress = silent,
    url: str | None = None,
) -> dict[str, Any]:
    """Import a Pipeline JSON or CSV file and return the import record.

    Parameters
    ----------
    conn
        A synchronous connection; with autocommit on, the record and the changes are committed
        here (the changes in one transaction).
    data, file_name
        The file's bytes and name (the extension chooses JSON or CSV).
    principal
        Who imports: admins only.
    dry_run
        Work out the counts, write nothing but the import record (state ``previewed``).
    skip_invalid
        Apply the valid rows when some have errors; otherwise any row error rejects the whole
        file (state ``rejected``) and nothing changes, as with asset uploads.
    url
        The database's URL: a failure is then recorded on a fresh connection (the import's own
        may be what failed). Without it, on ``conn``; an import whose end could not be written is
        marked interrupted by the reaper once its process no longer tracks it.

    Returns
    -------
    dict
        The ``pipeline_imports`` row: ``state`` (applied, previewed, rejected, failed), ``counts``
        (rows, valid, invalid, errors, new, changed, unchanged, unplaced) and ``message``.

    Examples
    --------
    >>> record = import_pipeline(conn, path.read_bytes(), path.name, admin)  # doctest: +SKIP
    >>> record["counts"]["new"]  # doctest: +SKIP
    15

    A second import of the same file counts every project unchanged and writes no history.
    Performance: one statement per new or changed project; Pipeline holds a few thousand.
    """
    principal.require_role("admin")
    fmt = detect_format(data, file_name) if data.strip() else "json"
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO pipeline_imports (file_name, sha256, size_bytes, format, dry_run, skip_invalid,
                                             key_id, created_by, owner, heartbeat_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) RETURNING id""",
            [file_name, hashlib.sha256(data).hexdigest(), len(data), fmt, dry_run, skip_invalid,
             principal.key_id, principal.name, owner()],
        ).fetchone()  # fmt: skip
    assert row is not None
    import_id = int(row[0])
    with ACTIVE.tracking("pipeline_imports", import_id):
        return _import(conn, import_id, data, file_name, principal, dry_run, skip_invalid, progress, url)


def _import(
    conn: psycopg.Connection[Any],
    import_id: int,
    data: bytes,
    file_name: str,
    principal: Principal,
    dry_run: bool,
    skip_invalid: bool,
    progress: Progress,
    finish_url: str | None,
) -> dict[str, Any]:
    fmt = "json"
    state, message = "applied", None
    counts: dict[str, int] = {}
    errors: list[RowError] = []
    try:
        fmt, projects, errors = read_projects(data, file_name)
        invalid_rows = len({e.row for e in errors})
        counts = {"rows": len(projects) + invalid_rows, "valid": len(projects), "invalid": invalid_rows}
        if errors and not skip_invalid:
            state = "rejected"
            message = f"{invalid_rows} row(s) have errors; nothing was imported (fix them, or import with skip_invalid)"
        else:
            with conn.transaction() as tx:
                changes, match_errors = _apply(conn, projects, import_id, fmt, principal.name, progress)
                counts.update(changes)
                errors += match_errors
                if dry_run:
                    state = "previewed"
                    raise psycopg.Rollback(tx)
                # Recorded with the changes, in their transaction.
                record(
                    conn, principal, "pipeline.import", "pipeline_import", import_id,
                    {"state": state, "dry_run": False, "file_name": file_name, "counts": counts},
                )  # fmt: skip
    except UploadRejected as exc:
        state, message = "rejected", exc.message
    except Exception as exc:
        values = {
            "state": "failed",
            "message": f"{type(exc).__name__}: {exc}",
            "finished_at": dt.datetime.now(dt.UTC),
        }
        if finish_url is not None:  # on a fresh connection: the import's own may be what broke
            finish(finish_url, "pipeline_imports", import_id, values)
        else:
            with conn.transaction():
                conn.execute(
                    "UPDATE pipeline_imports SET state = 'failed', message = %s, finished_at = now() WHERE id = %s",
                    [values["message"], import_id],
                )
        raise
    counts["errors"] = len(errors)
    with conn.transaction():
        _store_errors(conn, import_id, errors)
        if state != "applied":
            record(
                conn, principal, "pipeline.import", "pipeline_import", import_id,
                {"state": state, "dry_run": dry_run, "file_name": file_name, "counts": counts},
            )  # fmt: skip
        conn.execute(
            """UPDATE pipeline_imports SET state = %s, message = %s, counts = %s, format = %s, finished_at = now()
               WHERE id = %s""",
            [state, message, Jsonb(counts), fmt, import_id],
        )
    return _import_record(conn, import_id)


IMPORT_SQL = """SELECT id, file_name, sha256, size_bytes, format, dry_run, skip_invalid, state, counts, message,
                       created_by, created_at, finished_at
                FROM pipeline_imports WHERE id = %s"""
ERRORS_SQL = """SELECT row_number AS row, source_id, column_name AS column, value, message
                FROM pipeline_import_errors WHERE import_id = %s ORDER BY seq"""


def _found(record: dict[str, Any] | None, import_id: int) -> dict[str, Any]:
    if record is None:
        raise ImportNotFound(f"no Pipeline import {import_id}")
    return record


def _import_record(conn: psycopg.Connection[Any], import_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(IMPORT_SQL, [import_id])
        return _found(cur.fetchone(), import_id)


async def get_import(
    conn: psycopg.AsyncConnection[Any], import_id: int, principal: Principal
) -> dict[str, Any]:
    """One import record (admins only); :class:`~geo.projects.model.ImportNotFound` when there is none."""
    principal.require_role("admin")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(IMPORT_SQL, [import_id])
        return _found(await cur.fetchone(), import_id)


async def import_errors(
    conn: psycopg.AsyncConnection[Any], import_id: int, principal: Principal
) -> list[dict[str, Any]]:
    """The row errors of an import, in file order (admins only)."""
    await get_import(conn, import_id, principal)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ERRORS_SQL, [import_id])
        return await cur.fetchall()


def import_errors_sync(conn: psycopg.Connection[Any], import_id: int) -> list[dict[str, Any]]:
    """:func:`import_errors` for the CLI (which acts as an admin), on the connection it imported with."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(ERRORS_SQL, [import_id])
        return cur.fetchall()
