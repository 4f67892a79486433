"""Single assets: read, change (history kept), read history or the state at a past time."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Header, Query, Request

from api.deps import AppSettings, Caller, Conn, Reader, RequireRoles, parse_if_match
from geo.assets import store as assets

router = APIRouter(prefix="/assets", tags=["assets"])


@router.get("/{asset_id}", summary="One asset, now or at a past time")
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


@router.get("/{asset_id}/history", summary="Every version of an asset, newest first")
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
    dependencies=[Depends(RequireRoles("admin", "borough"))],
)
async def patch_asset(
    asset_id: int,
    conn: Conn,
    caller: Caller,
    request: Request,
    background: BackgroundTasks,
    changes: Annotated[dict[str, Any], Body(examples=[{"status": "in_service", "height_m": 8}])],
    if_match: Annotated[
        str | None, Header(description="The version you read; a newer one answers 409.")
    ] = None,
) -> dict[str, Any]:
    """Borough keys change their own borough's assets, admin keys any. The replaced version stays in history."""
    expected = parse_if_match(if_match)
    updated = await assets.update_asset(conn, asset_id, changes, caller, expected)
    background.add_task(request.app.state.summaries.refresh, updated["kind"])
    return updated
