"""What every command shares: the consoles, ``fail``, the error → exit-code table, the progress bar,
the async runner, the database URLs and the one principal the CLI acts as."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from geo import access
from geo.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    InvalidParameter,
    NotFound,
    PreconditionRequired,
    TooLarge,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from geo.core.settings import Settings
from geo.db import database
from geo.reference import model

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

FAILED = 1  # the work was refused or failed
USAGE = 2  # the command line is wrong (Typer's own code for a bad option)

#: The exit code of each base class of :mod:`geo.core.errors`; an error takes the code of the
#: first of its classes listed (``Gone`` that of ``NotFound``).
EXIT_CODES: dict[type[DomainError], int] = {
    InvalidParameter: USAGE,
    InvalidInput: FAILED,
    Unauthenticated: FAILED,
    Forbidden: FAILED,
    NotFound: FAILED,
    Conflict: FAILED,
    PreconditionRequired: FAILED,
    TooLarge: FAILED,
    TooManyRequests: FAILED,
    Unavailable: FAILED,
}


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print ``message`` in red on stderr and return the exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def exit_code(error: DomainError, *, usage: bool = False) -> int:
    """The exit code of ``error`` by :data:`EXIT_CODES`; with ``usage``, invalid input is a usage error."""
    if usage and isinstance(error, InvalidInput):
        return USAGE
    return next((EXIT_CODES[c] for c in type(error).__mro__ if c in EXIT_CODES), FAILED)


@contextlib.contextmanager
def domain_errors(*, usage: bool = False) -> Iterator[None]:
    """Turn a domain error raised inside into ``fail(message, code)``, the code by :func:`exit_code`.

    Pass ``usage=True`` around the checks of the command's own options and arguments: a value
    refused there exits 2, as Typer's own usage errors do.
    """
    try:
        yield
    except DomainError as exc:
        raise fail(str(exc), exit_code(exc, usage=usage)) from exc


@functools.cache
def principal() -> access.Principal:
    """The principal every command acts as: an admin named ``cli:<OS user>`` in history and the audit trail."""
    return access.cli_principal()


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


def database_url(settings: Settings, *, start: bool = True) -> str:
    """The URL data commands connect with: the application role (least privilege)."""
    with domain_errors():
        return database.database_url(settings.db, start=start)


def owner_url(settings: Settings) -> str:
    """The URL set-up commands connect with: migrations, the demo."""
    with domain_errors():
        return database.owner_url(settings.db)


def run_async(settings: Settings, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run ``work`` on an autocommit connection of the application role and return its result."""
    url = database_url(settings)

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def prepare_database(settings: Settings, *, demo: bool = True, quiet: bool = False) -> str:
    """Start the embedded cluster if used, apply migrations, load the demo into an empty database."""
    from geo.core.jobs import reap
    from geo.demo import load_demo

    url = owner_url(settings)
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
    return database_url(settings, start=False)  # started for the owner's connection
