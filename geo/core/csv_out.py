"""Every CSV the service writes, with cells a spreadsheet would run as a formula neutralised.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, DDE): such a cell
gets a leading apostrophe, which spreadsheets show as text and hide (OWASP's advice on CSV
injection). Numbers are left alone, and so is text that is just a number (``-4.0``: a formula
of nothing but its own value), so a negative height in an error report stays readable. Every CSV output
(wayleaves, KPIs, Pipeline projects, upload and import errors, coverage downloads, the CLI's)
is written here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def safe_cell(value: Any) -> Any:
    """A cell as it may be written: formulas in text made inert, dates in ISO 8601, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document: the header, then the rows, every cell through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return out.getvalue()


def write_records(columns: Sequence[str], records: Iterable[dict[str, Any]]) -> str:
    """A CSV of dictionaries: ``columns`` in order, a missing key an empty cell."""
    return write_csv(columns, ([r.get(c) for c in columns] for r in records))
