"""Wayleaves: statuses and their transitions, clocks, storage, access and bulk status updates.

The transition table :data:`TRANSITIONS` is the one statement of the rules (``data/wayleaves.md``
documents it; a test checks they agree). The only write path of a status is :func:`transition`
(and :func:`bulk_transition`, which calls the same step): it appends an event, and a trigger in
the database (migration 0004) moves the wayleave, so the status is always the replay of the
events. The details (:data:`EDITABLE`: references, template, expiry, notes, contact) change
only through :func:`update_wayleave`; a trigger (migration 0007) bumps the version and keeps
every replaced value in ``wayleave_changes``, read back by :func:`changes`. Restricted columns
(notes and the landlord or site contact) leave this module only through :func:`redact` and
:func:`redact_change`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from geo.access.audit import record_async, record_reads
from geo.access.keys import key_operator
from geo.access.principals import PermissionDenied, Principal
from geo.assets.store import VersionConflict
from geo.core.csv_out import write_csv, write_records
from geo.core.errors import Conflict, InvalidInput, InvalidParameter, NotFound, PreconditionRequired
from geo.core.query import parse_bbox, whole_number
from geo.core.row_errors import RowError
from geo.core.settings import WayleaveSettings
from geo.reference.boroughs import check_code

__all__ = ["VersionConflict"]  # re-exported: a stale version is the same 409 as for assets

LONDON = ZoneInfo("Europe/London")

# Statuses and transitions --------------------------------------------------------------------------
#: The main route, in order.
MAIN_ROUTE = (
    "identified", "requested", "survey_scheduled", "surveyed", "terms_issued", "in_negotiation",
    "approved", "signed", "installing", "live",
)  # fmt: skip
#: The optional Electronic Communications Code route.
CODE_ROUTE = ("code_notice_served", "tribunal", "rights_imposed")
STATUSES = (*MAIN_ROUTE, *CODE_ROUTE, "on_hold", "refused", "withdrawn", "expired")
#: Statuses in which work is still under way: they can be put on hold or withdrawn.
OPEN = (*MAIN_ROUTE[:-1], *CODE_ROUTE)
#: Marker in the on_hold row: the status the wayleave was in when it was put on hold.
RESUME = "(the status it left)"
#: Statuses in which the operator has the right to build.
READY_STATUSES = ("signed", "installing", "live", "rights_imposed")
#: Best first: which of an asset's wayleaves stands furthest (view ``asset_wayleave_status``).
PROGRESS = (
    "live", "installing", "signed", "rights_imposed", "approved", "tribunal", "in_negotiation",
    "code_notice_served", "terms_issued", "surveyed", "survey_scheduled", "requested", "identified",
    "on_hold", "refused", "withdrawn", "expired",
)  # fmt: skip
#: Statuses a wayleave may be created in.
INITIAL = ("identified", "requested")

_HOLD = ("on_hold", "withdrawn")
#: from -> allowed next statuses. The one place the rules are written.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "identified": ("requested", *_HOLD),
    "requested": ("survey_scheduled", "refused", "code_notice_served", *_HOLD),
    "survey_scheduled": ("surveyed", "refused", *_HOLD),
    "surveyed": ("terms_issued", "refused", *_HOLD),
    # Standardised terms accepted as issued go straight to approval: the point of the template.
    "terms_issued": ("in_negotiation", "approved", "refused", "code_notice_served", *_HOLD),
    "in_negotiation": ("approved", "refused", "code_notice_served", *_HOLD),
    "approved": ("signed", "refused", *_HOLD),
    "signed": ("installing", "expired", *_HOLD),
    "installing": ("live", *_HOLD),
    "live": ("expired",),
    # ECC paragraph 20 notice: the landlord may still agree (back to negotiation) or the
    # operator applies to the Tribunal after the notice period.
    "code_notice_served": ("tribunal", "in_negotiation", *_HOLD),
    "tribunal": ("rights_imposed", "signed", "refused", *_HOLD),
    "rights_imposed": ("installing", *_HOLD),
    "on_hold": (RESUME, "withdrawn"),
    "refused": ("requested", "code_notice_served"),
    "withdrawn": ("requested",),
    "expired": (),
}

#: Key dates the first arrival in a status records (set by the database trigger).
KEY_DATES = {
    "requested": "requested_on",
    "surveyed": "surveyed_on",
    "terms_issued": "terms_issued_on",
    "signed": "signed_on",
    "live": "live_on",
}
#: Columns only admins and the owning borough see: personal data and internal notes.
RESTRICTED = ("notes", "contact_name", "contact_email", "contact_phone")
#: Who wrote a wayleave: shown, as the authors of its events and edits, to admins and the owning borough only.
AUTHORS = ("created_by",)
TEMPLATES = ("standardised", "bespoke")
#: The details an edit may change (:func:`update_wayleave`), in the order they are shown.
#: Migration 0007 repeats the list (its trigger records their changes); a test checks they agree.
EDITABLE = (
    "template", "template_version", "reference", "operator_reference", "expires_on", "notes",
    "contact_name", "contact_email", "contact_phone",
)  # fmt: skip
#: What an operator key may change, on its own operator's wayleaves: the operator's own reference.
OPERATOR_EDITABLE = ("operator_reference",)
_BY_TRANSITION = "it changes only through a status transition (POST /wayleaves/{id}/transitions)"
_NEW_WAYLEAVE = "a wayleave is one operator on one site: create a new wayleave instead"
#: Fields of a wayleave no edit changes, and why (the error says it).
NOT_EDITABLE: dict[str, str] = {
    "status": _BY_TRANSITION,
    "status_since": _BY_TRANSITION,
    "resume_status": _BY_TRANSITION,
    **{
        d: f"a key date is set when the wayleave first reaches {s}; {_BY_TRANSITION}"
        for s, d in KEY_DATES.items()
    },
    "operator": _NEW_WAYLEAVE,
    "site_id": _NEW_WAYLEAVE,
    "site_name": _NEW_WAYLEAVE,
    "asset_ids": _NEW_WAYLEAVE,
    "borough_code": _NEW_WAYLEAVE,
    **dict.fromkeys(("id", "version", "created_at", "created_by"), "set by the service"),
}
#: Longest text a detail may hold (characters); notes are free text, the rest one line.
MAX_NOTES = 10_000
MAX_LINE = 200
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE = re.compile(r"\+?[\d ().-]+(?:\s*(?:x|ext\.?)\s*\d{1,6})?", re.IGNORECASE)


def allowed_next(status: str, resume_status: str | None = None) -> tuple[str, ...]:
    """The statuses a wayleave in ``status`` may move to (``resume_status``: where on_hold returns)."""
    if status not in TRANSITIONS:
        raise InvalidWayleave(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    out = TRANSITIONS[status]
    if status == "on_hold":
        out = tuple((resume_status or s) if s == RESUME else s for s in out if s != RESUME or resume_status)
    return out


def replay(events: Iterable[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The (status, resume status) a sequence of events leads to, checking every step against the rules."""
    status: str | None = None
    resume: str | None = None
    for e in events:
        if status is None:
            status = e["to_status"]
        elif e["from_status"] != status or e["to_status"] not in allowed_next(status, resume):
            raise InvalidTransition(status, e["to_status"], allowed_next(status, resume))
        else:
            resume = status if e["to_status"] == "on_hold" else None
            status = e["to_status"]
    return status, resume


# Errors ---------------------------------------------------------------------------------------------
class WayleaveNotFound(NotFound):
    """No wayleave has that id (404)."""


class InvalidWayleave(InvalidInput):
    """A wayleave, site or query value that cannot be used; the message says which (422)."""


class InvalidChange(InvalidWayleave):
    """Fields of a wayleave's details that cannot be used (422); ``problem_extra`` names each one.

    ``errors`` holds ``(field, value, message)`` for every bad field, so one answer lists them all.
    """

    def __init__(self, errors: Sequence[tuple[str, Any, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, _, m in errors))
        self.errors = list(errors)
        self.problem_extra = {
            "errors": [
                {
                    "field": f,
                    "value": v if v is None or isinstance(v, str | int | float | bool) else str(v),
                    "message": m,
                }
                for f, v, m in errors
            ]  # fmt: skip
        }


class DuplicateReference(Conflict):
    """Another wayleave of the borough already has this reference (409)."""

    def __init__(self, reference: str, borough_code: str, other_id: int | None = None) -> None:
        which = f" (wayleave {other_id})" if other_id is not None else ""
        super().__init__(f"reference: {reference!r} is already used in borough {borough_code}{which}")
        self.problem_extra: dict[str, Any] = {"field": "reference", "value": reference}
        if other_id is not None:
            self.problem_extra["wayleave_id"] = other_id


class VersionRequired(PreconditionRequired):
    """A status change must say which version it was based on (428)."""


class InvalidTransition(Conflict):
    """The rules do not allow this status change (409); ``problem_extra`` lists what is allowed."""

    def __init__(self, status: str, to: str, allowed: Sequence[str], wayleave_id: int | None = None) -> None:
        which = f"wayleave {wayleave_id} is" if wayleave_id is not None else "the wayleave is"
        nxt = ", ".join(allowed) or "nothing (final status)"
        super().__init__(f"{which} {status}: it cannot go to {to}; allowed next: {nxt}")
        self.status = status
        self.to = to
        self.allowed = list(allowed)
        self.problem_extra = {"current_status": status, "allowed": list(allowed)}


# Working days and clocks ------------------------------------------------------------------------------
def _easter(year: int) -> dt.date:
    # Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def _monday_on_or_after(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


def _last_monday(year: int, month: int) -> dt.date:
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=last.weekday())


#: One-off changes to the England and Wales bank holidays (moved or added by proclamation).
SPECIAL_HOLIDAYS: dict[int, tuple[tuple[dt.date, ...], tuple[dt.date, ...]]] = {
    # year: (removed rule dates, added dates)
    2020: ((dt.date(2020, 5, 4),), (dt.date(2020, 5, 8),)),  # VE Day 75
    2022: (
        (dt.date(2022, 5, 30),),
        (dt.date(2022, 6, 2), dt.date(2022, 6, 3), dt.date(2022, 9, 19)),  # Platinum Jubilee; state funeral
    ),
    2023: ((), (dt.date(2023, 5, 8),)),  # Coronation
}
HOLIDAY_YEARS = range(2015, 2036)


def bank_holidays(year: int) -> list[dt.date]:
    """England and Wales bank holidays of ``year``: the standing rules plus known one-off changes."""
    new_year = dt.date(year, 1, 1)
    easter = _easter(year)
    days = {
        _monday_on_or_after(new_year),
        easter - dt.timedelta(days=2),
        easter + dt.timedelta(days=1),
        _monday_on_or_after(dt.date(year, 5, 1)),
        _last_monday(year, 5),
        _last_monday(year, 8),
    }
    christmas = dt.date(year, 12, 25)
    # Christmas and Boxing Day falling on a weekend are substituted by the next weekdays.
    shift = {5: 2, 6: 1}.get(christmas.weekday(), 0)  # Saturday -> Mon 27, Tue 28; Sunday -> Mon 26, Tue 27
    if shift:
        days |= {christmas + dt.timedelta(days=shift), christmas + dt.timedelta(days=shift + 1)}
    elif christmas.weekday() == 4:  # Friday: Boxing Day (Saturday) moves to Monday 28
        days |= {christmas, christmas + dt.timedelta(days=3)}
    else:
        days |= {christmas, christmas + dt.timedelta(days=1)}
    removed, added = SPECIAL_HOLIDAYS.get(year, ((), ()))
    return sorted((days - set(removed)) | set(added))


@lru_cache(maxsize=1)
def _holidays() -> np.ndarray:
    return np.array([d for y in HOLIDAY_YEARS for d in bank_holidays(y)], dtype="datetime64[D]")


def add_working_days(start: dt.date, n: int) -> dt.date:
    """The date ``n`` working days after ``start`` (weekends and bank holidays skipped)."""
    day = np.busday_offset(np.datetime64(start, "D"), n, roll="forward", holidays=_holidays())
    return day.astype(dt.date)  # type: ignore[no-any-return]


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days from ``start`` (excluded) to ``end`` (included); negative when end is earlier."""
    return int(
        np.busday_count(np.datetime64(start, "D") + 1, np.datetime64(end, "D") + 1, holidays=_holidays())
    )


#: Status -> (settings field, whether it counts working days). Statuses absent have no deadline.
DEADLINES: dict[str, tuple[str, bool]] = {
    "identified": ("identified_working_days", True),
    "requested": ("request_answer_working_days", True),
    "survey_scheduled": ("survey_working_days", True),
    "surveyed": ("terms_working_days", True),
    "terms_issued": ("terms_answer_working_days", True),
    "in_negotiation": ("negotiation_working_days", True),
    "approved": ("approval_working_days", True),
    "signed": ("installation_start_working_days", True),
    "rights_imposed": ("installation_start_working_days", True),
    "installing": ("installing_working_days", True),
    "on_hold": ("on_hold_review_working_days", True),
    "code_notice_served": ("code_notice_days", False),
    "tribunal": ("tribunal_days", False),
}


def local_date(moment: dt.datetime) -> dt.date:
    """The London calendar date of an instant."""
    return moment.astimezone(LONDON).date()


def clock(
    status: str, since: dt.datetime, settings: WayleaveSettings, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Days in the status, the date it is due to move on, whether it is overdue, and the next chase date.

    ``due_on`` is the last day allowed: a wayleave is overdue from the day after.
    """
    now = now or dt.datetime.now(dt.UTC)
    start, today = local_date(since), local_date(now)
    out: dict[str, Any] = {
        "days_in_status": (now - since).days,
        "working_days_in_status": max(working_days_between(start, today), 0),
        "due_on": None,
        "overdue": False,
        "next_chase_on": None,
    }
    rule = DEADLINES.get(status)
    if rule is not None:
        name, working = rule
        n = getattr(settings, name)
        due = add_working_days(start, n) if working else start + dt.timedelta(days=n)
        out["due_on"] = due
        out["overdue"] = today > due
    if status == "requested":
        # Chases every few working days after the request: the first chase date not yet past.
        step = settings.chase_interval_working_days
        k = max(working_days_between(start, today), 0) // step + 1
        out["next_chase_on"] = add_working_days(start, k * step)
    return out


# Access -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """A caller and, for operator keys, the operator they are bound to."""

    principal: Principal
    operator: str | None = None

    def sees_restricted(self, row: dict[str, Any]) -> bool:
        """Admins see notes and contacts of every wayleave; boroughs those of their own."""
        p = self.principal
        return p.is_admin or (p.role == "borough" and p.borough_code == row.get("borough_code"))

    def may_see(self, row: dict[str, Any]) -> bool:
        """Operators see only their own operator's wayleaves; admins and boroughs see all."""
        return self.principal.role != "operator" or (
            self.operator is not None and row.get("operator") == self.operator
        )


async def viewer_for(conn: psycopg.AsyncConnection[Any], principal: Principal) -> Viewer:
    """The viewer a principal is; wayleaves need a key."""
    principal.require_key()
    if principal.role == "operator" and principal.key_id is not None:
        return Viewer(principal, await key_operator(conn, principal.key_id))
    return Viewer(principal)


def redact(row: dict[str, Any], viewer: Viewer) -> dict[str, Any]:
    """The row as ``viewer`` may see it: restricted columns removed unless they may see them.

    Every wayleave output (JSON, CSV, history) passes here; map layers read a view that has no
    restricted column at all.
    """
    if viewer.sees_restricted(row):
        return row
    return {k: v for k, v in row.items() if k not in RESTRICTED and k not in AUTHORS}


async def record_personal_reads(
    conn: psycopg.AsyncConnection[Any], viewer: Viewer, rows: Sequence[dict[str, Any]], what: str
) -> None:
    """Record in the audit trail that ``viewer`` was shown the contacts or notes of these wayleaves (if any)."""
    ids = [r["id"] for r in rows if any(r.get(c) for c in RESTRICTED)]
    await record_reads(conn, viewer.principal, "wayleave", ids, what)


def redact_event(event: dict[str, Any], viewer: Viewer, row: dict[str, Any]) -> dict[str, Any]:
    """An event as ``viewer`` may see it: notes and who wrote them are internal."""
    if viewer.sees_restricted(row):
        return event
    return {k: v for k, v in event.items() if k not in ("note", "by")}


def redact_change(change: dict[str, Any], viewer: Viewer, row: dict[str, Any]) -> dict[str, Any] | None:
    """An edit as ``viewer`` may see it: restricted fields (old and new values) and the author removed.

    None when nothing of the edit is left to show (it changed only restricted fields).
    """
    if viewer.sees_restricted(row):
        return change
    fields = [f for f in change["fields"] if f["field"] not in RESTRICTED]
    if not fields:
        return None
    return {**{k: v for k, v in change.items() if k != "by"}, "fields": fields}


async def describe_caller(conn: psycopg.AsyncConnection[Any], principal: Principal) -> dict[str, Any]:
    """Who a key is (``GET /me``): its id, label, role, borough and, for operator keys, operator.

    Never the key or its hash. Raises :class:`geo.access.keys.AuthenticationFailed` without a key.
    """
    viewer = await viewer_for(conn, principal)
    p = viewer.principal
    return {
        "key_id": p.key_id,
        "label": p.label,
        "role": p.role,
        "borough_code": p.borough_code,
        "operator": viewer.operator,
    }


# Storage -------------------------------------------------------------------------------------------------
SELECT = """
SELECT w.id, w.site_id, s.name AS site_name, w.borough_code, w.operator, w.template, w.template_version,
       w.status, w.status_since, w.resume_status, w.requested_on, w.surveyed_on, w.terms_issued_on,
       w.signed_on, w.live_on, w.expires_on, w.reference, w.operator_reference, w.notes,
       w.contact_name, w.contact_email, w.contact_phone, w.version, w.created_at, w.created_by,
       (SELECT array_agg(sa.asset_id ORDER BY sa.asset_id) FROM wayleave_site_assets sa
        WHERE sa.site_id = w.site_id) AS asset_ids
FROM wayleaves w JOIN wayleave_sites s ON s.id = w.site_id
"""
EXPORT_COLUMNS = (
    "id", "site_id", "site_name", "borough_code", "operator", "template", "template_version", "status",
    "status_since", "days_in_status", "due_on", "overdue", "requested_on", "surveyed_on", "terms_issued_on",
    "signed_on", "live_on", "expires_on", "reference", "operator_reference", "version",
    "notes", "contact_name", "contact_email", "contact_phone",
)  # fmt: skip


def _with_clock(
    row: dict[str, Any], settings: WayleaveSettings, now: dt.datetime | None = None
) -> dict[str, Any]:
    row["allowed_next"] = list(allowed_next(row["status"], row.get("resume_status")))
    row.update(clock(row["status"], row["status_since"], settings, now))
    return row


async def _fetch(conn: psycopg.AsyncConnection[Any], wayleave_id: int, lock: bool = False) -> dict[str, Any]:
    query = SELECT + " WHERE w.id = %s" + (" FOR UPDATE OF w" if lock else "")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), [wayleave_id])
        row = await cur.fetchone()
    if row is None:
        raise WayleaveNotFound(f"no wayleave has id {wayleave_id}")
    return row


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


def _check_at(principal: Principal, at: dt.datetime | None) -> dt.datetime | None:
    if at is None:
        return None
    if not principal.is_admin:
        raise PermissionDenied("only admin keys may backdate wayleave events (imports)")
    if at.tzinfo is None:
        at = at.replace(tzinfo=LONDON)
    if at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        raise InvalidWayleave(f"at: {at.isoformat()} is in the future")
    return at


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _clean_detail(name: str, value: Any) -> Any:
    """The stored form of one detail (:data:`EDITABLE`); ValueError says why it cannot be used.

    Text is stripped and an empty text clears the field (None).
    """
    if name == "expires_on":
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            raise ValueError(f"{value.isoformat()!r} is a date-time: give a date (YYYY-MM-DD)")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    text = _text(value)
    if name == "template":
        if text not in TEMPLATES:
            raise ValueError(f"{value!r} is not one of {', '.join(TEMPLATES)}")
        return text
    if text is None:
        return None
    limit = MAX_NOTES if name == "notes" else MAX_LINE
    if len(text) > limit:
        raise ValueError(f"{len(text)} characters: at most {limit}")
    allowed = "\n\r\t" if name == "notes" else ""
    if any(ord(c) < 32 and c not in allowed for c in text):
        raise ValueError(f"{text!r} must be one line of text" if not allowed else "control characters")
    if name == "contact_email" and (len(text) > 254 or not _EMAIL.fullmatch(text)):
        raise ValueError(f"{text!r} is not an email address")
    if name == "contact_phone" and (not _PHONE.fullmatch(text) or sum(c.isdigit() for c in text) < 6):
        raise ValueError(
            f"{text!r} is not a phone number (digits, spaces, + ( ) - . and an optional 'ext 123')"
        )
    return text


def check_details(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of each detail in ``changes``; :class:`InvalidChange` lists every bad one."""
    clean: dict[str, Any] = {}
    errors: list[tuple[str, Any, str]] = []
    for name, value in changes.items():
        try:
            clean[name] = _clean_detail(name, value)
        except ValueError as exc:
            errors.append((name, value, str(exc)))
    if errors:
        raise InvalidChange(errors)
    return clean


def _check_editable(changes: Mapping[str, Any]) -> None:
    if not changes:
        raise InvalidWayleave(f"nothing to change: give one or more of {', '.join(EDITABLE)}")
    errors = []
    for name, value in changes.items():
        if name in NOT_EDITABLE:
            errors.append((name, value, f"not editable: {NOT_EDITABLE[name]}"))
        elif name not in EDITABLE:
            errors.append((name, value, f"unknown field; editable: {', '.join(EDITABLE)}"))
    if errors:
        raise InvalidChange(errors)


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
    settings: WayleaveSettings | None = None,
) -> dict[str, Any]:
    """Create a wayleave on a site (``site_id``) or on assets (a site is made of them), with its first event.

    Boroughs create wayleaves on their own sites, admins anywhere. ``at`` (admins only)
    backdates the first event, for imports of existing wayleaves.
    """
    principal.require_role("admin", "borough")
    at = _check_at(principal, at)
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
            if not asset_ids:
                raise InvalidWayleave("site_id or asset_ids: a wayleave needs a site or the assets of one")
            cur = await conn.execute(
                "SELECT DISTINCT borough_code FROM assets WHERE id = ANY(%s)", [list(asset_ids)]
            )
            boroughs = [r[0] for r in await cur.fetchall()]
            if len(boroughs) > 1:
                raise InvalidWayleave(
                    f"asset_ids: a site lies in one borough, these span {', '.join(boroughs)}"
                )
            if not boroughs:
                raise InvalidWayleave(f"asset_ids: no asset has id {', '.join(map(str, asset_ids))}")
            site_id = await create_site(
                conn,
                principal,
                boroughs[0],
                site_name or f"assets {', '.join(map(str, asset_ids))}",
                asset_ids,
            )
        cur = await conn.execute("SELECT borough_code FROM wayleave_sites WHERE id = %s", [site_id])
        site = await cur.fetchone()
        if site is None:
            raise InvalidWayleave(f"site_id: no site has id {site_id}")
        principal.require_borough_write(site[0])
        if details["reference"] is not None:
            other = await _reference_taken(conn, site[0], details["reference"])
            if other is not None:
                raise DuplicateReference(details["reference"], site[0], other)
        try:
            cur = await conn.execute(
                """INSERT INTO wayleaves (site_id, borough_code, operator, template, template_version, status,
                       status_since, requested_on, expires_on, reference, operator_reference, notes,
                       contact_name, contact_email, contact_phone, created_by)
                   VALUES (%(site)s, %(borough)s, %(operator)s, %(template)s, %(tv)s, %(status)s,
                       coalesce(%(at)s, now()),
                       CASE WHEN %(status)s = 'requested' THEN (coalesce(%(at)s, now()) AT TIME ZONE 'Europe/London')::date END,
                       %(expires)s, %(ref)s, %(oref)s, %(notes)s, %(cname)s, %(cemail)s, %(cphone)s, %(by)s)
                   RETURNING id, status_since""",
                {
                    "site": site_id,
                    "borough": site[0],
                    "operator": operator,
                    "template": template,
                    "tv": details["template_version"],
                    "status": status,
                    "at": at,
                    "expires": details["expires_on"],
                    "ref": details["reference"],
                    "oref": details["operator_reference"],
                    "notes": details["notes"],
                    "cname": details["contact_name"],
                    "cemail": details["contact_email"],
                    "cphone": details["contact_phone"],
                    "by": principal.name,
                },  # fmt: skip
            )
        except psycopg.errors.UniqueViolation:
            raise DuplicateReference(details["reference"], site[0]) from None
        new = await cur.fetchone()
        assert new is not None
        await conn.execute(
            """INSERT INTO wayleave_events (wayleave_id, seq, at, by, from_status, to_status, note)
               VALUES (%s, 1, %s, %s, NULL, %s, %s)""",
            [new[0], new[1], principal.name, status, _text(note)],
        )
        await record_async(
            conn, principal, "wayleave.create", "wayleave", new[0],
            {"site_id": site_id, "borough_code": site[0], "operator": operator, "status": status},
        )  # fmt: skip
    return await get_wayleave(conn, int(new[0]), principal, settings)


async def get_wayleave(
    conn: psycopg.AsyncConnection[Any],
    wayleave_id: int,
    principal: Principal,
    settings: WayleaveSettings | None = None,
) -> dict[str, Any]:
    """One wayleave with its clock, as the caller may see it."""
    viewer = await viewer_for(conn, principal)
    row = await _fetch(conn, wayleave_id)
    if not viewer.may_see(row):
        raise PermissionDenied(f"wayleave {wayleave_id} belongs to another operator")
    shown = redact(_with_clock(row, settings or WayleaveSettings()), viewer)
    await record_personal_reads(conn, viewer, [shown], "wayleave")
    return shown


@dataclass(frozen=True)
class WayleaveQuery:
    """Filters of a wayleave list."""

    boroughs: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    overdue: bool | None = None
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    after: int | None = None
    limit: int = 1000


def parse_query(
    borough: str | None = None,
    operator: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    bbox: str | None = None,
    bbox_srid: int = 4326,
    after: int | None = None,
    limit: int = 1000,
) -> WayleaveQuery:
    """Comma-separated filters checked: GSS codes, statuses, and a bbox in WGS84 (4326) or BNG (27700).

    The bbox is parsed as the features API parses it (:func:`geo.layers.query.parse_bbox`: four finite
    numbers, clamped to the service's extent); a bad one is a 400 (:class:`InvalidParameter`).
    """

    def split(value: str | None) -> tuple[str, ...]:
        return tuple(v.strip() for v in (value or "").split(",") if v.strip())

    statuses = split(status)
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise InvalidWayleave(f"status: {', '.join(unknown)} not one of {', '.join(STATUSES)}")
    if bbox_srid not in (4326, 27700):
        raise InvalidParameter(f"bbox-crs: EPSG:{bbox_srid} is not supported; use 4326 or 27700")
    box = parse_bbox(bbox, bbox_srid, False)
    return WayleaveQuery(
        boroughs=tuple(check_code(b) for b in split(borough)),
        operators=split(operator),
        statuses=statuses,
        overdue=overdue,
        bbox=box,  # type: ignore[arg-type]
        bbox_srid=bbox_srid,
        after=after,
        limit=max(1, min(limit, 10_000)),
    )


async def _select_rows(
    conn: psycopg.AsyncConnection[Any], viewer: Viewer, query: WayleaveQuery
) -> list[dict[str, Any]]:
    conds: list[sql.Composable] = [sql.SQL("true")]
    params: dict[str, Any] = {}
    if viewer.principal.role == "operator":
        conds.append(sql.SQL("w.operator = %(own)s"))
        params["own"] = viewer.operator  # an unbound operator key (NULL) matches nothing
    for column, values in (
        ("borough_code", query.boroughs),
        ("operator", query.operators),
        ("status", query.statuses),
    ):
        if values:
            conds.append(sql.SQL("w.{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(column)))
            params[column] = list(values)
    if query.bbox is not None:
        # Densified before the transform so the box edges stay true in British National Grid.
        conds.append(
            sql.SQL(
                """EXISTS (SELECT 1 FROM wayleave_site_assets sa JOIN assets a ON a.id = sa.asset_id
                   WHERE sa.site_id = w.site_id AND ST_Intersects(a.geom, ST_Transform(ST_Segmentize(
                       ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, %(bsrid)s),
                       CASE WHEN %(bsrid)s = 4326 THEN 0.001 ELSE 100 END), 27700)))"""
            )
        )
        params.update(dict(zip(("b0", "b1", "b2", "b3"), query.bbox, strict=True)), bsrid=query.bbox_srid)
    if query.after is not None:
        conds.append(sql.SQL("w.id > %(after)s"))
        params["after"] = query.after
    statement = sql.SQL(SELECT + " WHERE {} ORDER BY w.id").format(sql.SQL(" AND ").join(conds))  # type: ignore[arg-type]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        return await cur.fetchall()


async def list_wayleaves(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    query: WayleaveQuery | None = None,
    settings: WayleaveSettings | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Wayleaves matching the filters, in id order, as the caller may see them (operators: their own)."""
    query = query or WayleaveQuery()
    settings = settings or WayleaveSettings()
    viewer = await viewer_for(conn, principal)
    rows = [_with_clock(r, settings, now) for r in await _select_rows(conn, viewer, query)]
    if query.overdue is not None:
        rows = [r for r in rows if r["overdue"] == query.overdue]
    shown = [redact(r, viewer) for r in rows[: query.limit]]
    await record_personal_reads(conn, viewer, shown, "wayleave list")
    return shown


async def history(
    conn: psycopg.AsyncConnection[Any], wayleave_id: int, principal: Principal
) -> list[dict[str, Any]]:
    """The status events of a wayleave, oldest first (their replay is its status; edits: :func:`changes`)."""
    viewer = await viewer_for(conn, principal)
    row = await _fetch(conn, wayleave_id)
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


def _check_expiry(expires: dt.date | None, row: dict[str, Any]) -> None:
    """An agreement cannot end before it was signed or went live."""
    if expires is None:
        return
    errors = [
        ("expires_on", expires.isoformat(), f"{expires} is before the wayleave {what} ({row[d]})")
        for d, what in (("signed_on", "was signed"), ("live_on", "went live"))
        if row[d] is not None and expires < row[d]
    ]
    if errors:
        raise InvalidChange(errors)


async def update_wayleave(
    conn: psycopg.AsyncConnection[Any],
    wayleave_id: int,
    changes: Mapping[str, Any],
    principal: Principal,
    *,
    expected_version: int | None,
    settings: WayleaveSettings | None = None,
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
    or go-live), :class:`DuplicateReference`, :class:`geo.access.keys.PermissionDenied`,
    :class:`WayleaveNotFound` or :class:`VersionConflict`.
    """
    viewer = await viewer_for(conn, principal)
    _check_editable(changes)
    async with conn.transaction():
        row = await _fetch(conn, wayleave_id, lock=True)
        _check_edit_access(viewer, row, changes)
        if expected_version is not None and expected_version != row["version"]:
            raise VersionConflict(
                f"wayleave {wayleave_id} is at version {row['version']}, not {expected_version}; "
                "read it again and retry"
            )
        clean = check_details(changes)
        _check_expiry(clean.get("expires_on"), row)
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
    row = await _fetch(conn, wayleave_id)
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


async def _step(
    conn: psycopg.AsyncConnection[Any],
    row: dict[str, Any],
    to: str,
    by: Principal,
    note: str | None,
    at: dt.datetime | None,
) -> None:
    """Append one event to a locked wayleave (the trigger moves it); the rules are checked first."""
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
            _text(note),
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
    settings: WayleaveSettings | None = None,
) -> dict[str, Any]:
    """Move a wayleave to ``to``: the one write path of a status.

    ``expected_version`` is the version the caller read; if the wayleave moved on since,
    :class:`VersionConflict` is raised and nothing is written (``None`` skips the check: CLI and
    trusted batch use only). ``at`` (admins only) backdates the event, for imports.
    """
    at = _check_at(principal, at)
    if to not in STATUSES:
        raise InvalidWayleave(f"to: {to!r} is not one of {', '.join(STATUSES)}")
    async with conn.transaction():
        row = await _fetch(conn, wayleave_id, lock=True)
        principal.require_borough_write(row["borough_code"])
        if expected_version is not None and expected_version != row["version"]:
            raise VersionConflict(
                f"wayleave {wayleave_id} is at version {row['version']}, not {expected_version}; "
                "read it again and retry"
            )
        await _step(conn, row, to, principal, note, at)
    return await get_wayleave(conn, wayleave_id, principal, settings)


# Bulk status updates --------------------------------------------------------------------------------------
BULK_COLUMNS = ("wayleave_id", "reference", "to", "version", "note", "at")
ERROR_COLUMNS = ("row", "source_id", "column", "value", "message")
MAX_BULK_ROWS = 10_000


class InvalidBulkFile(InvalidInput):
    """The whole CSV cannot be used (no header, unknown or missing columns, too many rows) (422)."""


@dataclass
class BulkReport:
    """What a bulk update did or would do: rows read, transitions applied, and every row error."""

    rows: int
    applied: int = 0
    dry_run: bool = False
    errors: list[RowError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a JSON answer."""
        return {
            "rows": self.rows,
            "applied": self.applied,
            "dry_run": self.dry_run,
            "errors": [e.to_dict() for e in self.errors],
        }


def read_bulk_csv(data: bytes | str) -> list[dict[str, str]]:
    """The rows of a bulk status CSV: ``wayleave_id`` or ``reference``, ``to``; optional ``version``, ``note``, ``at``."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidBulkFile(
            f"the CSV is not valid UTF-8 (byte {exc.start + 1:,}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InvalidBulkFile("the CSV holds NUL bytes: it is not a text file")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise InvalidBulkFile("the CSV has no header row")
    header = [(h or "").strip().lower() for h in reader.fieldnames]
    unknown = [h for h in header if h not in BULK_COLUMNS]
    if unknown:
        raise InvalidBulkFile(f"unknown columns {', '.join(unknown)}; columns: {', '.join(BULK_COLUMNS)}")
    if "to" not in header or not ({"wayleave_id", "reference"} & set(header)):
        raise InvalidBulkFile("the CSV needs a 'to' column and a 'wayleave_id' or 'reference' column")
    rows = [
        {h: (v or "").strip() for h, v in zip(header, raw, strict=False)}
        for raw in csv.reader(io.StringIO(text.lstrip("\ufeff")))
    ][1:]
    rows = [r for r in rows if any(r.values())]
    if len(rows) > MAX_BULK_ROWS:
        raise InvalidBulkFile(f"{len(rows)} rows: at most {MAX_BULK_ROWS} in one file")
    return rows


async def bulk_transition(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    rows: Sequence[dict[str, str]],
    *,
    dry_run: bool = False,
) -> BulkReport:
    """Check every row, then apply all of them or none.

    Rows apply in file order, so one file may move a wayleave several steps. A ``version``, when
    given, must be the wayleave's version before the file. Any row error (unknown wayleave,
    another borough's, unknown status, a transition the rules refuse, stale version, bad ``at``)
    means nothing is written; the report lists every error.
    """
    principal.require_role("admin", "borough")
    report = BulkReport(rows=len(rows), dry_run=dry_run)
    async with conn.transaction():
        numbers = (whole_number(r.get("wayleave_id", "")) for r in rows)
        ids = [n for n in numbers if n is not None]
        refs = [r["reference"] for r in rows if r.get("reference") and not r.get("wayleave_id")]
        async with conn.cursor(row_factory=dict_row) as cur:
            # Locked in id order until the end, so the check and the writes see the same state.
            await cur.execute(
                """SELECT id, borough_code, status, resume_status, version, reference FROM wayleaves
                   WHERE id = ANY(%s) OR reference = ANY(%s) ORDER BY id FOR UPDATE""",
                [ids, refs],
            )
            found = await cur.fetchall()
        by_id = {r["id"]: dict(r) for r in found}
        by_ref: dict[str, list[dict[str, Any]]] = {}
        for r in found:
            if r["reference"]:
                by_ref.setdefault(r["reference"], []).append(by_id[r["id"]])
        state = {i: dict(r) for i, r in by_id.items()}
        plan: list[tuple[int, str, str | None, dt.datetime | None]] = []
        for n, r in enumerate(rows, start=1):
            source = r.get("wayleave_id") or r.get("reference") or None

            def error(column: str, value: Any, message: str, n: int = n, source: str | None = source) -> None:
                report.errors.append(
                    RowError(n, source, column, None if value is None else str(value), message)
                )

            target = _bulk_target(r, by_id, by_ref, principal, error)
            if target is None:
                continue
            to = r.get("to", "")
            at = None
            if r.get("at"):
                try:
                    at = _check_at(principal, dt.datetime.fromisoformat(r["at"]))
                except (InvalidWayleave, PermissionDenied) as exc:
                    error("at", r["at"], str(exc))
                    continue
                except ValueError:
                    error("at", r["at"], "not an ISO 8601 date-time")
                    continue
            version = r.get("version", "")
            if version and whole_number(version) != target["version"]:
                error(
                    "version",
                    version,
                    f"wayleave {target['id']} is at version {target['version']}; read it again",
                )
                continue
            current = state[target["id"]]
            if to not in STATUSES:
                error("to", to, f"not one of {', '.join(STATUSES)}")
                continue
            allowed = allowed_next(current["status"], current["resume_status"])
            if to not in allowed:
                error("to", to, str(InvalidTransition(current["status"], to, allowed, target["id"])))
                continue
            current["resume_status"] = current["status"] if to == "on_hold" else None
            current["status"] = to
            plan.append((target["id"], to, r.get("note") or None, at))
        if report.errors or dry_run:
            return report
        for wayleave_id, to, note, at in plan:
            row = await _fetch(conn, wayleave_id, lock=True)
            await _step(conn, row, to, principal, note, at)
            report.applied += 1
    return report


def _bulk_target(
    r: dict[str, str],
    by_id: dict[int, dict[str, Any]],
    by_ref: dict[str, list[dict[str, Any]]],
    principal: Principal,
    error: Any,
) -> dict[str, Any] | None:
    if r.get("wayleave_id"):
        raw = r["wayleave_id"]
        number = whole_number(raw)
        target = None if number is None else by_id.get(number)
        if target is None:
            error("wayleave_id", raw, "no wayleave has this id")
            return None
    elif r.get("reference"):
        matches = by_ref.get(r["reference"], [])
        if principal.role == "borough":
            matches = [m for m in matches if m["borough_code"] == principal.borough_code]
        if len(matches) != 1:
            error(
                "reference",
                r["reference"],
                "no wayleave has this reference"
                if not matches
                else "reference is ambiguous: give wayleave_id",
            )
            return None
        target = matches[0]
    else:
        error("wayleave_id", None, "give the wayleave_id or the reference")
        return None
    if principal.role == "borough" and target["borough_code"] != principal.borough_code:
        column = "wayleave_id" if r.get("wayleave_id") else "reference"
        error(
            column,
            r.get(column),
            f"belongs to borough {target['borough_code']}, not {principal.borough_code}",
        )
        return None
    return target


def errors_csv(errors: Iterable[RowError]) -> str:
    """The row errors in the same columns as asset uploads: row, source_id, column, value, message."""
    return write_csv(ERROR_COLUMNS, ([e.row, e.source_id, e.column, e.value, e.message] for e in errors))


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Wayleaves (already redacted) as CSV; columns a row lacks are absent from the header."""
    rows = list(rows)
    columns = [c for c in EXPORT_COLUMNS if not rows or any(c in r for r in rows)]
    if not rows:
        columns = [c for c in EXPORT_COLUMNS if c not in RESTRICTED]
    return write_records(columns, rows)
