"""Submitting a borough's file as an upload: the one way in, for the API and the command line alike.

:func:`check_request` refuses at once what cannot be asked (an unknown borough, kind or mode, a
borough the caller may not write); :func:`submit` then reads the mapping file, inspects the file
(format, layer, CRS, and the kind to load it as) within the upload limits and registers it as a
queued upload. Its job, :func:`geo.uploads.process.process_upload`, validates and applies it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg

from geo.access.principals import Principal
from geo.core.settings import UploadSettings
from geo.reference.boroughs import check_code
from geo.uploads.inspection import inspect_isolated, inspect_upload
from geo.uploads.mapping import load_mapping_file
from geo.uploads.records import UploadRequest, check_fields, get_upload, register_upload
from geo.uploads.source import ReadLimits


def check_request(borough: str, kind: str | None, mode: str, principal: Principal) -> str:
    """The borough's GSS code, if known, ``principal`` may write it and ``kind`` and ``mode`` are valid.

    Raises :class:`~geo.reference.boroughs.UnknownBorough`, :class:`~geo.access.principals.PermissionDenied`
    or :class:`~geo.uploads.records.InvalidUploadRequest`.
    """
    code = check_code(borough)
    principal.require_borough_write(code)
    check_fields(kind, mode)
    return code


async def submit(
    conn: psycopg.AsyncConnection[Any],
    path: Path,
    *,
    file_name: str,
    borough: str,
    settings: UploadSettings,
    principal: Principal,
    kind: str | None = None,
    mode: str = "append",
    dry_run: bool = False,
    skip_invalid: bool = False,
    layer: str | None = None,
    mapping: Path | None = None,
    isolated: bool = True,
) -> dict[str, Any]:
    """Check an upload request, inspect its file and register it as a queued upload; return its record.

    Parameters
    ----------
    conn : an autocommit connection of the application role.
    path : the received file, where the upload's job will read it (it must stay there).
    file_name : the name the file was sent with (for messages and the record).
    borough, kind, mode, dry_run, skip_invalid, layer : what the borough asks for (``kind`` None:
        from the geometry).
    mapping : a column/value mapping file (YAML or JSON), if any.
    settings : the upload limits.
    principal : who submits; they must be allowed to write the borough.
    isolated : inspect the file in a child process within the memory and time limits (the
        service); False inspects it in this process (the command line, which runs the job itself).

    Raises
    ------
    UploadRejected
        The file or the mapping cannot be used: nothing was registered.
    """
    code = check_request(borough, kind, mode, principal)
    spec = await asyncio.to_thread(load_mapping_file, mapping) if mapping is not None else None
    if isolated:
        chosen = await asyncio.to_thread(inspect_isolated, path, layer, kind, file_name, settings)
    else:
        limits = ReadLimits.from_settings(settings)
        chosen = await asyncio.to_thread(inspect_upload, path, layer, kind, file_name, limits)
    request = UploadRequest(code, chosen, mode, dry_run, skip_invalid, layer, spec)
    upload_id = await register_upload(conn, request, path, file_name, principal)
    return await get_upload(conn, upload_id, principal)
