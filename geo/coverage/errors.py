"""The errors of coverage reports, each derived from a base of :mod:`geo.core.errors`."""

from __future__ import annotations

from geo.core.errors import Conflict, Gone, InvalidInput, NotFound


class InvalidCoverageRequest(InvalidInput):
    """A parameter of a coverage request is not acceptable (422); the message names it and its value."""


class InvalidArea(InvalidCoverageRequest):
    """The area is not a usable polygon, bbox or list of boroughs (422)."""


class ReportNotFound(NotFound):
    """No report has that id, or the caller may not see it (404)."""


class ReportNotReady(Conflict):
    """The report is still queued or running, or failed: its results cannot be read (409)."""


class ReportPurged(Gone):
    """The report's premises points were deleted at the end of their retention period (410)."""


class WayleavesUnavailable(Conflict):
    """``ready_now`` was asked but the database has no wayleave status view (409)."""


class ReportDismissed(Conflict):
    """The report was dismissed (``DELETE /jobs/{id}``) before it finished: its computation stops (409)."""
