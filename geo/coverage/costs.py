"""The cost of each candidate site, for a budgeted prioritisation, and the certificate a report stores.

A candidate's cost is its kind's cost plus the cost of its best wayleave status (``none``: no
wayleave yet): the tables of the settings (``cost_by_kind``, ``cost_by_wayleave_status``) with
the request's ``costs`` over them (:func:`geo.coverage.request.build_request` checks them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import psycopg

from geo.coverage.request import ReportRequest

COSTS_SQL = """
SELECT a.id, a.kind, coalesce(w.best_status, 'none')
FROM assets a LEFT JOIN asset_wayleave_status w ON w.asset_id = a.id
WHERE a.id = ANY(%s)"""


def candidate_costs(conn: psycopg.Connection[Any], ids: np.ndarray, request: ReportRequest) -> pd.Series:
    """The cost of each candidate id (one row each, ascending), from its kind and wayleave status now.

    One query for all of them. An id no longer in the table (deleted since the assets were
    read) costs as a site of its unknown kind would at most: the largest kind cost plus the
    ``none`` status's.
    """
    by_kind = dict(request.cost_by_kind or ())
    by_status = dict(request.cost_by_wayleave_status or ())
    unique = np.unique(np.asarray(ids, dtype=np.int64))
    rows = conn.execute(COSTS_SQL, [unique.tolist()]).fetchall()
    fallback = max(by_kind.values()) + by_status["none"]
    cost = pd.Series(fallback, index=unique, dtype=float)
    if rows:
        found = np.array([r[0] for r in rows], dtype=np.int64)
        cost.loc[found] = [
            by_kind[kind] + by_status.get(status, by_status["none"]) for _, kind, status in rows
        ]
    return cost


def certificate_of(table: pd.DataFrame) -> dict[str, Any] | None:
    """The certificate of :func:`geo.coverage.engine.prioritise` as a report's summary keeps it."""
    certificate = table.attrs.get("certificate")
    if certificate is None:
        return None
    # Its time is in the report's timings (priorities): the summary holds the answer only, so
    # the same data and request give the same summary.
    out = {key: value for key, value in certificate.items() if key != "seconds"}
    if "cost" in table.columns:
        out["costs"] = [float(c) for c in table["cost"]]
    return out
