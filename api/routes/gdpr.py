"""Subject access and erasure (admins): everything held about a person, and erasing it everywhere.

The person is named in the body (an e-mail address and/or a name), never in the URL, so it is
in no access log. Both are recorded in the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Conn, RequireRoles
from geo.access import personal_data

router = APIRouter(prefix="/gdpr", tags=["personal data"])
Admin = Annotated[Any, Depends(RequireRoles("admin"))]


class Subject(BaseModel):
    """The person: an e-mail address, a name, or both."""

    email: str | None = Field(default=None, max_length=254, examples=["estates@example.org"])
    name: str | None = Field(default=None, max_length=200, examples=["Jane Smith"])


class Erasure(Subject):
    """The person to erase, and the confirmation that this cannot be undone."""

    confirm: bool = Field(description="true: erase, everywhere, for good")


@router.post("/export", summary="Everything held about a person (admins)")
async def export(body: Subject, conn: Conn, admin: Admin) -> JSONResponse:
    """Every row that names the person, table by table, history and the audit trail included."""
    result = await personal_data.export(conn, admin, body.email, body.name)
    return JSONResponse(jsonable_encoder(result), headers={"Cache-Control": "no-store"})


@router.post("/erase", summary="Erase a person everywhere (admins)")
async def erase(body: Erasure, conn: Conn, admin: Admin) -> JSONResponse:
    """Redact the person in every current row, version, event, error, key label and audit event; the counts."""
    if not body.confirm:
        raise personal_data.InvalidSubject("confirm: set it to true to erase (this cannot be undone)")
    counts = await personal_data.erase(conn, admin, body.email, body.name)
    return JSONResponse({"erased": counts}, headers={"Cache-Control": "no-store"})
