"""The events a webhook may ask for, which roles may ask for each, and how a payload is signed.

Events are written by triggers (migration 0020) in the transaction of the write they report;
:mod:`geo.webhooks.fanout` turns each into deliveries, :mod:`geo.webhooks.sender` posts them.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from geo.access.principals import Role

#: Every event, and what it means.
EVENTS: dict[str, str] = {
    "wayleave.created": "a wayleave was created (with its first status)",
    "wayleave.transitioned": "a wayleave's status changed",
    "wayleave.edited": "a wayleave's details changed (the field names; values in /wayleaves/{id}/changes)",
    "upload.previewed": "an upload's dry run finished: its preview can be read and applied",
    "upload.applied": "an upload's assets were written",
    "upload.rejected": "an upload was refused (its file or rows cannot be used); nothing was written",
    "upload.failed": "an upload's job failed or was interrupted; nothing was written",
    "report.done": "a coverage report finished",
    "report.failed": "a coverage report failed or was interrupted",
    "pipeline_import.done": "a Pipeline import was applied (or previewed)",
    "pipeline_import.failed": "a Pipeline import was rejected, failed or was interrupted",
}

#: Which events each role may subscribe to: those of objects it can read through the API.
#: Operators see their own operator's wayleaves and their own reports; boroughs every wayleave
#: (webhooks: their own borough's), their own borough's uploads and their own reports;
#: admins everything. Pipeline imports are admin-only, as in the API.
ROLE_EVENTS: dict[Role, tuple[str, ...]] = {
    "admin": tuple(EVENTS),
    "borough": tuple(e for e in EVENTS if not e.startswith("pipeline_import.")),
    "operator": tuple(e for e in EVENTS if e.startswith(("wayleave.", "report."))),
}

#: The headers of every delivery.
SIGNATURE_HEADER = "X-Connectivity-Signature"
EVENT_ID_HEADER = "X-Connectivity-Event-Id"
EVENT_TYPE_HEADER = "X-Connectivity-Event"
DELIVERY_HEADER = "X-Connectivity-Delivery"


def signature(secret: str, body: bytes, at: int | None = None) -> str:
    """The ``X-Connectivity-Signature`` of ``body``: ``t=<unix time>,v1=<hex HMAC-SHA256>``.

    The HMAC (key: the webhook's secret) is over ``"<t>.<body>"``, so a receiver that checks
    the time (within five minutes, say) also refuses a replayed delivery.

    Examples
    --------
    >>> signature("s" * 32, b"{}", at=1700000000)[:16]
    't=1700000000,v1='
    """
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance_s`` of ``now``.

    What a receiver does (the README shows it in a few lines); the tests check deliveries with it.
    """
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = signature(secret, body, at=t).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
