"""A wayleave's details: which fields an edit may change (and why the others never do), and their stored form."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from geo.wayleaves.errors import InvalidChange, InvalidWayleave
from geo.wayleaves.statuses import KEY_DATES

TEMPLATES = ("standardised", "bespoke")
#: The details an edit may change (:func:`geo.wayleaves.store.update_wayleave`), in the order they are shown.
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


def clean_text(value: Any) -> str | None:
    """A text stripped, None when empty or not text."""
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
    text = clean_text(value)
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


def check_editable(changes: Mapping[str, Any]) -> None:
    """Raise unless ``changes`` names editable fields only, and one at least; :class:`InvalidChange` lists the others."""
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


def check_expiry(expires: dt.date | None, row: dict[str, Any]) -> None:
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
