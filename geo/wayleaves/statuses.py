"""Wayleave statuses and the transitions between them: the one statement of the rules.

:data:`TRANSITIONS` is the table ``data/wayleaves.md`` documents (a test checks they agree).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from geo.wayleaves.errors import InvalidTransition, InvalidWayleave

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
