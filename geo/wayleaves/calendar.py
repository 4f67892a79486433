"""Working days and the clocks of wayleaves: England and Wales bank holidays, deadlines per status.

Dates are London calendar dates; a deadline counts working days (weekends and bank holidays
skipped) or calendar days, as :data:`DEADLINES` says, from the day a wayleave entered its status.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from geo.core.settings import WayleaveSettings
from geo.wayleaves.statuses import allowed_next

LONDON = ZoneInfo("Europe/London")


def _easter(year: int) -> dt.date:
    # Anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def _monday_on_or_after(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


def _last_monday(year: int, month: int) -> dt.date:
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=last.weekday())


#: One-off changes to the England and Wales bank holidays (moved or added by proclamation).
SPECIAL_HOLIDAYS: dict[int, tuple[tuple[dt.date, ...], tuple[dt.date, ...]]] = {
    # year: (removed rule dates, added dates)
    2020: ((dt.date(2020, 5, 4),), (dt.date(2020, 5, 8),)),  # VE Day 75
    2022: (
        (dt.date(2022, 5, 30),),
        (dt.date(2022, 6, 2), dt.date(2022, 6, 3), dt.date(2022, 9, 19)),  # Platinum Jubilee; state funeral
    ),
    2023: ((), (dt.date(2023, 5, 8),)),  # Coronation
}
HOLIDAY_YEARS = range(2015, 2036)


def bank_holidays(year: int) -> list[dt.date]:
    """England and Wales bank holidays of ``year``: the standing rules plus known one-off changes."""
    new_year = dt.date(year, 1, 1)
    easter = _easter(year)
    days = {
        _monday_on_or_after(new_year),
        easter - dt.timedelta(days=2),
        easter + dt.timedelta(days=1),
        _monday_on_or_after(dt.date(year, 5, 1)),
        _last_monday(year, 5),
        _last_monday(year, 8),
    }
    christmas = dt.date(year, 12, 25)
    # Christmas and Boxing Day falling on a weekend are substituted by the next weekdays.
    shift = {5: 2, 6: 1}.get(christmas.weekday(), 0)  # Saturday -> Mon 27, Tue 28; Sunday -> Mon 26, Tue 27
    if shift:
        days |= {christmas + dt.timedelta(days=shift), christmas + dt.timedelta(days=shift + 1)}
    elif christmas.weekday() == 4:  # Friday: Boxing Day (Saturday) moves to Monday 28
        days |= {christmas, christmas + dt.timedelta(days=3)}
    else:
        days |= {christmas, christmas + dt.timedelta(days=1)}
    removed, added = SPECIAL_HOLIDAYS.get(year, ((), ()))
    return sorted((days - set(removed)) | set(added))


@lru_cache(maxsize=1)
def _holidays() -> np.ndarray:
    return np.array([d for y in HOLIDAY_YEARS for d in bank_holidays(y)], dtype="datetime64[D]")


def add_working_days(start: dt.date, n: int) -> dt.date:
    """The date ``n`` working days after ``start`` (weekends and bank holidays skipped)."""
    day = np.busday_offset(np.datetime64(start, "D"), n, roll="forward", holidays=_holidays())
    return day.astype(dt.date)  # type: ignore[no-any-return]


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days from ``start`` (excluded) to ``end`` (included); negative when end is earlier."""
    return int(
        np.busday_count(np.datetime64(start, "D") + 1, np.datetime64(end, "D") + 1, holidays=_holidays())
    )


#: Status -> (settings field, whether it counts working days). Statuses absent have no deadline.
DEADLINES: dict[str, tuple[str, bool]] = {
    "identified": ("identified_working_days", True),
    "requested": ("request_answer_working_days", True),
    "survey_scheduled": ("survey_working_days", True),
    "surveyed": ("terms_working_days", True),
    "terms_issued": ("terms_answer_working_days", True),
    "in_negotiation": ("negotiation_working_days", True),
    "approved": ("approval_working_days", True),
    "signed": ("installation_start_working_days", True),
    "rights_imposed": ("installation_start_working_days", True),
    "installing": ("installing_working_days", True),
    "on_hold": ("on_hold_review_working_days", True),
    "code_notice_served": ("code_notice_days", False),
    "tribunal": ("tribunal_days", False),
}


def local_date(moment: dt.datetime) -> dt.date:
    """The London calendar date of an instant."""
    return moment.astimezone(LONDON).date()


def clock(
    status: str, since: dt.datetime, settings: WayleaveSettings, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Days in the status, the date it is due to move on, whether it is overdue, and the next chase date.

    ``due_on`` is the last day allowed: a wayleave is overdue from the day after.
    """
    now = now or dt.datetime.now(dt.UTC)
    start, today = local_date(since), local_date(now)
    out: dict[str, Any] = {
        "days_in_status": (now - since).days,
        "working_days_in_status": max(working_days_between(start, today), 0),
        "due_on": None,
        "overdue": False,
        "next_chase_on": None,
    }
    rule = DEADLINES.get(status)
    if rule is not None:
        name, working = rule
        n = getattr(settings, name)
        due = add_working_days(start, n) if working else start + dt.timedelta(days=n)
        out["due_on"] = due
        out["overdue"] = today > due
    if status == "requested":
        # Chases every few working days after the request: the first chase date not yet past.
        step = settings.chase_interval_working_days
        k = max(working_days_between(start, today), 0) // step + 1
        out["next_chase_on"] = add_working_days(start, k * step)
    return out


def with_clock(
    row: dict[str, Any], settings: WayleaveSettings, now: dt.datetime | None = None
) -> dict[str, Any]:
    """``row`` with its allowed next statuses and its clock (:func:`clock`) added in place."""
    row["allowed_next"] = list(allowed_next(row["status"], row.get("resume_status")))
    row.update(clock(row["status"], row["status_since"], settings, now))
    return row
