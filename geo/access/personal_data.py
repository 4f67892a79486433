"""Personal data: everything held about a person (export), erasing it everywhere, and retention.

``data/personal-data.md`` lists every field that can hold personal data, why it is held, who
sees it and for how long. Here:

- :func:`export` finds a person by e-mail address and/or name in every one of those fields,
  history included, and returns the rows (a subject access request);
- :func:`erase` redacts them in place through ``gdpr_erase`` (migration 0015): the one
  privileged path that may change history, events and the audit trail, and that records
  itself in the audit trail;
- :func:`purge` deletes what is past its retention period: raw upload files, upload row
  errors, premises points of coverage reports. The service runs it at start and daily;
  ``connectivity purge`` runs it by hand.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from geo.access.audit import REQUEST_ID, record, record_async
from geo.access.principals import Principal
from geo.core.errors import InvalidInput
from geo.core.settings import RetentionSettings

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Taken by whoever purges, so two processes never purge at once.
PURGE_LOCK = 74_201_003


class InvalidSubject(InvalidInput):
    """The person to export or erase is not named well enough (422)."""


def needles(email: str | None, name: str | None) -> list[str]:
    """The texts a person is found by: an e-mail address, a full name (two words or more), or both.

    Both are matched as whole words, without regard to case (``needle_pattern`` in migration
    0015): ``Ann Smith`` is not found in ``Joanne Smithson``, ``jo@x.org`` not in ``mojo@x.org``.
    """
    found = []
    if email is not None and email.strip():
        email = email.strip()
        if not _EMAIL.fullmatch(email) or len(email) > 254:
            raise InvalidSubject(f"email: {email[:60]!r} is not an e-mail address")
        found.append(email)
    if name is not None and name.strip():
        name = " ".join(name.split())
        if len(name) > 200 or len([w for w in name.split() if len(w) >= 2]) < 2:
            raise InvalidSubject(
                "name: give the person's full name (at least two words, such as 'Jane Doe'): a name is "
                "matched as whole words, and one word alone would reach other people"
            )
        found.append(name)
    if not found:
        raise InvalidSubject("give the person's email, name, or both")
    return found


# Where a person can appear: table, the columns that may hold them, the columns that identify a row.
PLACES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("wayleaves", ("contact_name", "contact_email", "contact_phone", "notes", "created_by"), ("id", "borough_code", "operator")),
    ("wayleave_changes", ("old_value", "new_value", "by"), ("wayleave_id", "version", "field", "at")),
    ("wayleave_events", ("note", "by"), ("wayleave_id", "seq", "at", "to_status")),
    ("wayleave_sites", ("created_by",), ("id", "name")),
    ("pipeline_projects", ("owner", "owner_email", "created_by", "modified_by", "organisation_email", "content", "changed_by"), ("id", "pipeline_id", "title")),
    ("pipeline_project_versions", ("owner", "owner_email", "created_by", "modified_by", "organisation_email", "content", "changed_by"), ("project_id", "version", "valid_from", "valid_to")),
    ("assets", ("extra", "changed_by"), ("id", "borough_code", "kind", "source_id")),
    ("asset_versions", ("extra", "changed_by"), ("asset_id", "version", "valid_from", "valid_to")),
    ("upload_errors", ("value", "source_id", "message"), ("upload_id", "row_number", "column_name")),
    ("pipeline_import_errors", ("value", "source_id"), ("import_id", "row_number", "column_name")),
    ("uploads", ("created_by", "applied_by", "file_name"), ("id", "borough_code", "created_at")),
    ("loads", ("created_by", "description"), ("id", "created_at")),
    ("coverage_reports", ("created_by",), ("id", "created_at")),
    ("coverage_report_points", ("label",), ("report_id", "layer", "seq")),
    ("pipeline_imports", ("created_by", "file_name"), ("id", "created_at")),
    ("api_keys", ("label",), ("id", "role", "borough_code", "operator", "created_at", "revoked_at")),
    ("audit_events", ("actor", "details"), ("id", "at", "action", "object_type", "object_id")),
)  # fmt: skip

#: Most rows an export lists per table (the count is always complete).
EXPORT_LIMIT = 10_000


def _matches(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(" OR ").join(
        sql.SQL("holds_any({}::text, %(needles)s)").format(sql.Identifier(c)) for c in columns
    )


async def export(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    email: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Everything held about a person, table by table: the rows that name them (admins only).

    Returns ``{"subject": ..., "tables": {table: {"count": n, "rows": [...]}}}`` with only the
    tables where the person appears. The export is recorded in the audit trail.
    """
    principal.require_role("admin")
    found = needles(email, name)
    tables: dict[str, Any] = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        for table, columns, keys in PLACES:
            # One scan: the window's count is taken before the limit, so it counts every match.
            await cur.execute(
                sql.SQL("SELECT {}, count(*) OVER () AS _matches FROM {} WHERE {} LIMIT %(limit)s").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in (*keys, *columns)),
                    sql.Identifier(table),
                    _matches(columns),
                ),
                {"needles": found, "limit": EXPORT_LIMIT},
            )
            rows = await cur.fetchall()
            if rows:
                count = rows[0]["_matches"]
                tables[table] = {
                    "count": count,
                    "rows": [{k: v for k, v in r.items() if k != "_matches"} for r in rows],
                }
    await record_async(
        conn, principal, "gdpr.export", "person", None, {"tables": {t: v["count"] for t, v in tables.items()}}
    )
    return {
        "subject": {"email": email, "name": name},
        "exported_at": dt.datetime.now(dt.UTC),
        "tables": tables,
    }


async def erase(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    email: str | None = None,
    name: str | None = None,
) -> dict[str, int]:
    """Redact a person everywhere (current rows, history, events, errors, keys, the audit trail); the counts.

    In one transaction, through the owner's ``gdpr_erase``; recorded in the audit trail with a
    digest of what was erased, never the values.
    """
    principal.require_role("admin")
    found = needles(email, name)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT gdpr_erase(%s, %s, %s, %s, %s)",
            [found, principal.name, principal.key_id, principal.role, REQUEST_ID.get()],
        )
        row = await cur.fetchone()
    return {k: int(v) for k, v in (row[0] if row else {}).items()}


@dataclass(frozen=True)
class Retention:
    """How long what is kept: raw files, row errors and premises points, in days."""

    upload_files_days: int
    upload_errors_days: int
    report_points_days: int

    @classmethod
    def from_settings(cls, settings: RetentionSettings) -> Retention:
        """The periods of ``CONNECTIVITY_RETENTION_*``."""
        return cls(settings.upload_files_days, settings.upload_errors_days, settings.report_points_days)


def purge(
    conn: psycopg.Connection[Any], retention: Retention, who: Principal | str = "system"
) -> dict[str, int] | None:
    """Delete what is past its retention period; the counts, or None when another process is purging.

    - raw upload files of uploads that ended more than ``upload_files_days`` ago (a dry run
      whose file is gone can no longer be applied: it says so);
    - row errors of uploads and Pipeline imports older than ``upload_errors_days``;
    - the premises points of coverage reports older than ``report_points_days`` (the report
      keeps its summary; its demand downloads answer 410).

    ``conn`` must not be in autocommit mode; the purge commits.
    """
    # Held until the purge's transaction ends, committed or rolled back.
    got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [PURGE_LOCK]).fetchone()
    if not got or not got[0]:
        conn.rollback()
        return None
    try:
        counts = _purge(conn, retention)
        if any(counts.values()):
            record(
                conn,
                who,
                "retention.purge",
                "retention",
                None,
                {"counts": counts, "retention": retention.__dict__},
            )
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return counts


def _purge(conn: psycopg.Connection[Any], retention: Retention) -> dict[str, int]:
    files = conn.execute(
        """SELECT id, file_path FROM uploads
           WHERE file_deleted_at IS NULL AND state NOT IN ('queued', 'running')
             AND coalesce(finished_at, created_at) < now() - make_interval(days => %s)""",
        [retention.upload_files_days],
    ).fetchall()
    for upload_id, file_path in files:
        folder = Path(file_path).parent
        shutil.rmtree(folder, ignore_errors=True)  # the upload's own folder: var/uploads/<uuid>
        conn.execute("UPDATE uploads SET file_deleted_at = now() WHERE id = %s", [upload_id])
    errors = conn.execute(
        """DELETE FROM upload_errors e USING uploads u
           WHERE u.id = e.upload_id AND coalesce(u.finished_at, u.created_at) < now() - make_interval(days => %s)""",
        [retention.upload_errors_days],
    ).rowcount
    # The rows kept for an upload's map (geo/uploads/row_map.py) go with its row errors.
    conn.execute(
        """DELETE FROM upload_rows r USING uploads u
           WHERE u.id = r.upload_id AND coalesce(u.finished_at, u.created_at) < now() - make_interval(days => %s)""",
        [retention.upload_errors_days],
    )
    errors += conn.execute(
        """DELETE FROM pipeline_import_errors e USING pipeline_imports i
           WHERE i.id = e.import_id AND coalesce(i.finished_at, i.created_at) < now() - make_interval(days => %s)""",
        [retention.upload_errors_days],
    ).rowcount
    reports = conn.execute(
        """UPDATE coverage_reports SET points_purged_at = now()
           WHERE points_purged_at IS NULL AND parameters ->> 'demand' = 'premises'
             AND created_at < now() - make_interval(days => %s) RETURNING id""",
        [retention.report_points_days],
    ).fetchall()
    points = 0
    if reports:
        points = conn.execute(
            "DELETE FROM coverage_report_points WHERE report_id = ANY(%s) AND layer = 'demand'",
            [[r[0] for r in reports]],
        ).rowcount
    return {
        "upload_files": len(files),
        "row_errors": errors,
        "reports": len(reports),
        "premises_points": points,
    }
