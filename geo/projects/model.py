"""The Pipeline project model: its vocabularies, the fields an import writes, its errors and the personal-data rule."""

from __future__ import annotations

from typing import Any

from geo.access.principals import Principal
from geo.core.errors import InvalidInput, NotFound

STATUSES = ("Concept", "Discovery", "Alpha", "Beta", "Live", "Decommissioned")
PHASES = ("Discover", "Prototype", "Build", "Improve")
#: How a project is placed: by its site, its borough, London-wide, or not at all.
PLACEMENTS = ("exact", "borough", "london", "unplaced")
#: Columns only admins see: the owner (name, email) and Pipeline's author names; our own
#: ``changed_by`` (an API key's label) is internal too.
PERSONAL = frozenset({"owner", "owner_email", "created_by", "modified_by", "changed_by"})
#: Fields an import writes and compares, in table order (placement and location are added).
DATA_FIELDS = (
    "pipeline_id", "title", "tags", "content", "created_by", "created_on", "modified_by", "modified_on",
    "project_start", "project_end", "estimated_time", "status", "phase", "organisation", "organisation_id",
    "organisation_url", "organisation_email", "organisation_twitter", "department", "owner", "owner_email",
    "allow_external_collaboration", "funding_band", "collaboration_level", "last_updated",
)  # fmt: skip
PLACEMENT_FIELDS = ("borough_code", "london_wide", "placement", "unplaced_reason")


class ProjectNotFound(NotFound):
    """No Pipeline project has that id (404)."""


class ImportNotFound(NotFound):
    """No Pipeline import has that id (404)."""


class InvalidLocation(InvalidInput):
    """A location that cannot be used: not a geometry, or not in London (422)."""


def redact(row: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The row as ``principal`` may see it: personal data (:data:`PERSONAL`) removed unless an admin asks.

    Every output of project rows (JSON, GeoJSON, CSV, the CLI) passes here; the map layer reads the
    ``pipeline_features`` view, which has no personal column at all.
    """
    if principal.is_admin:
        return row
    return {k: v for k, v in row.items() if k not in PERSONAL}
