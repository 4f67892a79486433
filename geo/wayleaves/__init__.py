"""Standardised wayleaves: the status rules, clocks, who sees what, storage, bulk updates and KPIs.

- :mod:`~geo.wayleaves.statuses`: the statuses and :data:`TRANSITIONS`, the one statement of the rules;
- :mod:`~geo.wayleaves.calendar`: working days, bank holidays and each status's clock;
- :mod:`~geo.wayleaves.visibility`: which wayleaves and columns a caller sees (:func:`redact`);
- :mod:`~geo.wayleaves.details`: the editable details and their checks;
- :mod:`~geo.wayleaves.queries`: reading one wayleave, a filtered list by pages, its counts, and its CSV;
- :mod:`~geo.wayleaves.store`: create, edit, change status (the one write path of a status), history;
- :mod:`~geo.wayleaves.bulk`: status updates from a CSV, all or nothing;
- :mod:`~geo.wayleaves.kpis`: counts, time to signature and stalled wayleaves per borough and operator.
"""

from geo.wayleaves.bulk import (
    BULK_COLUMNS,
    MAX_BULK_ROWS,
    BulkReport,
    InvalidBulkFile,
    bulk_transition,
    read_bulk_csv,
)
from geo.wayleaves.calendar import (
    DEADLINES,
    LONDON,
    add_working_days,
    bank_holidays,
    clock,
    local_date,
    working_days_between,
)
from geo.wayleaves.details import EDITABLE, NOT_EDITABLE, OPERATOR_EDITABLE, TEMPLATES, check_details
from geo.wayleaves.errors import (
    DuplicateReference,
    InvalidChange,
    InvalidTransition,
    InvalidWayleave,
    VersionRequired,
    WayleaveNotFound,
)
from geo.wayleaves.kpis import kpis_csv, wayleave_kpis
from geo.wayleaves.queries import (
    EXPORT_COLUMNS,
    WayleavePage,
    WayleaveQuery,
    count_wayleaves,
    list_wayleaves,
    parse_query,
    to_csv,
    wayleave_page,
)
from geo.wayleaves.statuses import (
    INITIAL,
    KEY_DATES,
    OPEN,
    PROGRESS,
    READY_STATUSES,
    STATUSES,
    TRANSITIONS,
    allowed_next,
    replay,
)
from geo.wayleaves.store import (
    changes,
    create_site,
    create_wayleave,
    get_wayleave,
    history,
    transition,
    update_wayleave,
)
from geo.wayleaves.visibility import (
    AUTHORS,
    RESTRICTED,
    Viewer,
    redact,
    redact_change,
    redact_event,
    viewer_for,
)

__all__ = [
    "AUTHORS",
    "BULK_COLUMNS",
    "DEADLINES",
    "EDITABLE",
    "EXPORT_COLUMNS",
    "INITIAL",
    "KEY_DATES",
    "LONDON",
    "MAX_BULK_ROWS",
    "NOT_EDITABLE",
    "OPEN",
    "OPERATOR_EDITABLE",
    "PROGRESS",
    "READY_STATUSES",
    "RESTRICTED",
    "STATUSES",
    "TEMPLATES",
    "TRANSITIONS",
    "BulkReport",
    "DuplicateReference",
    "InvalidBulkFile",
    "InvalidChange",
    "InvalidTransition",
    "InvalidWayleave",
    "VersionRequired",
    "Viewer",
    "WayleaveNotFound",
    "WayleavePage",
    "WayleaveQuery",
    "add_working_days",
    "allowed_next",
    "bank_holidays",
    "bulk_transition",
    "changes",
    "check_details",
    "clock",
    "count_wayleaves",
    "create_site",
    "create_wayleave",
    "get_wayleave",
    "history",
    "kpis_csv",
    "list_wayleaves",
    "local_date",
    "parse_query",
    "read_bulk_csv",
    "redact",
    "redact_change",
    "redact_event",
    "replay",
    "to_csv",
    "transition",
    "update_wayleave",
    "viewer_for",
    "wayleave_page",
    "wayleave_kpis",
    "working_days_between",
]
