"""Single assets: reading one (now, at a past time, or its whole history), who may see which of
its fields, and changing its attributes with the replaced version kept (:mod:`~geo.assets.store`)."""

from geo.assets.store import (
    ATTRIBUTES,
    AssetNotFound,
    InvalidAssetChange,
    VersionConflict,
    asset_at,
    asset_history,
    changeable_fields,
    check_changes,
    check_writable,
    clearable,
    get_asset,
    project,
    sees_everything,
    update_asset,
)

__all__ = [
    "ATTRIBUTES",
    "AssetNotFound",
    "InvalidAssetChange",
    "VersionConflict",
    "asset_at",
    "asset_history",
    "changeable_fields",
    "check_changes",
    "check_writable",
    "clearable",
    "get_asset",
    "project",
    "sees_everything",
    "update_asset",
]
