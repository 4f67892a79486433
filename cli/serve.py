"""``connectivity serve``: set the database up and serve the API and the web map, as an unprivileged user."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, err, fail, prepare_database
from geo.core.settings import PROJECT_ROOT, Settings


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
