"""Reading and changing single assets, and reading any asset as it was at a past time.

History is kept by a trigger in the database (migration 0001): every update or delete
copies the replaced row into ``asset_versions`` with the interval it was current.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.access.audit import record_async
from geo.access.principals import Principal
from geo.core.errors import Conflict, InvalidInput, NotFound
from geo.reference.model import Field, load_model

# The stored attributes, in the order of the model; geometry goes out as GeoJSON in WGS84.
ATTRIBUTES = (
    "id", "borough_code", "kind", "subtype", "source_id", "name", "owner", "status", "height_m",
    "power_available", "power_source", "duct_diameter_mm", "duct_spare_capacity_pct", "rooftop_access",
    "listed_building", "conservation_area", "positional_accuracy_m", "survey_quality", "last_surveyed",
    "provenance", "load_id", "extra", "version", "valid_from", "changed_by", "retired_at",
)  # fmt: skip
HISTORY_ATTRIBUTES = tuple("asset_id AS id" if a == "id" else a for a in ATTRIBUTES)
GEOJSON = "ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json AS geometry"
WRITABLE = "SELECT borough_code, kind, version FROM assets WHERE id = %s"
LOCK_FOR_UPDATE = WRITABLE + " FOR UPDATE"

#: Fields the model leaves optional in a file that the table still keeps NOT NULL (a status
#: defaults to unknown, ``extra`` to an empty object): a change cannot empty them.
NOT_NULL = ("status", "extra")


#: What only an asset's own borough and admins see: who changed it (API key labels, upload
#: numbers) and ``extra``, the columns of a borough's file that map to no field of the model,
#: which may hold an officer's e-mail address or telephone number. Anyone else sees the
#: public projection (:func:`project`): no ``changed_by``, and of ``extra`` only the fields a
#: setting makes public (``CONNECTIVITY_ASSETS_PUBLIC_EXTRA``).
RESTRICTED = ("changed_by", "extra")


def sees_everything(principal: Principal, borough_code: str | None) -> bool:
    """Admins, and the borough the asset belongs to."""
    return principal.is_admin or (principal.role == "borough" and principal.borough_code == borough_code)


def project(row: dict[str, Any], principal: Principal, public_extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """An asset (or one of its versions) as ``principal`` may see it: whole, or its public projection."""
    if sees_everything(principal, row.get("borough_code")):
        return row
    shown = {k: v for k, v in row.items() if k not in RESTRICTED}
    shown["extra"] = {k: v for k, v in (row.get("extra") or {}).items() if k in public_extra}
    return shown


class AssetNotFound(NotFound):
    """No asset has that id (or it did not exist at that time)."""


class InvalidAssetChange(InvalidInput):
    """A change names an unknown field or a value outside the model; the message says which."""


class VersionConflict(Conflict):
    """The asset changed since the caller read it (409)."""


def _select(columns: tuple[str, ...], table: str, where: str) -> sql.Composed:
    return sql.SQL("SELECT {cols}, {geom} FROM {table} WHERE {where}").format(
        cols=sql.SQL(", ").join(sql.SQL(c) for c in columns),
        geom=sql.SQL(GEOJSON),
        table=sql.Identifier(table),
        where=sql.SQL(where),  # type: ignore[arg-type]
    )


async def get_asset(conn: psycopg.AsyncConnection[Any], asset_id: int) -> dict[str, Any]:
    """The current version of an asset."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_select(ATTRIBUTES, "assets", "id = %s"), [asset_id])
        row = await cur.fetchone()
    if row is None:
        raise AssetNotFound(f"no asset has id {asset_id}")
    return row


async def asset_history(conn: psycopg.AsyncConnection[Any], asset_id: int) -> list[dict[str, Any]]:
    """Every version of an asset, newest first; each has ``valid_from`` and ``valid_to`` (None if current)."""
    query = sql.SQL("{} UNION ALL {} ORDER BY version DESC").format(
        _select((*ATTRIBUTES, "NULL::timestamptz AS valid_to"), "assets", "id = %(id)s"),
        _select((*HISTORY_ATTRIBUTES, "valid_to"), "asset_versions", "asset_id = %(id)s"),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"id": asset_id})
        rows = await cur.fetchall()
    if not rows:
        raise AssetNotFound(f"no asset has id {asset_id}")
    return rows


async def asset_at(conn: psycopg.AsyncConnection[Any], asset_id: int, at: dt.datetime) -> dict[str, Any]:
    """The version of an asset that was current at ``at``."""
    query = sql.SQL("{} UNION ALL {}").format(
        _select(ATTRIBUTES, "assets", "id = %(id)s AND valid_from <= %(at)s"),
        _select(
            HISTORY_ATTRIBUTES,
            "asset_versions",
            "asset_id = %(id)s AND valid_from <= %(at)s AND %(at)s < valid_to",
        ),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, {"id": asset_id, "at": at})
        row = await cur.fetchone()
    if row is None:
        raise AssetNotFound(f"asset {asset_id} did not exist at {at.isoformat()}")
    return row


def changeable_fields() -> list[Field]:
    """The fields a change may set: the attributes of the model (not ``source_id``, which
    re-uploads match on) and ``extra``."""
    model = load_model()
    return [f for f in model.attribute_fields() if f.name != "source_id"] + [model.fields["extra"]]


def clearable(field: Field) -> bool:
    """Whether a change may empty ``field`` (set it to null)."""
    return not (field.required or field.name in NOT_NULL)


def check_changes(kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate attribute changes against the model; return them ready for SQL."""
    allowed = {f.name: f for f in changeable_fields()}
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        field = allowed.get(name)
        if field is None:
            raise InvalidAssetChange(
                f"field {name!r} cannot be changed; changeable fields: {', '.join(sorted(allowed))}"
            )
        if kind not in field.kinds and value is not None:
            raise InvalidAssetChange(f"field {name!r} does not apply to {kind} assets")
        if value is None:
            if not clearable(field):
                raise InvalidAssetChange(f"field {name!r} cannot be empty")
            clean[name] = None
            continue
        clean[name] = _check_value(
            field.name, field.type, field.vocabulary, field.min, field.max, kind, value
        )
    return clean


def _check_value(
    name: str, type_: str, vocabulary: str | None, lo: float | None, hi: float | None, kind: str, value: Any
) -> Any:
    model = load_model()
    if type_ == "vocabulary":
        allowed = model.vocabulary(vocabulary or "", kind)
        if value not in allowed:
            raise InvalidAssetChange(f"{name}: {value!r} is not one of {', '.join(sorted(allowed))}")
        return value
    if type_ == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidAssetChange(f"{name}: {value!r} is not a number")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InvalidAssetChange(f"{name}: {value} is outside {lo}..{hi}")
        return float(value)
    if type_ == "boolean":
        if not isinstance(value, bool):
            raise InvalidAssetChange(f"{name}: {value!r} is not true or false")
        return value
    if type_ == "date":
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise InvalidAssetChange(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from exc
    if type_ == "json":
        if not isinstance(value, dict):
            raise InvalidAssetChange(f"{name}: must be an object")
        json.dumps(value)
        return Jsonb(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAssetChange(f"{name}: {value!r} is not a non-empty text")
    return value.strip()


async def check_writable(
    conn: psycopg.AsyncConnection[Any],
    asset_id: int,
    principal: Principal,
    expected_version: int | None = None,
    *,
    lock: bool = False,
) -> tuple[str, int]:
    """The kind and version of an asset that ``principal`` may change.

    Raises :class:`AssetNotFound`, :class:`~geo.access.principals.PermissionDenied` (another
    borough's asset) or :class:`VersionConflict` (the asset is not at ``expected_version``).
    ``lock`` holds the row until the transaction ends.
    """
    cur = await conn.execute(LOCK_FOR_UPDATE if lock else WRITABLE, [asset_id])
    row = await cur.fetchone()
    if row is None:
        raise AssetNotFound(f"no asset has id {asset_id}")
    borough_code, kind, version = row
    principal.require_borough_write(borough_code)
    if expected_version is not None and expected_version != version:
        raise VersionConflict(
            f"asset {asset_id} is at version {version}, not {expected_version}; read it again and retry"
        )
    return kind, version


async def update_asset(
    conn: psycopg.AsyncConnection[Any],
    asset_id: int,
    changes: dict[str, Any],
    principal: Principal,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Change attributes of one asset; the version it replaces stays readable in its history.

    ``expected_version`` makes the change conditional: if the asset has moved on since the
    caller read it, :class:`VersionConflict` is raised and nothing is written.
    """
    async with conn.transaction():
        kind, version = await check_writable(conn, asset_id, principal, expected_version, lock=True)
        clean = check_changes(kind, changes)
        if clean:
            # Only fields whose value differs are written: a write that changes nothing writes
            # nothing, so the current version keeps its author (the trigger of 0013 sees to it too).
            flags = sql.SQL(", ").join(
                sql.SQL("{} IS DISTINCT FROM {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in clean
            )
            cur = await conn.execute(
                sql.SQL("SELECT {} FROM assets WHERE id = %(id)s").format(flags), {**clean, "id": asset_id}
            )
            distinct = await cur.fetchone()
            diff = {k: v for (k, v), d in zip(clean.items(), distinct or (), strict=True) if d}
        else:
            diff = {}
        if diff:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in diff
            )
            cur = await conn.execute(
                sql.SQL(
                    "UPDATE assets SET {}, changed_by = %(changed_by)s WHERE id = %(id)s RETURNING version"
                ).format(assignments),
                {**diff, "changed_by": principal.name, "id": asset_id},
            )
            updated = await cur.fetchone()
            await record_async(
                conn, principal, "asset.update", "asset", asset_id,
                {"fields": sorted(diff), "from_version": version, "to_version": updated[0] if updated else version},
            )  # fmt: skip
        return await get_asset(conn, asset_id)
