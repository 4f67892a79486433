"""Single assets: read, change (history kept), read history or the state at a past time.

The change body and the asset record are built from ``data/asset_model.yaml`` at import, so
their schemas stay in step with the model.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, WithJsonSchema
from pydantic import create_model as model_of

from api.deps import BOROUGH_WRITE, AppSettings, Caller, Conn, Reader
from api.params import IfMatch
from api.schemas import problems
from geo import assets
from geo.reference.model import KINDS, load_model
from geo.reference.model import Field as ModelField

router = APIRouter(prefix="/assets", tags=["assets"])

#: Stored attributes never null besides the model's required ones (NOT NULL in the table, migration 0001).
ALWAYS_SET = ("id", "status", "extra", "version", "valid_from")
TYPES: dict[str, Any] = {
    "integer": int, "number": float, "boolean": bool, "date": dt.date, "datetime": dt.datetime,
    "json": dict[str, Any],
}  # fmt: skip
NOT_FOUND = (404, "No asset has that id (or it did not exist at that time).")


def _codes(field: ModelField) -> list[str]:
    model = load_model()
    if field.vocabulary == "subtypes":
        return sorted(set().union(*model.subtypes.values()))
    return sorted(model.vocabulary(field.vocabulary or ""))


def _change(field: ModelField) -> tuple[Any, Any]:
    """The type and :class:`~pydantic.Field` of one changeable field, from the model file.

    Codes of a vocabulary are listed in the schema and checked by :func:`geo.assets.check_changes`,
    which knows the asset's kind (subtypes depend on it) and names the allowed codes.
    """
    kind: Any
    if field.type == "number":
        kind = Annotated[float, Field(strict=True, ge=field.min, le=field.max, allow_inf_nan=False)]
    elif field.type == "boolean":
        kind = StrictBool
    elif field.type in ("date", "json"):
        kind = TYPES[field.type]
    elif field.type == "vocabulary":
        kind = Annotated[str, Field(strict=True), WithJsonSchema({"type": "string", "enum": _codes(field)})]
    else:
        kind = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]
    about = field.description
    if tuple(field.kinds) != KINDS:
        about += f" Only for {', '.join(field.kinds)} assets."
    if field.name == "extra":
        about += " Replaces the whole object."
    if assets.clearable(field):
        return kind | None, Field(default=None, description=f"{about} null clears it.")
    return kind, Field(default=None, description=about)


def _absent_means_unchanged(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


CHANGES: dict[str, Any] = {field.name: _change(field) for field in assets.changeable_fields()}
AssetChanges = model_of(
    "AssetChanges",
    __config__=ConfigDict(extra="forbid", json_schema_extra=_absent_means_unchanged),
    __doc__="The attributes to change, each optional: a field left out keeps its value.",
    **CHANGES,
)


class Geometry(BaseModel):
    """A GeoJSON geometry in WGS84 (longitude, latitude; 7 decimals)."""

    type: str = Field(description="Point, Polygon or MultiPolygon; LineString or MultiLineString for ducts.")
    coordinates: list[Any] = Field(description="GeoJSON coordinates, longitude first.")


def _recorded(name: str) -> tuple[Any, Any]:
    """The type and :class:`~pydantic.Field` of one stored attribute in a response."""
    field = load_model().fields[name]
    kind = TYPES.get(field.type, str)
    if name == "changed_by":
        about = f"{field.description} Only for admins and the asset's own borough."
        return kind | None, Field(default=None, description=about)
    if name == "extra":
        about = (
            f"{field.description} Whole for admins and the asset's own borough; others see its public fields."
        )
        return kind, Field(description=about)
    always = field.required or name in ALWAYS_SET
    return (kind if always else kind | None), Field(description=field.description)


RECORD: dict[str, Any] = {name: _recorded(name) for name in assets.ATTRIBUTES}
GEOMETRY = (Geometry, Field(description="The geometry, in WGS84."))
Asset = model_of(
    "Asset",
    __doc__="An asset as the caller may see it.",
    **RECORD,
    geometry=GEOMETRY,
)
AssetVersion = model_of(
    "AssetVersion",
    __doc__="One version of an asset, with the interval it was current.",
    **RECORD,
    valid_to=(dt.datetime | None, Field(description="When the next version replaced it; null if current.")),
    geometry=GEOMETRY,
)


async def writable(asset_id: int, conn: Conn, caller: Caller, expected: IfMatch) -> int | None:
    """The version ``If-Match`` names, once the asset exists, is the caller's to change and is at it.

    A dependency, so it answers (404, 403, 409) before the body is validated: a caller who may
    not change an asset hears nothing about the body.
    """
    await assets.check_writable(conn, asset_id, caller, expected)
    return expected


@router.get(
    "/{asset_id}",
    summary="One asset, now or at a past time",
    response_model=Asset,
    response_model_exclude_unset=True,
    responses=problems(400, 401, NOT_FOUND),
)
async def get_asset(
    asset_id: int,
    conn: Conn,
    reader: Reader,
    settings: AppSettings,
    at: Annotated[
        dt.datetime | None, Query(description="Return the version current at this time (ISO 8601).")
    ] = None,
) -> dict[str, Any]:
    """The asset's attributes and its geometry as GeoJSON (WGS84).

    ``changed_by`` and ``extra`` (the file's unmapped columns) only for admins and the asset's own
    borough; others see the fields of ``extra`` made public by ``CONNECTIVITY_ASSETS_PUBLIC_EXTRA``.
    """
    if at is not None:
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        row = await assets.asset_at(conn, asset_id, at)
    else:
        row = await assets.get_asset(conn, asset_id)
    return assets.project(row, reader, settings.assets.public_extra)


@router.get(
    "/{asset_id}/history",
    summary="Every version of an asset, newest first",
    response_model=list[AssetVersion],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
    responses=problems(400, 401, NOT_FOUND),
)
async def get_history(
    asset_id: int, conn: Conn, reader: Reader, settings: AppSettings
) -> list[dict[str, Any]]:
    """Each version with the interval it was current (``valid_from``, ``valid_to``).

    Who made each version (``changed_by``) and the unmapped columns (``extra``) only for admins
    and the asset's own borough.
    """
    public = settings.assets.public_extra
    return [assets.project(row, reader, public) for row in await assets.asset_history(conn, asset_id)]


@router.patch(
    "/{asset_id}",
    summary="Change an asset's attributes",
    dependencies=[BOROUGH_WRITE],
    response_model=Asset,
    responses=problems(
        400,
        401,
        (403, "This key may not change assets, or not this borough's."),
        NOT_FOUND,
        (409, "The asset is no longer at the version If-Match names: read it again."),
        (422, "A change is invalid (a field or value outside the model): `detail` says which."),
    ),
)
async def patch_asset(
    asset_id: int,
    conn: Conn,
    caller: Caller,
    request: Request,
    background: BackgroundTasks,
    expected: Annotated[int | None, Depends(writable)],
    changes: Annotated[AssetChanges, Body(examples=[{"status": "in_service", "height_m": 8}])],  # type: ignore[valid-type]
) -> dict[str, Any]:
    """Borough keys change their own borough's assets, admin keys any. The replaced version stays in history."""
    updated = await assets.update_asset(
        conn,
        asset_id,
        changes.model_dump(exclude_unset=True),  # type: ignore[attr-defined]
        caller,
        expected,
    )
    background.add_task(request.app.state.summaries.refresh, updated["kind"])
    return updated
