"""LocalGov Digital Pipeline projects: import, placement, queries and the personal-data rule.

Pipeline (the register where councils publish digital projects) serves JSON (``GET
api/project``: a list of summaries; ``GET api/project/{id}``: one full project) and a CSV
export (``PipelineReports.csv``, no id). :func:`import_pipeline` reads either, validates each
row (the same :class:`~geo.core.row_errors.RowError` report as asset uploads), and upserts in
one transaction: by Pipeline id, or for the id-less CSV by organisation and title. Only the
fields a file carries are written, so a summary list never erases a full project's
description, and a re-import of the same file changes nothing. History is kept by the
database trigger on ``pipeline_projects``.

Projects have no location: :func:`geo.reference.gazetteer.place` places them by organisation (one
borough, London-wide, or unplaced with a reason). An explicit location (a location column
of the file, or :func:`set_location`) overrides the organisation.

Owner name and email (and Pipeline's created/modified-by names) are personal data:
:func:`redact` is the one place that removes them, and every output of a project row passes
through it; the map layer reads the ``pipeline_features`` view, which has none of them.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo.access.audit import record, record_async, record_reads
from geo.access.principals import PermissionDenied, Principal
from geo.core.csv_out import write_records
from geo.core.errors import InvalidInput, InvalidParameter, NotFound
from geo.core.jobs import ACTIVE, finish, owner
from geo.core.progress import Progress, silent
from geo.core.query import parse_bbox, whole_number
from geo.core.row_errors import RowError, UploadRejected
from geo.reference.boroughs import UnknownBorough, check_code
from geo.reference.gazetteer import place

STATUSES = ("Concept", "Discovery", "Alpha", "Beta", "Live", "Decommissioned")
PHASES = ("Discover", "Prototype", "Build", "Improve")
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
DATE_FIELDS = {"project_start", "project_end"}
TIME_FIELDS = {"created_on", "modified_on", "last_updated"}
LONDON = ZoneInfo("Europe/London")
# A generous box around London in British National Grid: explicit locations must fall in it.
LONDON_BNG = (480_000.0, 140_000.0, 580_000.0, 220_000.0)


@functools.cache
def _transformer(source: int, target: int) -> Transformer:
    # Made on first use: building one costs 0.1-0.2 s, paid otherwise by every CLI command.
    return Transformer.from_crs(source, target, always_xy=True)


class ProjectNotFound(NotFound):
    """No Pipeline project has that id (404)."""


class ImportNotFound(NotFound):
    """No Pipeline import has that id (404)."""


class InvalidLocation(InvalidInput):
    """A location that cannot be used: not a geometry, or not in London (422)."""


# Values ------------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_when(value: Any) -> dt.datetime | None:
    """A Pipeline date or date-time as an aware datetime (naive times are London time).

    Accepts ASP.NET's ``/Date(1420070400000)/`` (optionally with an offset), ISO 8601 and the
    UK forms of the CSV export (``31/01/2015``, ``31/01/2015 14:30``, ``31-01-2015``,
    ``31 Jan 2015``). Raises ``ValueError`` for anything else, including impossible dates.
    """
    text = _text(value)
    if text is None:
        return None
    ms = re.fullmatch(r"/?Date\((-?\d+)([+-]\d{4})?\)/?", text.strip("\\"))
    if ms:
        return dt.datetime.fromtimestamp(int(ms.group(1)) / 1000, tz=dt.UTC)
    moment: dt.datetime | None = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ].*)?", text):
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a valid ISO 8601 date") from None
    else:
        for fmt in (
            "%d/%m/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y",
            "%d %b %Y", "%d %B %Y", "%d-%b-%Y", "%d/%m/%Y %I:%M %p", "%d/%m/%Y %I:%M:%S %p",
        ):  # fmt: skip
            try:
                moment = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if moment is None:
        raise ValueError(f"{text!r} is not a date (use DD/MM/YYYY or YYYY-MM-DD)")
    if not 1900 <= moment.year <= 2200:
        raise ValueError(f"{text!r} is outside the years 1900 to 2200")
    return moment if moment.tzinfo else moment.replace(tzinfo=LONDON)


def parse_day(value: Any) -> dt.date | None:
    """A Pipeline date as a calendar date in London (see :func:`parse_when`)."""
    moment = parse_when(value)
    return None if moment is None else moment.astimezone(LONDON).date()


def _vocabulary(value: Any, allowed: tuple[str, ...], name: str) -> str | None:
    """A status or phase: its name in any case, or its 0-based number (Pipeline's enum order)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a {name}")
    number = value if isinstance(value, int) else whole_number(str(value).strip())
    if number is not None:
        if 0 <= number < len(allowed):
            return allowed[number]
        raise ValueError(f"{value!r} is not a {name} number (0 to {len(allowed) - 1})")
    for code in allowed:
        if code.lower() == str(value).strip().lower():
            return code
    raise ValueError(f"{value!r} is not a {name}; use one of {', '.join(allowed)}")


def parse_tags(value: Any) -> list[str]:
    """Tags from a list (of strings or ``{"Name": ...}`` objects) or a comma/semicolon-separated text."""
    if value is None:
        return []
    items: Iterable[Any]
    if isinstance(value, str):
        items = re.split(r"[;,|]", value)
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError(f"{value!r} is not a list of tags")
    tags: list[str] = []
    for item in items:
        if isinstance(item, dict):
            item = next((v for k, v in item.items() if k.lower() in ("name", "tag", "title")), None)
        text = _text(item)
        if text and text not in tags:
            tags.append(text)
    return tags


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "null"):
        return None
    if text in ("true", "yes", "y", "1"):
        return True
    if text in ("false", "no", "n", "0"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _int(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = None if isinstance(value, bool) else whole_number(str(value).strip())
    if number is None:
        raise ValueError(f"{value!r} is not a whole number")
    return number


# Geometry ----------------------------------------------------------------------------------------------
def _round(geom: BaseGeometry) -> BaseGeometry:
    # Millimetres: the same input always stores the same coordinates, so re-imports compare equal.
    return shapely.transform(geom, lambda c: np.round(c, 3))


def to_bng(geom: BaseGeometry, srid: int | None = None) -> BaseGeometry:
    """A geometry in EPSG:27700, from WGS84 lon/lat or 27700 (told, or told apart by its coordinates).

    Raises :class:`InvalidLocation` when it is empty, invalid, has lon/lat swapped or lies outside London.
    """
    if geom.is_empty:
        raise InvalidLocation("the location is empty")
    x0, y0, x1, y1 = geom.bounds
    if srid is None:
        if -180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90:
            srid = 4326
        else:
            srid = 27700
    if srid == 4326:
        if 49 <= x0 <= 53 and -1 <= y0 <= 1:
            raise InvalidLocation(
                f"the location ({x0:g}, {y0:g}) has latitude first: give longitude, latitude"
            )
        geom = shapely.transform(
            geom, lambda c: np.column_stack(_transformer(4326, 27700).transform(c[:, 0], c[:, 1]))
        )
    elif srid != 27700:
        raise InvalidLocation(
            f"EPSG:{srid} is not supported; give WGS84 (4326) or British National Grid (27700)"
        )
    geom = _round(geom)
    if not geom.is_valid:
        raise InvalidLocation(f"the location is not a valid geometry: {shapely.is_valid_reason(geom)}")
    bx0, by0, bx1, by1 = geom.bounds
    if not (LONDON_BNG[0] <= bx0 and bx1 <= LONDON_BNG[2] and LONDON_BNG[1] <= by0 and by1 <= LONDON_BNG[3]):
        raise InvalidLocation(f"the location ({bx0:.0f}, {by0:.0f} in EPSG:27700) is not in London")
    return geom


def geometry_from_geojson(value: Any, srid: int | None = None) -> BaseGeometry:
    """A GeoJSON geometry (dict or text; a Feature's geometry is taken) in EPSG:27700."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidLocation("the location is not GeoJSON") from None
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or "type" not in value:
        raise InvalidLocation("the location must be a GeoJSON geometry (Point, Polygon...)")
    try:
        geom = shapely.geometry.shape(value)
    except Exception as exc:
        raise InvalidLocation(f"the location is not a valid GeoJSON geometry: {exc}") from None
    return to_bng(geom, srid)


def _columns_location(row: dict[str, Any]) -> tuple[BaseGeometry | None, str | None, str | None]:
    """The explicit location of a row, from WKT/GeoJSON, lon/lat or easting/northing columns.

    Returns (geometry or None, the column, the value) and raises :class:`InvalidLocation`.
    """
    for name in ("location", "wkt", "geometry"):
        raw = row.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if isinstance(raw, dict) or str(raw).lstrip().startswith("{"):
            return geometry_from_geojson(raw), name, str(raw)
        try:
            geom = shapely.from_wkt(str(raw))
        except Exception:
            raise InvalidLocation(f"{str(raw)[:60]!r} is not WKT or GeoJSON") from None
        return to_bng(geom), name, str(raw)
    for xs, ys, srid in (
        (("lon", "longitude", "lng", "x"), ("lat", "latitude", "y"), 4326),
        (("easting",), ("northing",), 27700),
    ):
        x_name = next((n for n in xs if _text(row.get(n)) is not None), None)
        y_name = next((n for n in ys if _text(row.get(n)) is not None), None)
        if x_name is None and y_name is None:
            continue
        if x_name is None or y_name is None:
            raise InvalidLocation(f"give both {xs[0]} and {ys[0]}")
        try:
            x, y = float(row[x_name]), float(row[y_name])
        except (TypeError, ValueError):
            raise InvalidLocation(f"{row[x_name]!r}, {row[y_name]!r} are not numbers") from None
        point = shapely.Point(x, y)
        return to_bng(point, None if x_name == "x" else srid), x_name, f"{row[x_name]}, {row[y_name]}"
    return None, None, None


# Parsing -----------------------------------------------------------------------------------------------
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


# Source key (lower case, as read) -> (field, parser, column name for errors).
JSON_FIELDS: dict[str, tuple[str, Any]] = {
    "id": ("pipeline_id", _int),
    "title": ("title", _text),
    "tags": ("tags", parse_tags),
    "content": ("content", _text),
    "createdby": ("created_by", _text),
    "createdon": ("created_on", parse_when),
    "modifiedby": ("modified_by", _text),
    "modifiedon": ("modified_on", parse_when),
    "projectstart": ("project_start", parse_day),
    "projectend": ("project_end", parse_day),
    "projectestimatedtime": ("estimated_time", _text),
    "projectstatus": ("status", lambda v: _vocabulary(v, STATUSES, "project status")),
    "status": ("status", lambda v: _vocabulary(v, STATUSES, "project status")),
    "agilelifecycle": ("phase", lambda v: _vocabulary(v, PHASES, "agile life-cycle phase")),
    "organisationid": ("organisation_id", _int),
    "organisationname": ("organisation", _text),
    "organisationurl": ("organisation_url", _text),
    "organisationemail": ("organisation_email", _text),
    "organisationtwitter": ("organisation_twitter", _text),
    "department": ("department", _text),
    "owner": ("owner", _text),
    "owneremail": ("owner_email", _text),
    "allowexternalcollaboration": ("allow_external_collaboration", _bool),
    "fundingboundary": ("funding_band", _text),
    "fundingboundarytext": ("funding_band", _text),
    "collaborationlevel": ("collaboration_level", _text),
    "collaborationleveltext": ("collaboration_level", _text),
    "lastupdated": ("last_updated", parse_when),
}
CSV_FIELDS: dict[str, tuple[str, Any]] = {
    "id": ("pipeline_id", _int),
    "title": ("title", _text),
    "organisation": ("organisation", _text),
    "department": ("department", _text),
    "owner": ("owner", _text),
    "owner email": ("owner_email", _text),
    "project start date": ("project_start", parse_day),
    "project end date": ("project_end", parse_day),
    "last updated": ("last_updated", parse_when),
    "status": ("status", lambda v: _vocabulary(v, STATUSES, "project status")),
    "project status": ("status", lambda v: _vocabulary(v, STATUSES, "project status")),
    "phase": ("phase", lambda v: _vocabulary(v, PHASES, "agile life-cycle phase")),
    "agile lifecycle": ("phase", lambda v: _vocabulary(v, PHASES, "agile life-cycle phase")),
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
    source_id = str(fields.get("pipeline_id") or _text(values.get("id")) or fields.get("title") or "")
    try:
        location, _, _ = _columns_location(values)
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
        if "organisationname" in values and _text(values["organisationname"]) is None:
            values.pop("organisationname")
        spec = dict(JSON_FIELDS)
        if "organisationname" not in values:
            spec["organisation"] = ("organisation", _text)
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


# Placement ---------------------------------------------------------------------------------------------
BOROUGH_AT = """SELECT code FROM boroughs WHERE ST_Intersects(geom, ST_PointOnSurface(ST_GeomFromWKB(%s, 27700)))
                ORDER BY code LIMIT 1"""


def placement_of(organisation: str | None, has_location: bool, borough_at: str | None) -> dict[str, Any]:
    """The placement columns of a project: its site when it has one, else its organisation's place.

    ``borough_at`` is the borough the site lies in, used when the organisation is not a London authority.
    """
    found = place(organisation)
    if has_location:
        return {
            "borough_code": found.borough_code or borough_at,
            "london_wide": found.london_wide,
            "placement": "exact",
            "unplaced_reason": None,
        }
    if found.borough_code:
        return {
            "borough_code": found.borough_code,
            "london_wide": False,
            "placement": "borough",
            "unplaced_reason": None,
        }
    if found.london_wide:
        return {"borough_code": None, "london_wide": True, "placement": "london", "unplaced_reason": None}
    return {
        "borough_code": None,
        "london_wide": False,
        "placement": "unplaced",
        "unplaced_reason": found.reason,
    }


# Import ------------------------------------------------------------------------------------------------
EXISTING_SQL = sql.SQL(
    "SELECT id, {fields}, ST_AsBinary(location) AS location FROM pipeline_projects"
).format(fields=sql.SQL(", ").join(sql.Identifier(f) for f in (*DATA_FIELDS, *PLACEMENT_FIELDS)))
WRITE_FIELDS = (*DATA_FIELDS, *PLACEMENT_FIELDS)


def _same_location(old: bytes | None, new: BaseGeometry | None) -> bool:
    if old is None or new is None:
        return old is None and new is None
    return bool(shapely.from_wkb(bytes(old)).equals_exact(new, 0))


class _Matcher:
    """Finds the stored project a parsed row updates."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.by_id = {r["pipeline_id"]: r for r in rows if r["pipeline_id"] is not None}
        self.by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            self.by_name.setdefault((r["organisation"].lower(), r["title"].lower()), []).append(r)

    def find(self, project: ParsedProject) -> dict[str, Any] | None:
        pid = project.fields.get("pipeline_id")
        if pid is not None and pid in self.by_id:
            return self.by_id[pid]
        name = ((project.fields.get("organisation") or "").lower(), project.fields["title"].lower())
        candidates = self.by_name.get(name, [])
        csv_rows = [r for r in candidates if r["pipeline_id"] is None]
        if csv_rows:
            # A project first seen in the CSV export, now known by its Pipeline id (or seen again).
            return csv_rows[0]
        if pid is None:
            if len(candidates) > 1:
                raise ValueError(
                    f"{len(candidates)} Pipeline projects of {name[0]!r} are titled {project.fields['title']!r}; "
                    "import the JSON to tell them apart"
                )
            return candidates[0] if candidates else None
        return None

    def remember(self, row: dict[str, Any]) -> None:
        if row["pipeline_id"] is not None:
            self.by_id[row["pipeline_id"]] = row
        self.by_name.setdefault((row["organisation"].lower(), row["title"].lower()), []).append(row)


def _apply(
    conn: psycopg.Connection[Any],
    projects: list[ParsedProject],
    import_id: int,
    source: str,
    by: str,
    progress: Progress,
) -> tuple[dict[str, int], list[RowError]]:
    counts = {"new": 0, "changed": 0, "unchanged": 0, "unplaced": 0}
    errors: list[RowError] = []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(EXISTING_SQL)
        matcher = _Matcher(cur.fetchall())
    for done, project in enumerate(projects, start=1):
        try:
            match = matcher.find(project)
        except ValueError as exc:
            errors.append(
                RowError(project.row, project.source_id, "Title", project.fields["title"], str(exc))
            )
            continue
        merged: dict[str, Any] = {f: (match[f] if match else None) for f in DATA_FIELDS}
        if not match:
            merged.update(tags=[], organisation="")
        merged.update(project.fields)
        if match and merged["pipeline_id"] is None:
            merged["pipeline_id"] = match["pipeline_id"]
        old_location = match["location"] if match else None
        location = project.location
        if not project.has_location and old_location is not None:
            location = shapely.from_wkb(bytes(old_location))
        borough_at = None
        if location is not None and not place(merged["organisation"]).borough_code:
            found = conn.execute(BOROUGH_AT, [shapely.to_wkb(location)]).fetchone()
            borough_at = found[0] if found else None
        merged.update(placement_of(merged["organisation"], location is not None, borough_at))
        counts["unplaced"] += merged["placement"] == "unplaced"
        wkb = None if location is None else shapely.to_wkb(location)
        values = [*(merged[f] for f in WRITE_FIELDS), wkb, source, import_id, by]
        if match is None:
            inserted = conn.execute(_INSERT_SQL, values).fetchone()
            assert inserted is not None
            counts["new"] += 1
            matcher.remember({**merged, "id": inserted[0], "location": wkb})
        elif any(match[f] != merged[f] for f in WRITE_FIELDS) or not _same_location(old_location, location):
            conn.execute(_UPDATE_SQL, [*values, match["id"]])
            counts["changed"] += 1
            match.update({**merged, "location": wkb})
        else:
            counts["unchanged"] += 1
        progress("import", done, len(projects))
    return counts, errors


_COLUMN_LIST = ", ".join((*WRITE_FIELDS, "location", "source", "import_id", "changed_by"))
_VALUES = ", ".join(["%s"] * len(WRITE_FIELDS) + ["ST_GeomFromWKB(%s, 27700)", "%s", "%s", "%s"])
_INSERT_SQL = f"INSERT INTO pipeline_projects ({_COLUMN_LIST}) VALUES ({_VALUES}) RETURNING id"
_UPDATE_SQL = f"UPDATE pipeline_projects SET ({_COLUMN_LIST}) = ({_VALUES}) WHERE id = %s"


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


def _store_errors(conn: psycopg.Connection[Any], import_id: int, errors: list[RowError]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO pipeline_import_errors (import_id, seq, row_number, source_id, column_name, value, message)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            [
                (import_id, i, e.row, e.source_id, e.column, e.value, e.message)
                for i, e in enumerate(errors, 1)
            ],
        )


def import_pipeline(
    conn: psycopg.Connection[Any],
    data: bytes,
    file_name: str,
    principal: Principal,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Progress = silent,
    url: str | None = None,
) -> dict[str, Any]:
    """Import a Pipeline JSON or CSV file and return the import record.

    Parameters
    ----------
    conn
        A synchronous connection; with autocommit on, the record and the changes are committed
        here (the changes in one transaction).
    data, file_name
        The file's bytes and name (the extension chooses JSON or CSV).
    principal
        Who imports: admins only.
    dry_run
        Work out the counts, write nothing but the import record (state ``previewed``).
    skip_invalid
        Apply the valid rows when some have errors; otherwise any row error rejects the whole
        file (state ``rejected``) and nothing changes, as with asset uploads.
    url
        The database's URL: a failure is then recorded on a fresh connection (the import's own
        may be what failed). Without it, on ``conn``; an import whose end could not be written is
        marked interrupted by the reaper once its process no longer tracks it.

    Returns
    -------
    dict
        The ``pipeline_imports`` row: ``state`` (applied, previewed, rejected, failed), ``counts``
        (rows, valid, invalid, errors, new, changed, unchanged, unplaced) and ``message``.

    Examples
    --------
    >>> record = import_pipeline(conn, path.read_bytes(), path.name, admin)  # doctest: +SKIP
    >>> record["counts"]["new"]  # doctest: +SKIP
    15

    A second import of the same file counts every project unchanged and writes no history.
    Performance: one statement per new or changed project; Pipeline holds a few thousand.
    """
    principal.require_role("admin")
    fmt = detect_format(data, file_name) if data.strip() else "json"
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO pipeline_imports (file_name, sha256, size_bytes, format, dry_run, skip_invalid,
                                             key_id, created_by, owner, heartbeat_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) RETURNING id""",
            [file_name, hashlib.sha256(data).hexdigest(), len(data), fmt, dry_run, skip_invalid,
             principal.key_id, principal.name, owner()],
        ).fetchone()  # fmt: skip
    assert row is not None
    import_id = int(row[0])
    with ACTIVE.tracking("pipeline_imports", import_id):
        return _import(conn, import_id, data, file_name, principal, dry_run, skip_invalid, progress, url)


def _import(
    conn: psycopg.Connection[Any],
    import_id: int,
    data: bytes,
    file_name: str,
    principal: Principal,
    dry_run: bool,
    skip_invalid: bool,
    progress: Progress,
    finish_url: str | None,
) -> dict[str, Any]:
    fmt = "json"
    state, message = "applied", None
    counts: dict[str, int] = {}
    errors: list[RowError] = []
    try:
        fmt, projects, errors = read_projects(data, file_name)
        invalid_rows = len({e.row for e in errors})
        counts = {"rows": len(projects) + invalid_rows, "valid": len(projects), "invalid": invalid_rows}
        if errors and not skip_invalid:
            state = "rejected"
            message = f"{invalid_rows} row(s) have errors; nothing was imported (fix them, or import with skip_invalid)"
        else:
            with conn.transaction() as tx:
                changes, match_errors = _apply(conn, projects, import_id, fmt, principal.name, progress)
                counts.update(changes)
                errors += match_errors
                if dry_run:
                    state = "previewed"
                    raise psycopg.Rollback(tx)
                # Recorded with the changes, in their transaction.
                record(
                    conn, principal, "pipeline.import", "pipeline_import", import_id,
                    {"state": state, "dry_run": False, "file_name": file_name, "counts": counts},
                )  # fmt: skip
    except UploadRejected as exc:
        state, message = "rejected", exc.message
    except Exception as exc:
        values = {
            "state": "failed",
            "message": f"{type(exc).__name__}: {exc}",
            "finished_at": dt.datetime.now(dt.UTC),
        }
        if finish_url is not None:  # on a fresh connection: the import's own may be what broke
            finish(finish_url, "pipeline_imports", import_id, values)
        else:
            with conn.transaction():
                conn.execute(
                    "UPDATE pipeline_imports SET state = 'failed', message = %s, finished_at = now() WHERE id = %s",
                    [values["message"], import_id],
                )
        raise
    counts["errors"] = len(errors)
    with conn.transaction():
        _store_errors(conn, import_id, errors)
        if state != "applied":
            record(
                conn, principal, "pipeline.import", "pipeline_import", import_id,
                {"state": state, "dry_run": dry_run, "file_name": file_name, "counts": counts},
            )  # fmt: skip
        conn.execute(
            """UPDATE pipeline_imports SET state = %s, message = %s, counts = %s, format = %s, finished_at = now()
               WHERE id = %s""",
            [state, message, Jsonb(counts), fmt, import_id],
        )
    return _import_record(conn, import_id)


IMPORT_SQL = """SELECT id, file_name, sha256, size_bytes, format, dry_run, skip_invalid, state, counts, message,
                       created_by, created_at, finished_at
                FROM pipeline_imports WHERE id = %s"""
ERRORS_SQL = """SELECT row_number AS row, source_id, column_name AS column, value, message
                FROM pipeline_import_errors WHERE import_id = %s ORDER BY seq"""


def _import_record(conn: psycopg.Connection[Any], import_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(IMPORT_SQL, [import_id])
        record = cur.fetchone()
    if record is None:
        raise ImportNotFound(f"no Pipeline import {import_id}")
    return record


async def get_import(
    conn: psycopg.AsyncConnection[Any], import_id: int, principal: Principal
) -> dict[str, Any]:
    """One import record (admins only)."""
    principal.require_role("admin")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(IMPORT_SQL, [import_id])
        record = await cur.fetchone()
    if record is None:
        raise ImportNotFound(f"no Pipeline import {import_id}")
    return record


async def import_errors(
    conn: psycopg.AsyncConnection[Any], import_id: int, principal: Principal
) -> list[dict[str, Any]]:
    """The row errors of an import, in file order (admins only)."""
    await get_import(conn, import_id, principal)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ERRORS_SQL, [import_id])
        return await cur.fetchall()


def import_errors_sync(conn: psycopg.Connection[Any], import_id: int) -> list[dict[str, Any]]:
    """:func:`import_errors` for the CLI (which acts as an admin)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(ERRORS_SQL, [import_id])
        return cur.fetchall()


# Access ------------------------------------------------------------------------------------------------
def redact(row: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The row as ``principal`` may see it: personal data (:data:`PERSONAL`) removed unless an admin asks.

    Every output of project rows (JSON, GeoJSON, CSV, the CLI) passes here; the map layer reads the
    ``pipeline_features`` view, which has no personal column at all.
    """
    if principal.is_admin:
        return row
    return {k: v for k, v in row.items() if k not in PERSONAL}


async def record_owner_reads(
    conn: psycopg.AsyncConnection[Any], principal: Principal, rows: list[dict[str, Any]]
) -> None:
    """Record in the audit trail that ``principal`` was shown the owners (personal data) of these projects."""
    ids = [r["id"] for r in rows if principal.is_admin and (r.get("owner") or r.get("owner_email"))]
    await record_reads(conn, principal, "pipeline_project", ids, "project owners")


def require_location_write(project: dict[str, Any], principal: Principal) -> None:
    """Admins may place any project; a borough key only its own borough's projects."""
    principal.require_role("admin", "borough")
    if principal.role == "borough" and project.get("borough_code") != principal.borough_code:
        raise PermissionDenied(
            f"this key belongs to borough {principal.borough_code} and cannot place project {project['id']} "
            f"(borough {project.get('borough_code') or 'none'})"
        )


# Queries -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectQuery:
    """Filters of a project list, parsed and checked (see :func:`parse_query`)."""

    status: tuple[str, ...] = ()
    phase: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    start: dt.date | None = None
    end: dt.date | None = None
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    borough: tuple[str, ...] = ()
    placement: tuple[str, ...] = ()
    include_london_wide: bool = False
    limit: int = 1000
    after: int | None = None


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def parse_query(
    *,
    status: str | None = None,
    phase: str | None = None,
    tag: str | None = None,
    start: str | None = None,
    end: str | None = None,
    bbox: str | None = None,
    bbox_crs: str | None = None,
    borough: str | None = None,
    placement: str | None = None,
    include_london_wide: bool = False,
    limit: int = 1000,
    after: int | None = None,
) -> ProjectQuery:
    """Check the filters of a project list; raises :class:`~geo.core.errors.InvalidParameter` naming the bad one.

    ``start``/``end`` select projects whose [project start, project end] overlaps them (open ends
    overlap everything); ``bbox`` is ``minx,miny,maxx,maxy`` in WGS84, or British National Grid with
    ``bbox_crs`` 27700 (or its EPSG URI).
    """
    checked: dict[str, tuple[str, ...]] = {}
    for name, value, allowed, label in (
        ("status", status, STATUSES, "project status"),
        ("phase", phase, PHASES, "agile life-cycle phase"),
    ):
        try:
            checked[name] = tuple(_vocabulary(v, allowed, label) or "" for v in _split(value))
        except ValueError as exc:
            raise InvalidParameter(f"{name}: {exc}") from None
    days: dict[str, dt.date | None] = {}
    for name, value in (("start", start), ("end", end)):
        try:
            days[name] = parse_day(value)
        except ValueError as exc:
            raise InvalidParameter(f"{name}: {exc}") from None
    if days["start"] and days["end"] and days["end"] < days["start"]:
        raise InvalidParameter(f"end: {end!r} is before start {start!r}")
    srid = 4326
    if bbox_crs and bbox_crs.strip():
        crs = bbox_crs.strip().strip("<>")
        if crs in ("27700", "EPSG:27700", "http://www.opengis.net/def/crs/EPSG/0/27700"):
            srid = 27700
        elif crs not in ("4326", "EPSG:4326", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
            raise InvalidParameter(
                f"bbox-crs: {bbox_crs!r} is not supported; use CRS84 (default) or EPSG:27700"
            )
    box = parse_bbox(bbox, srid, False)
    try:
        boroughs = tuple(check_code(b) for b in _split(borough))
    except UnknownBorough as exc:
        raise InvalidParameter(f"borough: {exc}") from None
    placements = _split(placement)
    for p in placements:
        if p not in ("exact", "borough", "london", "unplaced"):
            raise InvalidParameter(f"placement: {p!r} is not exact, borough, london or unplaced")
    return ProjectQuery(
        checked["status"], checked["phase"], _split(tag), days["start"], days["end"], box, srid, boroughs, placements,
        include_london_wide, min(max(limit, 1), 10_000), after,
    )  # fmt: skip


SELECT_SQL = """
SELECT p.id, p.pipeline_id, p.title, p.tags, p.content, p.status, p.phase, p.project_start, p.project_end,
       p.estimated_time, p.organisation, p.organisation_id, p.organisation_url, p.organisation_email,
       p.organisation_twitter, p.department, p.owner, p.owner_email, p.created_by, p.created_on, p.modified_by,
       p.modified_on, p.allow_external_collaboration, p.funding_band, p.collaboration_level, p.last_updated,
       p.borough_code, p.london_wide, p.placement, p.unplaced_reason, p.source, p.version, p.valid_from,
       p.changed_by,
       ST_AsGeoJSON(ST_Transform(p.location, 4326), 7)::json AS location,
       ST_AsGeoJSON(ST_Transform(p.geom, 4326), 7)::json AS geometry
FROM pipeline_projects p
"""

# Which projects touch an area: a site by its geometry, a borough-wide project when its
# borough does, a London-wide one (when asked for) when the area touches London at all.
# The boroughs touched are found once, so this stays one GiST probe per borough.
AREA_CONDITION = """(
    (p.location IS NOT NULL AND p.location && a.area AND ST_Intersects(p.location, a.area))
    OR (p.placement = 'borough' AND p.borough_code IN
        (SELECT b.code FROM boroughs b WHERE b.geom && a.area AND ST_Intersects(b.geom, a.area)))
    OR (%(wide)s AND p.placement = 'london' AND EXISTS
        (SELECT 1 FROM boroughs b WHERE b.geom && a.area AND ST_Intersects(b.geom, a.area))))"""
BBOX_AREA = """(SELECT ST_Transform(ST_Segmentize(ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, %(bbox_srid)s),
                CASE WHEN %(bbox_srid)s = 4326 THEN 0.001 ELSE 100 END), 27700) AS area) a"""


def _where(query: ProjectQuery) -> tuple[sql.Composable, dict[str, Any], sql.Composable]:
    conds: list[str] = ["true"]
    params: dict[str, Any] = {"wide": query.include_london_wide}
    area = sql.SQL("")
    if query.status:
        conds.append("p.status = ANY(%(status)s)")
        params["status"] = list(query.status)
    if query.phase:
        conds.append("p.phase = ANY(%(phase)s)")
        params["phase"] = list(query.phase)
    if query.tag:
        # Case-insensitive, any of the tags: a GIN index would need exact case, and Pipeline's tags are few.
        conds.append("EXISTS (SELECT 1 FROM unnest(p.tags) t WHERE lower(t) = ANY(%(tag)s))")
        params["tag"] = [t.lower() for t in query.tag]
    if query.start:
        conds.append("(p.project_end IS NULL OR p.project_end >= %(start)s)")
        params["start"] = query.start
    if query.end:
        conds.append("(p.project_start IS NULL OR p.project_start <= %(end)s)")
        params["end"] = query.end
    if query.borough:
        conds.append("p.borough_code = ANY(%(borough)s)")
        params["borough"] = list(query.borough)
    if query.placement:
        conds.append("p.placement = ANY(%(placement)s)")
        params["placement"] = list(query.placement)
    if query.after is not None:
        conds.append("p.id > %(after)s")
        params["after"] = query.after
    if query.bbox is not None:
        area = sql.SQL(", " + BBOX_AREA)  # type: ignore[arg-type]
        conds.append(AREA_CONDITION)
        params.update(dict(zip(("b0", "b1", "b2", "b3"), query.bbox, strict=True)))
        params["bbox_srid"] = query.bbox_srid
    return sql.SQL(" AND ".join(conds)), params, area  # type: ignore[arg-type]


async def list_projects(
    conn: psycopg.AsyncConnection[Any], query: ProjectQuery, principal: Principal
) -> tuple[list[dict[str, Any]], int | None]:
    """Projects matching ``query`` in id order, redacted for ``principal``, and the next page's cursor."""
    where, params, area = _where(query)
    statement = sql.SQL("{select} {area} WHERE {where} ORDER BY p.id LIMIT %(limit)s").format(
        select=sql.SQL(SELECT_SQL),
        area=area,
        where=where,  # type: ignore[arg-type]
    )
    params["limit"] = query.limit + 1
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        rows = await cur.fetchall()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    await record_owner_reads(conn, principal, rows)
    return [redact(r, principal) for r in rows], (rows[-1]["id"] if more else None)


async def get_project(
    conn: psycopg.AsyncConnection[Any], project_id: int, principal: Principal
) -> dict[str, Any]:
    """One project, redacted for ``principal``; :class:`ProjectNotFound` when there is none."""
    row = await _project(conn, project_id)
    await record_owner_reads(conn, principal, [row])
    return redact(row, principal)


async def _project(conn: psycopg.AsyncConnection[Any], project_id: int) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_SQL + " WHERE p.id = %s", [project_id])
        row = await cur.fetchone()
    if row is None:
        raise ProjectNotFound(f"no Pipeline project {project_id}")
    return row


async def unplaced(conn: psycopg.AsyncConnection[Any], principal: Principal) -> list[dict[str, Any]]:
    """The projects the gazetteer could not place (and that have no site), with the reason, by organisation."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_SQL + " WHERE p.placement = 'unplaced' ORDER BY lower(p.organisation), p.id")
        rows = await cur.fetchall()
    await record_owner_reads(conn, principal, rows)
    return [redact(r, principal) for r in rows]


async def set_location(
    conn: psycopg.AsyncConnection[Any],
    project_id: int,
    geometry: dict[str, Any] | None,
    principal: Principal,
    srid: int | None = None,
) -> dict[str, Any]:
    """Set (or with None clear) a project's site: a GeoJSON geometry in WGS84 or EPSG:27700.

    The site overrides the organisation's placement; clearing it places the project by its
    organisation again. Admins may place any project, borough keys their own borough's. The
    change is kept in history like any other.
    """
    project = await _project(conn, project_id)
    require_location_write(project, principal)
    location = None if geometry is None else geometry_from_geojson(geometry, srid)
    borough_at = None
    if location is not None:
        cur = await conn.execute(BOROUGH_AT, [shapely.to_wkb(location)])
        found = await cur.fetchone()
        borough_at = found[0] if found else None
        if borough_at is None:
            raise InvalidLocation("the location is not inside any London authority")
    placed = placement_of(project["organisation"], location is not None, borough_at)
    async with conn.transaction():
        await _write_location(conn, project_id, location, placed, principal)
        await record_async(
            conn, principal, "pipeline.location", "pipeline_project", project_id,
            {"placement": placed["placement"], "borough_code": placed["borough_code"], "cleared": location is None},
        )  # fmt: skip
    return await get_project(conn, project_id, principal)


async def _write_location(
    conn: psycopg.AsyncConnection[Any],
    project_id: int,
    location: BaseGeometry | None,
    placed: dict[str, Any],
    principal: Principal,
) -> None:
    await conn.execute(
        """UPDATE pipeline_projects
           SET location = ST_GeomFromWKB(%(wkb)s, 27700), borough_code = %(borough_code)s,
               london_wide = %(london_wide)s, placement = %(placement)s, unplaced_reason = %(unplaced_reason)s,
               changed_by = %(by)s
           WHERE id = %(id)s""",
        {
            **placed,
            "wkb": None if location is None else shapely.to_wkb(location),
            "by": principal.name,
            "id": project_id,
        },
    )


def projects_in_area(
    conn: psycopg.Connection[Any], area: BaseGeometry, *, include_london_wide: bool = True
) -> list[dict[str, Any]]:
    """The Pipeline projects inside or intersecting an area, for coverage reports (no personal data).

    Parameters
    ----------
    conn
        A synchronous connection.
    area
        The area in EPSG:27700 (any geometry: a polygon, a borough, a buffer).
    include_london_wide
        Also list the London-wide projects (GLA, TfL, London Councils...) when the area touches London.

    Returns
    -------
    list of dict
        One dict per project, sites first, then borough-wide, then London-wide, each by title:
        ``id, pipeline_id, title, status, phase, tags, organisation, department, borough_code,
        london_wide, placement, project_start, project_end, last_updated`` plus ``match`` (how it
        touches the area: ``exact`` its site, ``borough`` its borough, ``london`` London-wide),
        ``geometry`` (the drawn point or site as a GeoJSON dict in WGS84, None for London-wide)
        and ``geom`` (the same as a shapely geometry in EPSG:27700).

    Examples
    --------
    >>> camden = shapely.box(525000, 180000, 532000, 186000)
    >>> [p["title"] for p in projects_in_area(conn, camden)]  # doctest: +SKIP
    ['Smart lamp columns', 'Camden Wi-Fi', ...]

    Performance: one query; the borough test touches the 33 boundaries through their GiST index.
    """
    statement = f"""
        SELECT p.id, p.pipeline_id, p.title, p.status, p.phase, p.tags, p.organisation, p.department,
               p.borough_code, p.london_wide, p.placement, p.project_start, p.project_end, p.last_updated,
               CASE WHEN p.location IS NOT NULL THEN 'exact' ELSE p.placement END AS match,
               ST_AsGeoJSON(ST_Transform(p.geom, 4326), 7)::json AS geometry, ST_AsBinary(p.geom) AS geom
        FROM pipeline_projects p, (SELECT ST_GeomFromWKB(%(area)s, 27700) AS area) a
        WHERE {AREA_CONDITION}
        ORDER BY array_position(ARRAY['exact', 'borough', 'london'],
                                CASE WHEN p.location IS NOT NULL THEN 'exact' ELSE p.placement END),
                 lower(p.title), p.id"""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(statement, {"area": shapely.to_wkb(area), "wide": include_london_wide})
        rows = cur.fetchall()
    for r in rows:
        r["geom"] = shapely.from_wkb(bytes(r["geom"])) if r["geom"] is not None else None
    return [redact(r, Principal(role=None)) for r in rows]


# Outputs -----------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "id", "pipeline_id", "title", "status", "phase", "tags", "organisation", "department", "owner", "owner_email",
    "project_start", "project_end", "estimated_time", "funding_band", "collaboration_level", "last_updated",
    "borough_code", "london_wide", "placement", "unplaced_reason", "longitude", "latitude",
)  # fmt: skip


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Projects as CSV (already redacted rows: absent columns are left out), with the drawn point's lon/lat."""
    present = set().union(*(r.keys() for r in rows)) if rows else set(CSV_COLUMNS) - PERSONAL
    columns = [c for c in CSV_COLUMNS if c in present or c in ("longitude", "latitude")]
    lines = []
    for r in rows:
        line = dict(r)
        line["tags"] = "; ".join(r.get("tags") or [])
        point = r.get("geometry")
        if point and point.get("type") == "Point":
            line["longitude"], line["latitude"] = point["coordinates"]
        lines.append(line)
    return write_records(columns, lines)


def to_feature(row: dict[str, Any]) -> dict[str, Any]:
    """A project as a GeoJSON feature (geometry: the drawn site or point, null when not drawn)."""
    properties = {k: v for k, v in row.items() if k not in ("geometry", "location")}
    return {"type": "Feature", "id": row["id"], "geometry": row.get("geometry"), "properties": properties}


def to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    """A 27700 geometry in WGS84 lon/lat (for tests and maps)."""
    return shapely.transform(
        geom, lambda c: np.column_stack(_transformer(27700, 4326).transform(c[:, 0], c[:, 1]))
    )
