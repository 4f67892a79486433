"""The errors of wayleaves, each deriving from a base in :mod:`geo.core.errors`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from geo.core.errors import Conflict, InvalidInput, NotFound, PreconditionRequired


class WayleaveNotFound(NotFound):
    """No wayleave has that id (404)."""


class InvalidWayleave(InvalidInput):
    """A wayleave, site or query value that cannot be used; the message says which (422)."""


class InvalidChange(InvalidWayleave):
    """Fields of a wayleave's details that cannot be used (422); ``problem_extra`` names each one.

    ``errors`` holds ``(field, value, message)`` for every bad field, so one answer lists them all;
    the problem document names each as the API's validation does (``where``: ``body.<field>``).
    """

    def __init__(self, errors: Sequence[tuple[str, Any, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, _, m in errors))
        self.errors = list(errors)
        self.problem_extra = {
            "errors": [
                {
                    "where": f"body.{f}",
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
