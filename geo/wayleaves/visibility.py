"""Who sees which wayleaves and which of their columns.

Operator keys see only their own operator's wayleaves; the restricted columns (notes and the
landlord or site contact) and the authors leave the package only through :func:`redact`,
:func:`redact_event` and :func:`redact_change`, for admins and the owning borough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from geo.access.audit import record_reads
from geo.access.keys import key_operator
from geo.access.principals import Principal

#: Columns only admins and the owning borough see: personal data and internal notes.
RESTRICTED = ("notes", "contact_name", "contact_email", "contact_phone")
#: Who wrote a wayleave: shown, as the authors of its events and edits, to admins and the owning borough only.
AUTHORS = ("created_by",)


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
