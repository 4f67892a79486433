"""The values of a Pipeline file: texts, dates, vocabularies, tags, booleans and whole numbers.

Each parser takes a value as read (JSON or CSV) and returns it clean, or raises ``ValueError``
with a message naming the value, which becomes a row error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from geo.core.query import whole_number
from geo.projects.model import PHASES, STATUSES

LONDON = ZoneInfo("Europe/London")


def text_or_none(value: Any) -> str | None:
    """The value as stripped text; None for None or blank."""
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
    text = text_or_none(value)
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


def parse_vocabulary(value: Any, allowed: tuple[str, ...], name: str) -> str | None:
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


def parse_status(value: Any) -> str | None:
    """A project status (:data:`~geo.projects.model.STATUSES`), by name or number."""
    return parse_vocabulary(value, STATUSES, "project status")


def parse_phase(value: Any) -> str | None:
    """An agile life-cycle phase (:data:`~geo.projects.model.PHASES`), by name or number."""
    return parse_vocabulary(value, PHASES, "agile life-cycle phase")


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
        text = text_or_none(item)
        if text and text not in tags:
            tags.append(text)
    return tags


def parse_bool(value: Any) -> bool | None:
    """True or false from a boolean or its usual spellings (true/yes/y/1, false/no/n/0); None for blank."""
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


def parse_int(value: Any) -> int | None:
    """A plain whole number (see :func:`geo.core.query.whole_number`); None for blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = None if isinstance(value, bool) else whole_number(str(value).strip())
    if number is None:
        raise ValueError(f"{value!r} is not a whole number")
    return number
