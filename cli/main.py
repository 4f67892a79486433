"""``connectivity``: the command line, a thin front over the same ``geo`` functions as the API."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import gc
import os
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
from geo import access
from geo.core import jobs
from geo.core.settings import PROJECT_ROOT, Settings
from geo.db import database
from geo.db.cluster import ClusterError, EmbeddedCluster
from geo.reference import model

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


def _url(settings: Settings, *, start: bool = True) -> str:
    """The URL data commands connect with: the application role (least privilege)."""
    try:
        return database.database_url(settings.db, start=start)
    except ClusterError as exc:
        raise fail(str(exc)) from exc


def _owner_url(settings: Settings) -> str:
    """The URL set-up commands connect with: migrations, the demo."""
    try:
        return database.owner_url(settings.db)
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
    from geo.core.jobs import reap
    from geo.demo import load_demo

    url = _owner_url(settings)
    with database.connect(url) as conn:
        applied = model.migrate(conn)
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
    return _url(settings, start=False)  # started for the owner's connection


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
    with database.connect(_owner_url(Settings())) as conn:
        applied = model.migrate(conn)
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
    with database.connect(_owner_url(Settings())) as conn:
        model.migrate(conn)
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
def _expiry(days: int | None, until: str | None) -> dt.datetime | None:
    """The expiry of a new key: ``--expires-days`` from now, or ``--expires`` (an ISO date or date-time)."""
    if days is not None and until is not None:
        raise fail("give --expires-days or --expires, not both", 2)
    if days is not None:
        if not 1 <= days <= 36_500:
            raise fail(f"--expires-days: {days} is not between 1 and 36,500 (a hundred years)", 2)
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    if until is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(until)
    except ValueError:
        raise fail(f"--expires: {until!r} is not an ISO 8601 date or date-time", 2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, borough or operator")],
    borough: Annotated[str | None, typer.Option(help="GSS code the borough key is bound to")] = None,
    label: Annotated[str, typer.Option(help="Who the key is for")] = "",
    operator: Annotated[
        str | None, typer.Option(help="For operator keys: the operator whose wayleaves the key may see")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(help="The key stops working this many days from now")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="The key stops working at this date or time (ISO 8601)")
    ] = None,
) -> None:
    """Create an API key and print it once: it is stored hashed and cannot be shown again."""
    from geo.reference.boroughs import UnknownBorough

    if operator and role != "operator":
        raise fail("--operator applies to operator keys only", 2)
    expires_at = _expiry(expires_days, expires)
    actor = access.cli_principal()

    async def create(conn: psycopg.AsyncConnection[Any]) -> access.NewKey:
        async with conn.transaction():
            new = await access.create_key(conn, role, borough, label, expires_at=expires_at, actor=actor)
            if operator:
                await access.bind_operator(conn, new.id, operator, actor=actor)
        return new

    try:
        new = _run_async(Settings(), create)
    except (ValueError, UnknownBorough) as exc:
        raise fail(str(exc), 2) from exc
    until = f", expires {new.expires_at:%Y-%m-%d %H:%M} UTC" if new.expires_at else ""
    err.print(
        f"key {new.id} ({new.role}{' ' + new.borough_code if new.borough_code else ''}{until}); store it now:"
    )
    console.print(new.key, highlight=False)


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    rows = _run_async(Settings(), access.list_keys)
    table = Table(
        "id", "prefix", "role", "borough", "operator", "label", "created", "last used", "expires", "rotated",
        "revoked",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            str(r["id"]), r["prefix"] + "…", r["role"], r["borough_code"] or "", r["operator"] or "", r["label"],
            _when(r["created_at"]), _when(r["last_used_at"]), _when(r["expires_at"]), _when(r["rotated_at"]),
            _when(r["revoked_at"]),
        )  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")]) -> None:
    """Revoke a key at once."""
    actor = access.cli_principal()
    if not _run_async(Settings(), lambda conn: access.revoke_key(conn, key_id, actor=actor)):
        raise fail(f"no live key has id {key_id}")
    console.print(f"key {key_id} revoked")


@keys_app.command("rotate")
def keys_rotate(key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`)")]) -> None:
    """Give a key a new secret and print it once; the old secret stops working at once."""
    actor = access.cli_principal()
    try:
        new = _run_async(Settings(), lambda conn: access.rotate_key(conn, key_id, actor=actor))
    except LookupError as exc:
        raise fail(str(exc)) from exc
    err.print(f"key {new.id} ({new.role}) has a new secret; the old one no longer works. Store it now:")
    console.print(new.key, highlight=False)


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
    import shutil
    import uuid

    from geo.core.row_errors import UploadRejected
    from geo.reference.boroughs import UnknownBorough, check_code
    from geo.uploads import process as uploads
    from geo.uploads.mapping import load_mapping_file

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
    url = prepare_database(settings, demo=False, quiet=True)
    folder = Path(settings.upload.dir) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    stored = folder / file.name
    shutil.copyfile(file, stored)
    request = uploads.UploadRequest(code, chosen_kind, mode, dry_run, skip_invalid, layer, spec)
    principal = access.cli_principal()
    upload_id = _run_async(
        settings, lambda c: uploads.register_upload(c, request, stored, file.name, principal)
    )
    beat = jobs.beating(url, settings.jobs.heartbeat_s)
    with jobs.ACTIVE.tracking("uploads", upload_id), beat, progress_bar(f"upload {upload_id}") as report:
        record = uploads.process_upload(
            url, upload_id, settings.upload, raw_min_zoom=settings.tiles.raw_min_zoom, progress=report
        )
    _print_upload(record, url)
    if record["state"] not in ("applied", "previewed"):
        raise fail(record["message"] or record["state"])


def _print_upload(record: dict[str, Any], url: str) -> None:
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
        with database.connect(url) as conn:
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
    import uvicorn.config

    settings = Settings()
    url = prepare_database(settings, demo=demo)
    host = host or settings.api.host
    port = port or settings.api.port
    base = f"http://{host}:{port}"
    # The service reads its database URL from the environment: the application role's, never
    # the superuser's (whose password file stays readable by root only).
    os.environ["CONNECTIVITY_DB_URL"] = url
    os.environ.pop("DATABASE_URL", None)
    user = _drop_privileges(settings)
    console.print(
        f"API docs  {base}/docs\nHealth    {base}/health\nWeb map   {base}/map\nRunning as {user}",
        highlight=False,
    )
    # uvicorn's own logging, and the service's (the access log, job and database messages).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["connectivity"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api.workers,
        log_level="info",
        log_config=log_config,
        access_log=False,  # the service writes its own (api.middleware.AccessLog: no keys, no queries)
    )


def _drop_privileges(settings: Settings) -> str:
    """As root, become the unprivileged ``CONNECTIVITY_API_OS_USER`` before serving; the user served as.

    It owns the upload directory and reads the code and the static files; nothing of the
    database cluster's files (the superuser's password) is readable to it. Refuses to go on
    when that user cannot read the checkout, rather than serve as root.
    """
    import pwd

    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    name = settings.api.os_user
    if name == "root":
        err.print(
            "warning: serving as root (CONNECTIVITY_API_OS_USER=root); any file read through a hole reaches everything"
        )
        return name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise fail(
            f"user {name!r} does not exist: `make setup` creates it (scripts/install-system-packages), "
            "or set CONNECTIVITY_API_OS_USER to an unprivileged user"
        ) from None
    uploads = Path(settings.upload.dir).absolute()
    uploads.mkdir(parents=True, exist_ok=True)
    # Never through a link: the service's user owns this folder and could plant one.
    os.chown(uploads, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    for folder, dirs, files in os.walk(uploads, followlinks=False):
        for child in [*dirs, *files]:
            os.chown(os.path.join(folder, child), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    uploads.chmod(0o700)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir or "/", USER=name, LOGNAME=name)
    needed = [(PROJECT_ROOT / "api" / "app.py", os.R_OK), (PROJECT_ROOT / "maps" / "static", os.R_OK | os.X_OK),
              (uploads, os.R_OK | os.W_OK | os.X_OK)]  # fmt: skip
    unreadable = [str(p) for p, mode in needed if not os.access(p, mode)]
    if unreadable:
        raise fail(
            f"user {name!r} cannot read {', '.join(unreadable)}: put the checkout where that user can read "
            "it (not below /root), or set CONNECTIVITY_API_OS_USER",
        )
    return name


app.command("coverage")(coverage)


# personal data ------------------------------------------------------------------------------------------
gdpr_app = typer.Typer(
    help="Personal data: export or erase everything held about a person.", no_args_is_help=True
)
app.add_typer(gdpr_app, name="gdpr")


def _subject_work(work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    from geo.access.personal_data import InvalidSubject

    try:
        return _run_async(Settings(), work)
    except InvalidSubject as exc:
        raise fail(str(exc), 2) from exc


@gdpr_app.command("export")
def gdpr_export(
    email: Annotated[str | None, typer.Option(help="The person's e-mail address")] = None,
    name: Annotated[str | None, typer.Option(help="The person's name")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here (default: standard output)")] = None,
) -> None:
    """Everything held about a person, table by table (JSON), history and the audit trail included."""
    import json

    from geo.access import personal_data

    target = None
    if out:
        try:  # opened first (a path that cannot be written exports nothing), its owner's alone
            target = os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")
            os.fchmod(target.fileno(), 0o600)  # an existing file keeps its mode otherwise
        except OSError as exc:
            raise fail(f"--out: {out} cannot be written ({exc.strerror})", 2) from None
    actor = access.cli_principal()
    try:
        result = _subject_work(lambda conn: personal_data.export(conn, actor, email, name))
    except BaseException:
        if target is not None:
            target.close()
            out.unlink()  # type: ignore[union-attr]
        raise
    text = json.dumps(result, default=str, indent=2)
    if target is not None:
        with target:
            target.write(text + "\n")
    else:
        typer.echo(text)
    found = ", ".join(f"{t}: {v['count']}" for t, v in result["tables"].items()) or "nothing"
    err.print(f"found {found}")


@gdpr_app.command("erase")
def gdpr_erase(
    email: Annotated[str | None, typer.Option(help="The person's e-mail address")] = None,
    name: Annotated[str | None, typer.Option(help="The person's name")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking (it cannot be undone)")] = False,
) -> None:
    """Erase a person everywhere: current rows, history, events, errors, key labels, the audit trail."""
    from geo.access import personal_data

    try:
        who = " and ".join(personal_data.needles(email, name))
    except personal_data.InvalidSubject as exc:
        raise fail(str(exc), 2) from exc
    if not yes and not typer.confirm(f"Erase {who} everywhere? This cannot be undone"):
        raise fail("nothing erased", 1)
    actor = access.cli_principal()
    counts = _subject_work(lambda conn: personal_data.erase(conn, actor, email, name))
    table = Table("where", "rows")
    for where, n in counts.items():
        if n:
            table.add_row(where, f"{n:,}")
    console.print(table if any(counts.values()) else "nothing held about them")


@app.command("purge")
def purge_command() -> None:
    """Delete what is past its retention period (raw upload files, row errors, premises points) now."""
    from geo.access.personal_data import Retention, purge

    settings = Settings()
    retention = Retention.from_settings(settings.retention)
    with database.connect(_url(settings)) as conn:
        counts = purge(conn, retention, access.cli_principal())
    if counts is None:
        raise fail("another process is purging right now; try again in a minute")
    table = Table("deleted", "count")
    for what, n in counts.items():
        table.add_row(what.replace("_", " "), f"{n:,}")
    console.print(table)


# audit ------------------------------------------------------------------------------------------------
@app.command("audit")
def audit_command(
    actor: Annotated[
        str | None, typer.Option(help="A key id, or part of the actor's name (cli:, a label)")
    ] = None,
    action: Annotated[str | None, typer.Option(help="An action, e.g. wayleave.transition")] = None,
    object_type: Annotated[
        str | None, typer.Option("--object", help="asset, upload, wayleave, api_key...")
    ] = None,
    object_id: Annotated[str | None, typer.Option("--id", help="The object's id")] = None,
    since: Annotated[str | None, typer.Option(help="Events at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="Events at or before (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines on stdout")] = False,
) -> None:
    """The audit trail, newest first: who did what, when, to which object."""
    import json

    from geo.access import audit

    moments: dict[str, dt.datetime] = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                moments[name] = dt.datetime.fromisoformat(value)
            except ValueError:
                raise fail(f"--{name}: {value!r} is not an ISO 8601 date or date-time", 2) from None
    try:
        query = audit.AuditQuery(
            actor=actor, action=action, object_type=object_type, object_id=object_id, limit=limit,
            since=moments.get("since"), until=moments.get("until"),
        )  # fmt: skip
    except ValueError as exc:
        raise fail(f"--{exc}", 2) from None
    rows, _ = _run_async(Settings(), lambda conn: audit.search(conn, query))
    if json_out:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    table = Table("id", "at (UTC)", "actor", "action", "object", "details")
    for r in rows:
        target = f"{r['object_type']} {r['object_id'] or ''}".strip()
        details = json.dumps(r["details"], default=str)
        table.add_row(
            str(r["id"]), f"{r['at'].astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}", r["actor"], r["action"], target,
            details if len(details) < 120 else details[:117] + "...",
        )  # fmt: skip
    console.print(table)


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
