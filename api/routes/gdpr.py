"""Subject access and erasure (admins): everything held about a person, and erasing it everywhere.

The person is named in the body (an e-mail address and/or a name), never in the URL, so it is
in no access log. Both are recorded in the audit trail.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from api.deps import Conn, RequireRoles
from api.schemas import IsoDatetime, problems
from geo.access import personal_data

router = APIRouter(prefix="/gdpr", tags=["personal data"])
Admin = Annotated[Any, Depends(RequireRoles("admin"))]
NO_STORE = {"Cache-Control": "no-store"}


class Subject(BaseModel):
    """The person: an e-mail address, a name, or both."""

    email: str | None = Field(
        default=None, max_length=254, description="Their e-mail address.", examples=["estates@example.org"]
    )
    name: str | None = Field(
        default=None,
        max_length=200,
        description="Their full name (two words at least), matched as whole words.",
        examples=["Jane Smith"],
    )


class Erasure(Subject):
    """The person to erase, and the confirmation that this cannot be undone."""

    confirm: bool = Field(description="true: erase, everywhere, for good")


class Rows(BaseModel):
    """The rows of one table that name the person."""

    count: int = Field(description="Every matching row (the list stops at 10,000).")
    rows: list[dict[str, Any]] = Field(
        description="The rows: their keys and the columns that may name people."
    )


class Export(BaseModel):
    """Everything held about the person."""

    subject: Subject = Field(description="Who was looked for.")
    exported_at: IsoDatetime = Field(description="When the export was made.")
    tables: dict[str, Rows] = Field(description="By table, only those where the person appears.")


class Erased(BaseModel):
    """What was redacted."""

    erased: dict[str, int] = Field(description="Rows redacted, by table.")


@router.post(
    "/export",
    summary="Everything held about a person (admins)",
    response_model=Export,
    responses=problems(401, 403, 422),
)
async def export(body: Subject, conn: Conn, admin: Admin, response: Response) -> Any:
    """Every row that names the person, table by table, history and the audit trail included."""
    result = await personal_data.export(conn, admin, body.email, body.name)
    response.headers.update(NO_STORE)
    # The rows hold any column: jsonable_encoder writes their values as the export always has.
    return jsonable_encoder(result)


@router.post(
    "/erase",
    summary="Erase a person everywhere (admins)",
    response_model=Erased,
    responses=problems(401, 403, 422),
)
async def erase(body: Erasure, conn: Conn, admin: Admin, response: Response) -> dict[str, Any]:
    """Redact the person in every current row, version, event, error, key label and audit event; the counts."""
    if not body.confirm:
        raise personal_data.InvalidSubject("confirm: set it to true to erase (this cannot be undone)")
    counts = await personal_data.erase(conn, admin, body.email, body.name)
    response.headers.update(NO_STORE)
    return {"erased": counts}
