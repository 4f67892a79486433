"""``GET /audit``: the audit trail (admins only): who did what, when, to which object."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.deps import Conn, RequireRoles
from api.schemas import IsoDatetime, problems
from geo.access import audit

router = APIRouter(tags=["audit"])
Admin = Annotated[Any, Depends(RequireRoles("admin"))]


class AuditEvent(BaseModel):
    """One recorded write (or read of personal data)."""

    id: int = Field(description="The event's number; later events have higher ones.")
    at: IsoDatetime = Field(description="When it happened.")
    actor: str = Field(description="Who: key N (label), cli:user, system...", examples=["key 3 (Camden GIS)"])
    actor_key_id: int | None = Field(description="The actor's API key, if it was one.")
    actor_role: str | None = Field(description="The actor's role (admin, borough, operator).")
    action: str = Field(description="What was done.", examples=["asset.update"])
    object_type: str = Field(description="The kind of object: asset, upload, wayleave, api_key, person...")
    object_id: str | None = Field(description="The object's id; null for several or none.")
    details: dict[str, Any] = Field(
        description="What changed (field names, versions, counts), never personal values."
    )
    request_id: str | None = Field(description="The HTTP request's id (X-Request-ID); null outside the API.")


class AuditPage(BaseModel):
    """One page of events, newest first."""

    count: int = Field(description="Events on this page.")
    next_before: int | None = Field(description="The ``before`` of the next (older) page; null on the last.")
    events: list[AuditEvent] = Field(description="The events, newest first.")


@router.get(
    "/audit",
    summary="The audit trail, newest first (admins)",
    response_model=AuditPage,
    responses=problems(400, 401, 403),
)
async def audit_events(
    conn: Conn,
    admin: Admin,
    response: Response,
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
) -> dict[str, Any]:
    """Every write (and every read of personal data): actor, action, object and what changed.

    Follow ``next_before`` for older events. Values of changed fields are in the objects' own
    history (``/assets/{id}/history``, ``/wayleaves/{id}/changes``...), which the events name.
    """
    query = audit.AuditQuery(
        actor=actor, action=action, object_type=object_type, object_id=object_id,
        since=since, until=until, before=before, limit=limit,
    )  # fmt: skip
    rows, next_before = await audit.search(conn, query)
    response.headers["Cache-Control"] = "no-store"
    return {"count": len(rows), "next_before": next_before, "events": rows}
