"""``GET /audit``: the audit trail (admins only): who did what, when, to which object."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.deps import Conn, RequireRoles
from geo.access import audit

router = APIRouter(tags=["audit"])
Admin = Annotated[Any, Depends(RequireRoles("admin"))]


@router.get("/audit", summary="The audit trail, newest first (admins)")
async def audit_events(
    conn: Conn,
    admin: Admin,
    actor: Annotated[
        str | None, Query(description="A key id, or part of the actor's name (cli:, a label)")
    ] = None,
    action: Annotated[str | None, Query(description="An action, e.g. wayleave.transition")] = None,
    object_type: Annotated[str | None, Query(description="asset, upload, wayleave, api_key, ...")] = None,
    object_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[dt.datetime | None, Query(description="Events at or after (ISO 8601)")] = None,
    until: Annotated[dt.datetime | None, Query(description="Events at or before (ISO 8601)")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Cursor: events older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Every write (and every read of personal data): actor, action, object and what changed.

    Follow ``next_before`` for older events. Values of changed fields are in the objects' own
    history (``/assets/{id}/history``, ``/wayleaves/{id}/changes``...), which the events name.
    """
    query = audit.AuditQuery(
        actor=actor, action=action, object_type=object_type, object_id=object_id,
        since=since, until=until, before=before, limit=limit,
    )  # fmt: skip
    rows, next_before = await audit.search(conn, query)
    return JSONResponse(
        jsonable_encoder({"count": len(rows), "next_before": next_before, "events": rows}),
        headers={"Cache-Control": "no-store"},
    )
