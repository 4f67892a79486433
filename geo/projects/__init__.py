"""LocalGov Digital Pipeline projects: import, placement, queries and the personal-data rule.

Pipeline (the register where councils publish digital projects) serves JSON (``GET
api/project``: a list of summaries; ``GET api/project/{id}``: one full project) and a CSV
export (``PipelineReports.csv``, no id). By concern: ``model`` (vocabularies, fields, errors,
:func:`redact`), ``values`` and ``location`` (a file's values and explicit sites), ``source``
(reading the file into rows and row errors), ``placing`` (by site or organisation, and
:func:`set_location`), ``imports`` (:func:`import_pipeline`, its record and row errors) and
``queries`` (lists, one project, projects in an area, CSV and GeoJSON).

Projects have no location of their own: :func:`geo.reference.gazetteer.place` places them by
organisation (one borough, London-wide, or unplaced with a reason); an explicit location (a
location column of the file, or :func:`set_location`) overrides it. Owner name and email (and
Pipeline's created/modified-by names) are personal data: :func:`redact` is the one place that
removes them; the map layer reads the ``pipeline_features`` view, which has none of them.
"""

from geo.projects.imports import get_import, import_errors, import_errors_sync, import_pipeline
from geo.projects.location import geometry_from_geojson, to_bng, to_wgs84
from geo.projects.model import (
    PERSONAL,
    PHASES,
    PLACEMENTS,
    STATUSES,
    ImportNotFound,
    InvalidLocation,
    ProjectNotFound,
    redact,
)
from geo.projects.placing import placement_of, set_location
from geo.projects.queries import (
    ProjectQuery,
    get_project,
    list_projects,
    parse_query,
    projects_in_area,
    to_csv,
    to_feature,
    unplaced,
)
from geo.projects.source import ParsedProject, parse_csv, parse_json, read_projects
from geo.projects.values import parse_day, parse_when

__all__ = [
    "PERSONAL",
    "PHASES",
    "PLACEMENTS",
    "STATUSES",
    "ImportNotFound",
    "InvalidLocation",
    "ParsedProject",
    "ProjectNotFound",
    "ProjectQuery",
    "geometry_from_geojson",
    "get_import",
    "get_project",
    "import_errors",
    "import_errors_sync",
    "import_pipeline",
    "list_projects",
    "parse_csv",
    "parse_day",
    "parse_json",
    "parse_query",
    "parse_when",
    "placement_of",
    "projects_in_area",
    "read_projects",
    "redact",
    "set_location",
    "to_bng",
    "to_csv",
    "to_feature",
    "to_wgs84",
    "unplaced",
]
