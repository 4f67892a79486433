"""Writing wayleaves: create one (with its site), read it and its history, edit its details, change its status.

The only write path of a status is :func:`transition` (and :func:`geo.wayleaves.bulk.bulk_transition`,
which calls the same step, :func:`append_event`): it appends an event, and a trigger in the
database (migration 0004) moves the wayleave, so the status is always the replay of the events.
The details (:data:`~geo.wayleaves.details.EDITABLE`) change only through :func:`update_wayleave`;
a trigger (migration 0007) bumps the version and keeps every replaced value in
``wayleave_changes``, read back by :func:`changes`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from geo.access.audit import record_async, record_reads
from geo.access.principals import PermissionDenied, Principal
from geo.assets.store import VersionConflict
from geo.core.settings import WayleaveSettings
from geo.reference.boroughs import check_code
from geo.wayleaves.calendar import LONDON, with_clock
from geo.wayleaves.details import (
    EDITABLE,
    OPERATOR_EDITABLE,
    TEMPLATES,
    check_details,
    check_editable,
    check_expiry,
    clean_text,
)
from geo.wayleaves.errors import DuplicateReference, InvalidTransition, InvalidWayleave
from geo.wayleaves.queries import fetch_wayleave
from geo.wayleaves.statuses import INITIAL, STATUSES, allowed_next
from geo.wayleaves.visibility import (
    RESTRICTED,
    Viewer,
    record_personal_reads,
    redact,
    redact_change,
    redact_event,
    viewer_for,
)


async def create_site(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    borough_code: str,
    name: str,
    asset_ids: Sequence[int],
) -> int:
    """A site: one asset or a named group of assets, all of one borough; returns its id."""
    borough_code = check_code(borough_code)
    principal.require_borough_write(borough_code)
    ids = sorted({int(a) for a in asset_ids})
    if not ids:
        raise InvalidWayleave("asset_ids: a site needs at least one asset")
    if not name or not name.strip():
        raise InvalidWayleave("site_name: a site needs a name")
    cur = await conn.execute(
        "SELECT id, borough_code FROM assets WHERE id = ANY(%s) AND retired_at IS NULL", [ids]
    )
    found = {r[0]: r[1] for r in await cur.fetchall()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidWayleave(f"asset_ids: no current asset has id {', '.join(map(str, missing))}")
    elsewhere = sorted(i for i, b in found.items() if b != borough_code)
    if elsewhere:
        raise InvalidWayleave(
            f"asset_ids: assets {', '.join(map(str, elsewhere))} are not in borough {borough_code}"
        )
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO wayleave_sites (borough_code, name, created_by) VALUES (%s, %s, %s) RETURNING id",
            [borough_code, name.strip(), principal.name],
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(
            "INSERT INTO wayleave_site_assets (site_id, asset_id) SELECT %s, unnest(%s::bigint[])",
            [row[0], ids],
        )
    return int(row[0])


def check_at(principal: Principal, at: dt.datetime | None) -> dt.datetime | None:
    """A backdated event time, checked: admins only, not in the future, London time when naive."""
    if at is None:
        return None
    if not principal.is_admin:
        raise PermissionDenied("only admin keys may backdate wayleave events (imports)")
    if at.tzinfo is None:
        at = at.replace(tzinfo=LONDON)
    if at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        raise InvalidWayleave(f"at: {at.isoformat()} is in the future")
    return at


def _check_edit_access(viewer: Viewer, row: dict[str, Any], fields: Iterable[str]) -> None:
    """Admins edit every wayleave, boroughs their own borough's, operators their own reference only."""
    p = viewer.principal
    if p.role != "operator":
        p.require_borough_write(row["borough_code"])
        return
    if not viewer.may_see(row):
        raise PermissionDenied(f"wayleave {row['id']} belongs to another operator")
    others = [f for f in fields if f not in OPERATOR_EDITABLE]
    if others:
        raise PermissionDenied(
            f"an operator key may change only {', '.join(OPERATOR_EDITABLE)}, not {', '.join(others)}"
        )


async def create_wayleave(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    *,
    operator: str,
    template: str = "standardised",
    site_id: int | None = None,
    asset_ids: Sequence[int] | None = None,
    site_name: str | None = None,
    status: str = "identified",
    template_version: str | None = None,
    reference: str | None = None,
    operator_reference: str | None = None,
    expires_on: dt.date | None = None,
    notes: str | None = None,
    contact_name: str | None = None,
    contact_email: str | None = None,
    contact_phone: str | None = None,
    note: str | None = None,
    at: dt.datetime | None = None,
    settings: WayleaveSettings,
) -> dict[str, Any]:
    """Create a wayleave on a site (``site_id``) or on assets (a site is made of them), with its first event.

    Boroughs create wayleaves on their own sites, admins anywhere. ``at`` (admins only)
    backdates the first event, for imports of existing wayleaves.
    """
    principal.require_role("admin", "borough")
    at = check_at(principal, at)
    operator = (operator or "").strip()
    if not operator:
        raise InvalidWayleave("operator: a wayleave needs the operator's name")
    if template not in TEMPLATES:
        raise InvalidWayleave(f"template: {template!r} is not one of {', '.join(TEMPLATES)}")
    if status not in INITIAL:
        raise InvalidWayleave(f"status: a wayleave starts {' or '.join(INITIAL)}, not {status!r}")
    details = check_details(
        {
            "template_version": template_version,
            "reference": reference,
            "operator_reference": operator_reference,
            "expires_on": expires_on,
            "notes": notes,
            "contact_name": contact_name,
            "contact_email": contact_email,
            "contact_phone": contact_phone,
        }  # fmt: skip
    )
    async with conn.transaction():
        if site_id is None:
            site_id = await _site_of_assets(conn, principal, asset_ids, site_name)
        cur = await conn.execute("SELECT borough_code FROM wayleave_sites WHERE id = %s", [site_id])
        site = await cur.fetchone()
        if site is None:
            raise InvalidWayleave(f"site_id: no site has id {site_id}")
        borough_code = site[0]
        principal.require_borough_write(borough_code)
        if details["reference"] is not None:
            other = await _reference_taken(conn, borough_code, details["reference"])
            if other is not None:
                raise DuplicateReference(details["reference"], borough_code, other)
        wayleave = {
            "site_id": site_id, "borough_code": borough_code, "operator": operator, "template": template,
            "status": status, **details,
        }  # fmt: skip
        wayleave_id = await _insert_wayleave(conn, principal, wayleave, note, at)
    return await get_wayleave(conn, wayleave_id, principal, settings)


async def _site_of_assets(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    asset_ids: Sequence[int] | None,
    site_name: str | None,
) -> int:
    """A new site of the assets of one borough, for a wayleave created on assets; returns its id."""
    if not asset_ids:
        raise InvalidWayleave("site_id or asset_ids: a wayleave needs a site or the assets of one")
    cur = await conn.execute("SELECT DISTINCT borough_code FROM assets WHERE id = ANY(%s)", [list(asset_ids)])
    boroughs = [r[0] for r in await cur.fetchall()]
    if len(boroughs) > 1:
        raise InvalidWayleave(f"asset_ids: a site lies in one borough, these span {', '.join(boroughs)}")
    if not boroughs:
        raise InvalidWayleave(f"asset_ids: no asset has id {', '.join(map(str, asset_ids))}")
    name = site_name or f"assets {', '.join(map(str, asset_ids))}"
    return await create_site(conn, principal, boroughs[0], name, asset_ids)


async def _insert_wayleave(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    w: dict[str, Any],
    note: str | None,
    at: dt.datetime | None,
) -> int:
    """Insert a checked wayleave (``w``: its site, borough, operator, template, status and details)
    with its first event; returns its id."""
    try:
        cur = await conn.execute(
            """INSERT INTO wayleaves (site_id, borough_code, operator, template, template_version, status,
                   status_since, requested_on, expires_on, reference, operator_reference, notes,
                   contact_name, contact_email, contact_phone, created_by)
               VALUES (%(site_id)s, %(borough_code)s, %(operator)s, %(template)s, %(template_version)s,
                   %(status)s, coalesce(%(at)s, now()),
                   CASE WHEN %(status)s = 'requested' THEN (coalesce(%(at)s, now()) AT TIME ZONE 'Europe/London')::date END,
                   %(expires_on)s, %(reference)s, %(operator_reference)s, %(notes)s, %(contact_name)s,
                   %(contact_email)s, %(contact_phone)s, %(by)s)
               RETURNING id, status_since""",
            {**w, "at": at, "by": principal.name},
        )
    except psycopg.errors.UniqueViolation:
        raise DuplicateReference(w["reference"], w["borough_code"]) from None
    new = await cur.fetchone()
    assert new is not None
    await conn.execute(
        """INSERT INTO wayleave_events (wayleave_id, seq, at, by, from_status, to_status, note)
           VALUES (%s, 1, %s, %s, NULL, %s, %s)""",
        [new[0], new[1], principal.name, w["status"], clean_text(note)],
    )
    await record_async(
        conn, principal, "wayleave.create", "wayleave", new[0],
        {"site_id": w["site_id"], "borough_code": w["borough_code"], "operator": w["operator"], "status": w["status"]},
    )  # fmt: skip
    return int(new[0])


async def get_wayleave(
    conn: psycopg.AsyncConnection[Any],
    wayleave_id: int,
    principal: Principal,
    settings: WayleaveSettings,
) -> dict[str, Any]:
    """One wayleave with its clock, as the caller may see it."""
    viewer = await viewer_for(conn, principal)
    row = await fetch_wayleave(conn, wayleave_id)
    if not viewer.may_see(row):
        raise PermissionDenied(f"wayleave {wayleave_id} belongs to another operator")
    shown = redact(with_clock(row, settings), viewer)
    await record_personal_reads(conn, viewer, [shown], "wayleave")
    return shown


async def history(
    conn: psycopg.AsyncConnection[Any], wayleave_id: int, principal: Principal
) -> list[dict[str, Any]]:
    """The status events of a wayleave, oldest first (their replay is its status; edits: :func:`changes`)."""
    viewer = await viewer_for(conn, principal)
    row = await fetch_wayleave(conn, wayleave_id)
    if not viewer.may_see(row):
        raise PermissionDenied(f"wayleave {wayleave_id} belongs to another operator")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT seq, at, recorded_at, by, from_status, to_status, resume_status, note
               FROM wayleave_events WHERE wayleave_id = %s ORDER BY seq""",
            [wayleave_id],
        )
        events = await cur.fetchall()
    if viewer.sees_restricted(row) and any(e["note"] for e in events):
        await record_reads(conn, principal, "wayleave", [wayleave_id], "wayleave events")
    return [redact_event(e, viewer, row) for e in events]


async def _reference_taken(
    conn: psycopg.AsyncConnection[Any], borough_code: str, reference: str, except_id: int | None = None
) -> int | None:
    """The id of another wayleave of the borough with this reference, if any."""
    cur = await conn.execute(
        "SELECT id FROM wayleaves WHERE borough_code = %s AND reference = %s AND id IS DISTINCT FROM %s LIMIT 1",
        [borough_code, reference, except_id],
    )
    found = await cur.fetchone()
    return None if found is None else int(found[0])


async def update_wayleave(
    conn: psycopg.AsyncConnection[Any],
    wayleave_id: int,
    changes: Mapping[str, Any],
    principal: Principal,
    *,
    expected_version: int | None,
    settings: WayleaveSettings,
) -> dict[str, Any]:
    """Change a wayleave's details (:data:`EDITABLE`); returns it as the caller may see it.

    ``changes`` maps fields to new values (None or "" clears one). Admins edit every wayleave,
    borough keys their own borough's, operator keys only ``operator_reference`` of their own
    operator's. The status and its key dates are not details: they move only by
    :func:`transition`. ``expected_version`` is the version the caller read; if the wayleave
    changed since, :class:`VersionConflict` is raised and nothing is written (``None`` skips the
    check: CLI use only). Values equal to the current ones change nothing; any real change bumps
    the version once and records each field's old and new value with who and when
    (``wayleave_changes``, by a trigger in the same transaction).

    Raises :class:`InvalidChange` (unknown, fixed or bad fields, an expiry before the signature
    or go-live), :class:`DuplicateReference`, :class:`~geo.access.principals.PermissionDenied`,
    :class:`WayleaveNotFound` or :class:`VersionConflict`.
    """
    viewer = await viewer_for(conn, principal)
    check_editable(changes)
    async with conn.transaction():
        row = await fetch_wayleave(conn, wayleave_id, lock=True)
        _check_edit_access(viewer, row, changes)
        if expected_version is not None and expected_version != row["version"]:
            raise VersionConflict(
                f"wayleave {wayleave_id} is at version {row['version']}, not {expected_version}; "
                "read it again and retry"
            )
        clean = check_details(changes)
        check_expiry(clean.get("expires_on"), row)
        diff = {f: v for f, v in clean.items() if v != row[f]}
        if diff.get("reference") is not None:
            other = await _reference_taken(conn, row["borough_code"], diff["reference"], wayleave_id)
            if other is not None:
                raise DuplicateReference(diff["reference"], row["borough_code"], other)
        if diff:
            # Read by the trigger that records the change (migration 0007); local to this transaction.
            await conn.execute("SELECT set_config('connectivity.actor', %s, true)", [principal.name])
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(f), sql.Placeholder(f)) for f in diff
            )
            try:
                await conn.execute(
                    sql.SQL("UPDATE wayleaves SET {} WHERE id = %(id)s").format(assignments),
                    {**diff, "id": wayleave_id},
                )
            except psycopg.errors.UniqueViolation:  # taken by a concurrent edit since the check
                raise DuplicateReference(diff["reference"], row["borough_code"]) from None
            await record_async(
                conn, principal, "wayleave.update", "wayleave", wayleave_id,
                {"fields": sorted(diff), "from_version": row["version"], "to_version": row["version"] + 1},
            )  # fmt: skip
    return await get_wayleave(conn, wayleave_id, principal, settings)


async def changes(
    conn: psycopg.AsyncConnection[Any], wayleave_id: int, principal: Principal
) -> list[dict[str, Any]]:
    """The edits of a wayleave's details, oldest first: ``version``, ``at``, ``by`` and ``fields``.

    Each of ``fields`` is ``{"field", "old", "new"}`` (text; dates as YYYY-MM-DD; None when
    empty). Callers that may not see restricted fields get neither those fields nor the authors
    (:func:`redact_change`); status changes are in :func:`history`.
    """
    viewer = await viewer_for(conn, principal)
    row = await fetch_wayleave(conn, wayleave_id)
    if not viewer.may_see(row):
        raise PermissionDenied(f"wayleave {wayleave_id} belongs to another operator")
    cur = await conn.execute(
        """SELECT version, at, by, field, old_value, new_value FROM wayleave_changes
           WHERE wayleave_id = %s ORDER BY version""",
        [wayleave_id],
    )
    edits: dict[int, dict[str, Any]] = {}
    for version, at, by, name, old, new in await cur.fetchall():
        edit = edits.setdefault(version, {"version": version, "at": at, "by": by, "fields": []})
        edit["fields"].append({"field": name, "old": old, "new": new})
    out = []
    for edit in edits.values():
        edit["fields"].sort(key=lambda f: EDITABLE.index(f["field"]))
        shown = redact_change(edit, viewer, row)
        if shown is not None:
            out.append(shown)
    if any(f["field"] in RESTRICTED for e in out for f in e["fields"]):
        await record_reads(conn, principal, "wayleave", [wayleave_id], "wayleave changes")
    return out


async def append_event(
    conn: psycopg.AsyncConnection[Any],
    row: dict[str, Any],
    to: str,
    by: Principal,
    note: str | None,
    at: dt.datetime | None,
) -> None:
    """Append one event to a locked wayleave (the trigger moves it); the rules are checked first.

    The one write of a status: :func:`transition` and :func:`geo.wayleaves.bulk.bulk_transition` call it.
    """
    allowed = allowed_next(row["status"], row["resume_status"])
    if to not in allowed:
        raise InvalidTransition(row["status"], to, allowed, row["id"])
    cur = await conn.execute(
        "SELECT max(seq), max(at) FROM wayleave_events WHERE wayleave_id = %s", [row["id"]]
    )
    seq, last_at = await cur.fetchone()  # type: ignore[misc]
    if at is not None and last_at is not None and at < last_at:
        raise InvalidWayleave(f"at: {at.isoformat()} is before the previous event ({last_at.isoformat()})")
    await conn.execute(
        """INSERT INTO wayleave_events (wayleave_id, seq, at, by, from_status, to_status, resume_status, note)
           VALUES (%s, %s, greatest(coalesce(%s, now()), %s), %s, %s, %s, %s, %s)""",
        [
            row["id"],
            seq + 1,
            at,
            last_at,
            by.name,
            row["status"],
            to,
            row["status"] if to == "on_hold" else None,
            clean_text(note),
        ],  # fmt: skip
    )
    await record_async(
        conn, by, "wayleave.transition", "wayleave", row["id"],
        {"from": row["status"], "to": to, "event_seq": seq + 1},
    )  # fmt: skip


async def transition(
    conn: psycopg.AsyncConnection[Any],
    wayleave_id: int,
    to: str,
    principal: Principal,
    *,
    expected_version: int | None,
    note: str | None = None,
    at: dt.datetime | None = None,
    settings: WayleaveSettings,
) -> dict[str, Any]:
    """Move a wayleave to ``to``: the one write path of a status.

    ``expected_version`` is the version the caller read; if the wayleave moved on since,
    :class:`VersionConflict` is raised and nothing is written (``None`` skips the check: CLI and
    trusted batch use only). ``at`` (admins only) backdates the event, for imports.
    """
    at = check_at(principal, at)
    if to not in STATUSES:
        raise InvalidWayleave(f"to: {to!r} is not one of {', '.join(STATUSES)}")
    async with conn.transaction():
        row = await fetch_wayleave(conn, wayleave_id, lock=True)
        principal.require_borough_write(row["borough_code"])
        if expected_version is not None and expected_version != row["version"]:
            raise VersionConflict(
                f"wayleave {wayleave_id} is at version {row['version']}, not {expected_version}; "
                "read it again and retry"
            )
        await append_event(conn, row, to, principal, note, at)
    return await get_wayleave(conn, wayleave_id, principal, settings)
