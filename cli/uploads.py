"""``connectivity import``: a borough's asset file, submitted as an upload and processed here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.common import console, fail, prepare_database, principal, progress_bar, run_async
from geo.core import jobs
from geo.core.row_errors import ERROR_COLUMNS
from geo.core.settings import Settings
from geo.db import database


def import_file(
    file: Annotated[
        Path, typer.Argument(help="GeoPackage, zipped Shapefile, GeoJSON, FlatGeobuf, KML/KMZ, CSV or XLSX")
    ],
    borough: Annotated[str, typer.Option(help="GSS code of the borough the assets belong to")],
    kind: Annotated[
        str | None,
        typer.Option(help="public_building, street_furniture or duct (default: from the geometry)"),
    ] = None,
    layer: Annotated[
        str | None, typer.Option(help="Layer, sheet or Shapefile to read when the file has several")
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="Column/value mapping file (YAML or JSON)")] = None,
    mode: Annotated[
        str, typer.Option(help="append (upsert) or replace (also retire what the file no longer holds)")
    ] = "append",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Preview only: write nothing to the assets")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Apply the valid rows even if some have errors")
    ] = False,
) -> None:
    """Import a borough's asset file: validate, preview or apply in one transaction (exit 1 if rejected)."""
    import shutil
    import uuid

    from geo import uploads  # the readers (pandas, GDAL): loaded when used
    from geo.core.row_errors import UploadRejected
    from geo.reference.boroughs import UnknownBorough

    settings = Settings()
    if not file.is_file():
        raise fail(f"{file}: no such file", 2)
    try:
        uploads.check_request(borough, kind, mode, principal())
    except (UnknownBorough, uploads.InvalidUploadRequest) as exc:
        raise fail(str(exc), 2) from exc
    url = prepare_database(settings, demo=False, quiet=True)
    folder = Path(settings.upload.dir) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    stored = folder / file.name
    shutil.copyfile(file, stored)
    registered = False
    try:
        record = run_async(
            settings,
            lambda c: uploads.submit(
                c, stored, file_name=file.name, borough=borough, kind=kind, mode=mode, dry_run=dry_run,
                skip_invalid=skip_invalid, layer=layer, mapping=mapping, settings=settings.upload,
                principal=principal(), isolated=False,
            ),
        )  # fmt: skip
        registered = True
    except UploadRejected as exc:
        raise fail(exc.message) from exc
    finally:
        if not registered:  # the copy goes with the submission
            shutil.rmtree(folder, ignore_errors=True)
    upload_id = record["id"]
    beat = jobs.beating(url, settings.jobs.heartbeat_s)
    with jobs.ACTIVE.tracking("uploads", upload_id), beat, progress_bar(f"upload {upload_id}") as report:
        record = uploads.process_upload(
            url, upload_id, settings.upload, raw_min_zoom=settings.tiles.raw_min_zoom, progress=report
        )
    _print_upload(record, url)
    if record["state"] not in ("applied", "previewed"):
        raise fail(record["message"] or record["state"])


def _print_upload(record: dict[str, Any], url: str) -> None:
    from geo import uploads

    counts = record["counts"]
    table = Table(
        title=f"upload {record['id']}: {record['file_name']} -> {record['state']}", show_header=False
    )
    for key in ("rows", "valid", "invalid", "new", "changed", "unchanged", "retired"):
        if key in counts:
            table.add_row(key, f"{counts[key]:,}")
    for field, n in record["changed_fields"].items():
        table.add_row(f"  {field} changes", f"{n:,}")
    table.add_row("format / CRS", f"{record['format']} / {record['crs']}")
    console.print(table)
    for note in record["report"].get("notes", []):
        console.print(f"note: {note}", highlight=False)
    if record["mapping"]:
        columns = record["mapping"].get("columns", {})
        console.print("mapping: " + ", ".join(f"{k} -> {v}" for k, v in columns.items()), highlight=False)
    if counts.get("errors"):
        errors = Table(*ERROR_COLUMNS, title=f"{counts['errors']} row error(s)")
        with database.connect(url) as conn:
            rows = uploads.upload_errors_sync(conn, record["id"], limit=20)
        for r in rows:
            errors.add_row(*(str(r[c]) if r[c] is not None else "" for c in ERROR_COLUMNS))
        console.print(errors)
