"""``GET /me``: who an API key is, so clients (the web map's sign-in) can check a key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api.deps import Caller, Conn
from api.schemas import problems
from geo import access

router = APIRouter(tags=["access"])


class Me(BaseModel):
    """Who the key is: never the key or its hash."""

    key_id: int = Field(ge=1, description="The key's id (as `connectivity keys list` shows it)")
    label: str = Field(description="The key's label, as history names its writes")
    role: access.Role = Field(description="admin, borough or operator")
    borough_code: str | None = Field(
        pattern=r"^E09[0-9]{6}$", description="GSS code of the borough of a borough key; null for other roles"
    )
    operator: str | None = Field(
        description="The operator an operator key is bound to; null for other roles and unbound keys"
    )


@router.get("/me", summary="Who the API key is", response_model=Me, responses=problems(401))
async def me(conn: Conn, caller: Caller, response: Response) -> dict[str, Any]:
    """The key's id, label, role, borough (borough keys) and operator (operator keys; null when unbound).

    Never the key or its hash. 401 without a valid key.
    """
    response.headers["Cache-Control"] = "no-store"
    return await access.describe_caller(conn, caller)
