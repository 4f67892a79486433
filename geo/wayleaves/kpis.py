"""Wayleave KPIs per borough and per operator: counts by status, time to signature, stalled list.

Definitions (also in ``data/wayleaves.md``):

- days to sign: from the first event to ``requested`` to the first event to ``signed``, in days
  (fractional); median and 90th percentile use linear interpolation between ranks (numpy's default);
- share signed within N days (N = ``signed_within_days``, 30): among requests whose outcome at N
  days is known (signed, or requested at least N days ago), the share signed within N days;
- stalled: open or on-hold wayleaves past the deadline of their status, longest in status first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from geo.access.principals import Principal
from geo.core.csv_out import write_csv
from geo.core.settings import WayleaveSettings
from geo.wayleaves.calendar import with_clock
from geo.wayleaves.queries import WayleaveQuery, select_rows
from geo.wayleaves.statuses import OPEN, STATUSES
from geo.wayleaves.visibility import viewer_for

GROUP_FIELDS = (
    "total", "overdue", "signed", "median_days_to_sign", "p90_days_to_sign", "signed_within_share",
)  # fmt: skip


def _summary(rows: Sequence[dict[str, Any]], within: int, now: dt.datetime) -> dict[str, Any]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in rows:
        counts[r["status"]] += 1
    days = np.array([r["days_to_sign"] for r in rows if r["days_to_sign"] is not None], dtype=float)
    known = [
        r
        for r in rows
        if r["requested_at"] is not None
        and (r["days_to_sign"] is not None or now - r["requested_at"] >= dt.timedelta(days=within))
    ]
    fast = sum(1 for r in known if r["days_to_sign"] is not None and r["days_to_sign"] <= within)
    return {
        "total": len(rows),
        "by_status": counts,
        "overdue": sum(1 for r in rows if r["overdue"]),
        "signed": int(days.size),
        "median_days_to_sign": round(float(np.median(days)), 1) if days.size else None,
        "p90_days_to_sign": round(float(np.percentile(days, 90)), 1) if days.size else None,
        "signed_within_share": round(fast / len(known), 4) if known else None,
    }


def _groups(rows: Sequence[dict[str, Any]], key: str, within: int, now: dt.datetime) -> list[dict[str, Any]]:
    keys = sorted({r[key] for r in rows})
    return [{key: k, **_summary([r for r in rows if r[key] == k], within, now)} for k in keys]


async def wayleave_kpis(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    settings: WayleaveSettings,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """KPIs over the wayleaves the caller may see (operators: their own), overall, per borough and per operator."""
    now = now or dt.datetime.now(dt.UTC)
    viewer = await viewer_for(conn, principal)
    rows = [with_clock(r, settings, now) for r in await select_rows(conn, viewer, WayleaveQuery())]
    cur = await conn.execute(
        """SELECT wayleave_id, min(at) FILTER (WHERE to_status = 'requested'),
                  min(at) FILTER (WHERE to_status = 'signed')
           FROM wayleave_events WHERE wayleave_id = ANY(%s) GROUP BY wayleave_id""",
        [[r["id"] for r in rows]],
    )
    times = {w: (req, sig) for w, req, sig in await cur.fetchall()}
    for r in rows:
        req, sig = times.get(r["id"], (None, None))
        r["requested_at"] = req
        r["days_to_sign"] = (sig - req).total_seconds() / 86400 if req and sig and sig >= req else None
    within = settings.signed_within_days
    stalled = sorted(
        (r for r in rows if r["overdue"] and (r["status"] in OPEN or r["status"] == "on_hold")),
        key=lambda r: (-(now - r["status_since"]).total_seconds(), r["id"]),
    )
    return {
        "generated_at": now,
        "signed_within_days": within,
        "overall": _summary(rows, within, now),
        "by_borough": _groups(rows, "borough_code", within, now),
        "by_operator": _groups(rows, "operator", within, now),
        "stalled": [
            {
                k: r[k]
                for k in (
                    "id",
                    "site_name",
                    "borough_code",
                    "operator",
                    "status",
                    "status_since",
                    "days_in_status",
                    "working_days_in_status",
                    "due_on",
                )  # fmt: skip
            }
            for r in stalled
        ],
    }


def kpis_csv(kpis: dict[str, Any]) -> str:
    """The group KPIs as CSV: one row overall, one per borough, one per operator; a column per status."""

    def line(scope: str, key: str, g: dict[str, Any]) -> list[Any]:
        return [
            scope,
            key,
            g["total"],
            *(g["by_status"][s] for s in STATUSES),
            *(g[f] for f in GROUP_FIELDS[1:]),
        ]

    rows = [line("all", "", kpis["overall"])]
    rows += [line("borough", g["borough_code"], g) for g in kpis["by_borough"]]
    rows += [line("operator", g["operator"], g) for g in kpis["by_operator"]]
    return write_csv(["scope", "key", *GROUP_FIELDS[:1], *STATUSES, *GROUP_FIELDS[1:]], rows)
