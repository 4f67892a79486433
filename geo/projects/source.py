"""Reading a Pipeline file: its JSON (``api/project``) or CSV export (``PipelineReports.csv``), row by row.

Each row becomes a :class:`ParsedProject` (the fields it carries, and its explicit location) or
:class:`~geo.core.row_errors.RowError` records; a file that is not Pipeline's at all is an
:class:`~geo.core.row_errors.UploadRejected`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry

from geo.core.row_errors import RowError, UploadRejected
from geo.projects.location import columns_location
from geo.projects.model import InvalidLocation
from geo.projects.values import (
    parse_bool,
    parse_day,
    parse_int,
    parse_phase,
    parse_status,
    parse_tags,
    parse_when,
    text_or_none,
)


@dataclass
class ParsedProject:
    """One valid row of a Pipeline file: the fields it carries, and its explicit location if any."""

    row: int
    source_id: str
    fields: dict[str, Any]
    location: BaseGeometry | None = None
    has_location: bool = False

    @property
    def key(self) -> tuple[Any, ...]:
        """Pipeline id, else lower-cased organisation and title."""
        if self.fields.get("pipeline_id") is not None:
            return ("id", self.fields["pipeline_id"])
        return ("name", (self.fields.get("organisation") or "").lower(), self.fields["title"].lower())


# Source key (lower case, as read) -> (field, parser).
JSON_FIELDS: dict[str, tuple[str, Any]] = {
    "id": ("pipeline_id", parse_int),
    "title": ("title", text_or_none),
    "tags": ("tags", parse_tags),
    "content": ("content", text_or_none),
    "createdby": ("created_by", text_or_none),
    "createdon": ("created_on", parse_when),
    "modifiedby": ("modified_by", text_or_none),
    "modifiedon": ("modified_on", parse_when),
    "projectstart": ("project_start", parse_day),
    "projectend": ("project_end", parse_day),
    "projectestimatedtime": ("estimated_time", text_or_none),
    "projectstatus": ("status", parse_status),
    "status": ("status", parse_status),
    "agilelifecycle": ("phase", parse_phase),
    "organisationid": ("organisation_id", parse_int),
    "organisationname": ("organisation", text_or_none),
    "organisationurl": ("organisation_url", text_or_none),
    "organisationemail": ("organisation_email", text_or_none),
    "organisationtwitter": ("organisation_twitter", text_or_none),
    "department": ("department", text_or_none),
    "owner": ("owner", text_or_none),
    "owneremail": ("owner_email", text_or_none),
    "allowexternalcollaboration": ("allow_external_collaboration", parse_bool),
    "fundingboundary": ("funding_band", text_or_none),
    "fundingboundarytext": ("funding_band", text_or_none),
    "collaborationlevel": ("collaboration_level", text_or_none),
    "collaborationleveltext": ("collaboration_level", text_or_none),
    "lastupdated": ("last_updated", parse_when),
}
CSV_FIELDS: dict[str, tuple[str, Any]] = {
    "id": ("pipeline_id", parse_int),
    "title": ("title", text_or_none),
    "organisation": ("organisation", text_or_none),
    "department": ("department", text_or_none),
    "owner": ("owner", text_or_none),
    "owner email": ("owner_email", text_or_none),
    "project start date": ("project_start", parse_day),
    "project end date": ("project_end", parse_day),
    "last updated": ("last_updated", parse_when),
    "status": ("status", parse_status),
    "project status": ("status", parse_status),
    "phase": ("phase", parse_phase),
    "agile lifecycle": ("phase", parse_phase),
    "tags": ("tags", parse_tags),
}
# Fields that, when a file carries their key, are read in this order of preference.
_PREFERRED = {"funding_band": "fundingboundarytext", "collaboration_level": "collaborationleveltext"}


def _row_fields(
    row_number: int, values: dict[str, Any], spec: dict[str, tuple[str, Any]], names: dict[str, str]
) -> tuple[ParsedProject | None, list[RowError]]:
    """Parse one row (keys lower-cased); ``names`` maps lower keys back to the file's spelling."""
    fields: dict[str, Any] = {}
    problems: list[tuple[str, Any, str]] = []
    for key, (name, parse) in spec.items():
        if key not in values:
            continue
        preferred = _PREFERRED.get(name)
        if preferred and preferred != key and preferred in values and values[preferred] is not None:
            continue
        try:
            fields[name] = parse(values[key])
        except (ValueError, TypeError) as exc:
            problems.append((names.get(key, key), values[key], str(exc)))
    source_id = str(fields.get("pipeline_id") or text_or_none(values.get("id")) or fields.get("title") or "")
    try:
        location, _, _ = columns_location(values)
        has_location = location is not None
    except InvalidLocation as exc:
        location, has_location = None, False
        column = next(
            (n for n in ("location", "wkt", "geometry", "lon", "longitude", "easting") if n in values),
            "location",
        )
        problems.append((names.get(column, column), values.get(column), str(exc)))
    if not fields.get("title"):
        problems.append((names.get("title", "Title"), values.get("title"), "a project needs a title"))
    start, end = fields.get("project_start"), fields.get("project_end")
    if start and end and end < start:
        problems.append(
            (
                names.get("projectend", names.get("project end date", "ProjectEnd")),
                str(end),
                f"the project ends before it starts ({start})",
            )
        )
    if problems:
        return None, [
            RowError(row_number, source_id or None, column, None if value is None else str(value), message)
            for column, value, message in problems
        ]
    if "organisation" in fields and fields["organisation"] is None:
        fields["organisation"] = ""
    return ParsedProject(row_number, source_id, fields, location, has_location), []


def parse_json(data: bytes, file_name: str = "pipeline.json") -> tuple[list[ParsedProject], list[RowError]]:
    """Pipeline's JSON: a list of project summaries or full projects (or one project).

    Keys are matched case-insensitively; missing keys are simply not written. ``Organisation``
    may be a name or an object with ``Name``, ``Url``, ``Email`` and ``Twitter``.
    """
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UploadRejected(f"not valid JSON: {exc}", file=file_name) from None
    if isinstance(document, dict):
        listed = next(
            (document[k] for k in document if k.lower() in ("projects", "value", "data", "items")), None
        )
        document = listed if isinstance(listed, list) else [document]
    if not isinstance(document, list):
        raise UploadRejected("expected a list of Pipeline projects", file=file_name)
    if not document:
        raise UploadRejected("the file holds no projects", file=file_name)
    projects: list[ParsedProject] = []
    errors: list[RowError] = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            errors.append(RowError(number, None, None, str(item)[:80], "a project must be a JSON object"))
            continue
        values = {k.lower(): v for k, v in item.items()}
        names = {k.lower(): k for k in item}
        org = values.get("organisation")
        if isinstance(org, dict):
            inner = {k.lower(): v for k, v in org.items()}
            values["organisation"] = inner.get("name")
            for part in ("url", "email", "twitter"):
                values.setdefault(f"organisation{part}", inner.get(part))
            values.setdefault("organisationid", inner.get("id"))
        if "organisationname" in values and text_or_none(values["organisationname"]) is None:
            values.pop("organisationname")
        spec = dict(JSON_FIELDS)
        if "organisationname" not in values:
            spec["organisation"] = ("organisation", text_or_none)
        project, row_errors = _row_fields(number, values, spec, names)
        errors.extend(row_errors)
        if project:
            projects.append(project)
    return projects, errors


def parse_csv(
    data: bytes, file_name: str = "PipelineReports.csv"
) -> tuple[list[ParsedProject], list[RowError]]:
    """Pipeline's CSV export (``Title, Organisation, Department, Owner, Owner email, Project start date,
    Project end date, Last updated``; UK dates), plus optional location columns (``lon``/``lat``,
    ``easting``/``northing`` or ``wkt``) that override the organisation.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UploadRejected("the file is empty", file=file_name) from None
    keys = [" ".join(h.strip().lower().replace("_", " ").split()) for h in header]
    if "title" not in keys:
        raise UploadRejected(
            "no Title column: this is not Pipeline's CSV export", file=file_name, candidates=header
        )
    names = {k: h.strip() for k, h in zip(keys, header, strict=True)}
    projects: list[ParsedProject] = []
    errors: list[RowError] = []
    number = 0
    for number, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells):
            continue
        values = {k: (cells[i] if i < len(cells) else None) for i, k in enumerate(keys)}
        project, row_errors = _row_fields(number, values, CSV_FIELDS, names)
        errors.extend(row_errors)
        if project:
            projects.append(project)
    if number == 0:
        raise UploadRejected("the file holds no projects", file=file_name)
    return projects, errors


def detect_format(data: bytes, file_name: str) -> str:
    """``json`` or ``csv``, by the file's extension, else by its first character."""
    lower = file_name.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".csv"):
        return "csv"
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"[", b"{"):
        return "json"
    if b"title" in data[:2000].lower():
        return "csv"
    raise UploadRejected("send Pipeline's JSON (.json) or its CSV export (.csv)", file=file_name)


def read_projects(data: bytes, file_name: str) -> tuple[str, list[ParsedProject], list[RowError]]:
    """Parse a Pipeline file: its format, valid projects and row errors (duplicates are errors too)."""
    fmt = detect_format(data, file_name)
    projects, errors = parse_json(data, file_name) if fmt == "json" else parse_csv(data, file_name)
    seen: dict[tuple[Any, ...], int] = {}
    unique: list[ParsedProject] = []
    for p in projects:
        if p.key in seen:
            column = "Id" if p.key[0] == "id" else "Title"
            value = str(p.fields["pipeline_id"]) if p.key[0] == "id" else p.fields["title"]
            errors.append(
                RowError(p.row, p.source_id, column, value, f"the same project as row {seen[p.key]}")
            )
            continue
        seen[p.key] = p.row
        unique.append(p)
    errors.sort(key=lambda e: e.row)
    return fmt, unique, errors
