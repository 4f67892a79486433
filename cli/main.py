"""``connectivity``: the command line, a thin front over the same ``geo`` functions as the API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.coverage import coverage
from cli.pipeline import pipeline_app
from cli.wayleaves import wayleaves_app
from geo import access, database
from geo.cluster import ClusterError, EmbeddedCluster
from geo.settings import Settings

app = typer.Typer(
    help="Connectivity planning for London: assets, wayleaves, map layers, coverage.", no_args_is_help=True
)
db_app = typer.Typer(help="The database: the embedded PostGIS cluster and migrations.", no_args_is_help=True)
demo_app = typer.Typer(help="The London demo data.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(keys_app, name="keys")
app.add_typer(wayleaves_app, name="wayleaves")
app.add_typer(pipeline_app, name="pipeline")

console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` in red on stderr and return the exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by ``geo``'s ``(step, done, total)`` reports."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None, step="")

        def report(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, step=step)

        yield report


def _url(settings: Settings) -> str:
    try:
        return database.database_url(settings.db)
    except ClusterError as exc:
        raise fail(str(exc)) from exc


def _run_async(settings: Settings, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    url = _url(settings)

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def prepare_database(settings: Settings, *, demo: bool = True, quiet: bool = False) -> str:
    """Start the embedded cluster if used, apply migrations, load the demo into an empty database."""
    from geo.demo import load_demo
    from geo.jobs import reap

    url = _url(settings)
    with database.connect(url) as conn:
        applied = database.migrate(conn)
        marked = reap(conn, settings.jobs.stale_s)
        if marked and not quiet:
            jobs = ", ".join(f"{len(ids)} {table.replace('_', ' ')}" for table, ids in marked.items())
            err.print(f"jobs left unfinished by a stopped process were marked interrupted: {jobs}")
        if applied and not quiet:
            err.print(f"applied migrations: {', '.join(applied)}")
        row = conn.execute("SELECT count(*) FROM assets").fetchone()
        if demo and row is not None and row[0] == 0:
            with progress_bar("loading the London demo") as report:
                counts = load_demo(conn, "default", report, settings.tiles.raw_min_zoom)
            err.print(f"demo loaded: {counts}")
    return url


# db ------------------------------------------------------------------------------------------------
@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS cluster (initialising it on first use) and print its URL."""
    settings = Settings()
    if settings.db.url:
        raise fail("DATABASE_URL is set: the embedded cluster is not used")
    try:
        url = EmbeddedCluster(settings.db).start()
    except ClusterError as exc:
        raise fail(str(exc)) from exc
    console.print(url, highlight=False)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (its data stay in var/pg)."""
    settings = Settings()
    try:
        stopped = EmbeddedCluster(settings.db).stop()
    except ClusterError as exc:
        raise fail(str(exc)) from exc
    console.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Show whether the embedded cluster is initialised and running (exit 3 when it is not running)."""
    settings = Settings()
    if settings.db.url:
        console.print("using DATABASE_URL (embedded cluster not used)")
        return
    status = EmbeddedCluster(settings.db).status()
    table = Table(show_header=False)
    table.add_row("directory", str(status.directory))
    table.add_row("postgres binaries", str(status.bin_dir or "not installed"))
    table.add_row("initialised", "yes" if status.initialised else "no")
    table.add_row("running", "yes" if status.running else "no")
    table.add_row("port", str(status.port or "-"))
    console.print(table)
    if not status.running:
        raise typer.Exit(3)


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded cluster if needed)."""
    console.print(_url(Settings()), highlight=False)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations; a second run applies nothing."""
    with database.connect(_url(Settings())) as conn:
        applied = database.migrate(conn)
        level = database.migration_level(conn)
    console.print(f"applied: {', '.join(applied) or 'nothing'}; migration level {level}")


# demo ------------------------------------------------------------------------------------------------
@demo_app.command("load")
def demo_load(
    scale: Annotated[
        str,
        typer.Option(
            help="small, default (London-wide in seconds) or london (500k+ points, 5,000+ km ducts)"
        ),
    ] = "default",
) -> None:
    """Fill an empty database with London: real boroughs and bus stops, labelled synthetic assets."""
    from geo.demo import SCALES, DemoAlreadyLoaded, load_demo

    if scale not in SCALES:
        raise fail(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}", 2)
    with database.connect(_url(Settings())) as conn:
        database.migrate(conn)
        try:
            with progress_bar(f"demo ({scale})") as report:
                counts = load_demo(conn, scale, report, Settings().tiles.raw_min_zoom)
        except DemoAlreadyLoaded as exc:
            raise fail(str(exc)) from exc
    table = Table("kind", "assets")
    for kind, n in counts.items():
        table.add_row(kind, f"{n:,}")
    console.print(table)


# keys ------------------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, borough or operator")],
    borough: Annotated[str | None, typer.Option(help="GSS code the borough key is bound to")] = None,
    label: Annotated[str, typer.Option(help="Who the key is for")] = "",
    operator: Annotated[
        str | None, typer.Option(help="For operator keys: the operator whose wayleaves the key may see")
    ] = None,
) -> None:
    """Create an API key and print it once: it is stored hashed and cannot be shown again."""
    from geo.boroughs import UnknownBorough
    from geo.wayleaves import set_key_operator

    if operator and role != "operator":
        raise fail("--operator applies to operator keys only", 2)

    async def create(conn: psycopg.AsyncConnection[Any]) -> access.NewKey:
        async with conn.transaction():
            new = await access.create_key(conn, role, borough, label)
            if operator:
                await set_key_operator(conn, new.id, operator)
        return new

    try:
        new = _run_async(Settings(), create)
    except (ValueError, UnknownBorough) as exc:
        raise fail(str(exc), 2) from exc
    err.print(f"key {new.id} ({new.role}{' ' + new.borough_code if new.borough_code else ''}); store it now:")
    console.print(new.key, highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    rows = _run_async(Settings(), access.list_keys)
    table = Table("id", "prefix", "role", "borough", "operator", "label", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]), r["prefix"] + "…", r["role"], r["borough_code"] or "", r["operator"] or "", r["label"],
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "",
            f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "",
        )  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")]) -> None:
    """Revoke a key at once."""
    if not _run_async(Settings(), lambda conn: access.revoke_key(conn, key_id)):
        raise fail(f"no live key has id {key_id}")
    console.print(f"key {key_id} revoked")


# import ------------------------------------------------------------------------------------------------
@app.command("import")
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
    import getpass
    import shutil
    import uuid

    from geo import uploads
    from geo.access import Principal
    from geo.boroughs import UnknownBorough, check_code
    from geo.mapping import load_mapping_file
    from geo.upload_errors import UploadRejected

    settings = Settings()
    if not file.is_file():
        raise fail(f"{file}: no such file", 2)
    try:
        code = check_code(borough)
        uploads.check_fields(kind, mode)
        spec = load_mapping_file(mapping) if mapping else None
        limits = uploads.ReadLimits.from_settings(settings.upload)
        chosen_kind = uploads.inspect_upload(file, layer, kind, file.name, limits)
    except (UnknownBorough, uploads.InvalidUploadRequest) as exc:
        raise fail(str(exc), 2) from exc
    except UploadRejected as exc:
        raise fail(exc.message) from exc
    url = _url(settings)
    with database.connect(url) as conn:
        database.migrate(conn)
    folder = Path(settings.upload.dir) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    stored = folder / file.name
    shutil.copyfile(file, stored)
    request = uploads.UploadRequest(code, chosen_kind, mode, dry_run, skip_invalid, layer, spec)
    principal = Principal(role="admin", label=f"cli:{getpass.getuser()}")
    upload_id = _run_async(
        settings, lambda c: uploads.register_upload(c, request, stored, file.name, principal)
    )
    with progress_bar(f"upload {upload_id}") as report:
        record = uploads.process_upload(
            url, upload_id, settings.upload, raw_min_zoom=settings.tiles.raw_min_zoom, progress=report
        )
    _print_upload(record)
    if record["state"] not in ("applied", "previewed"):
        raise fail(record["message"] or record["state"])


def _print_upload(record: dict[str, Any]) -> None:
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
        errors = Table(
            "row", "source_id", "column", "value", "message", title=f"{counts['errors']} row error(s)"
        )
        with database.connect(_url(Settings())) as conn:
            rows = conn.execute(
                """SELECT row_number, source_id, column_name, value, message FROM upload_errors
                   WHERE upload_id = %s ORDER BY seq LIMIT 20""",
                [record["id"]],
            ).fetchall()
        for r in rows:
            errors.add_row(*(str(v) if v is not None else "" for v in r))
        console.print(errors)


# serve ------------------------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default CONNECTIVITY_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CONNECTIVITY_API_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default CONNECTIVITY_API_WORKERS)")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Load the London demo into an empty database")] = True,
) -> None:
    """Set up the database (cluster, migrations, demo on first start) and serve the API and the web map."""
    import uvicorn

    settings = Settings()
    prepare_database(settings, demo=demo)
    host = host or settings.api.host
    port = port or settings.api.port
    base = f"http://{host}:{port}"
    console.print(f"API docs  {base}/docs\nHealth    {base}/health\nWeb map   {base}/map", highlight=False)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api.workers,
        log_level="info",
        access_log=False,
    )


app.command("coverage")(coverage)


def main() -> None:
    """The console entry point: the app, without the garbage collection of interpreter shutdown.

    The operating system frees the process's memory at exit anyway; freezing the objects first
    spares the last collections over pandas, Arrow and GDAL's modules (0.3-0.5 s per command).
    """
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
