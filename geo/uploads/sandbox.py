"""Work on files from outside in a child process, within a memory and a time limit.

The content checks of :mod:`geo.uploads.file_checks` refuse what is known to be dangerous; this is
the backstop for what is not: a file that makes a parser (GDAL, pandas) allocate without
bound, run for ever, or crash. :func:`run` calls a function in a child process forked from a
small server process (multiprocessing's ``forkserver``, which imports the readers once), and
watches it: past ``memory_mb`` of resident memory or ``seconds`` of time it is killed, and
:class:`LimitExceeded` says which limit it reached. A crash (a signal) is
:class:`WorkerCrashed`. Whatever the child had written to the database in an open
transaction is rolled back by PostgreSQL when its connection drops, so nothing is half-written.

The fork server dies with the service and the child with the fork server (``PR_SET_PDEATHSIG``,
:mod:`geo.uploads.sandbox_server`): a service killed with SIGKILL leaves no job running on its own.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from geo.core.errors import TooLarge

T = TypeVar("T")
POLL_S = 0.05
PRELOAD = ["geo.uploads.sandbox_server", "geo.uploads.inspection", "geo.uploads.process"]
_PAGE = os.sysconf("SC_PAGE_SIZE")
_context_lock = threading.Lock()
_context: Any = None


class LimitExceeded(TooLarge):
    """The work needed more memory or time than allowed, and was stopped."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class WorkerCrashed(RuntimeError):
    """The child process ended without an answer (a signal, or an exit from native code)."""


def _ctx() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _context = context
        return _context


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's kill still reaches it
        pass


def _child(
    pipe: Connection, scratch: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _die_with_parent()
    # Temporary files (extracted archives) go to the parent's folder, which it removes whatever
    # happens here: a child killed at its limit cannot clean up after itself.
    tempfile.tempdir = scratch
    os.environ["CPL_TMPDIR"] = scratch
    try:
        result: tuple[str, Any] = ("ok", func(*args, **kwargs))
    except BaseException as exc:  # sent to the parent, which raises it
        result = ("error", exc)
    try:
        pipe.send(result)
    except Exception as exc:  # an unpicklable result or error
        pipe.send(("error", RuntimeError(f"{type(result[1]).__name__}: {result[1]}; ({exc})")))
    finally:
        pipe.close()


def resident_mb(pid: int) -> float:
    """Resident memory of a process, in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def run(func: Callable[..., T], *args: Any, memory_mb: float, seconds: float, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in a child process; its result, or its exception raised here.

    Raises :class:`LimitExceeded` when the child passes ``memory_mb`` of resident memory or
    runs longer than ``seconds``, :class:`WorkerCrashed` when it dies without an answer.
    ``func``, its arguments and its result must pickle.
    """
    receive, send = _ctx().Pipe(duplex=False)
    scratch = tempfile.mkdtemp(prefix="connectivity-job-")
    process = _ctx().Process(target=_child, args=(send, scratch, func, args, kwargs), daemon=True)
    process.start()
    send.close()
    started = time.monotonic()
    peak = 0.0
    try:
        while True:
            if receive.poll(POLL_S):
                try:
                    status, value = receive.recv()
                except EOFError:
                    break
                process.join(5)
                if status == "error":
                    raise value
                return value  # type: ignore[no-any-return]
            if not process.is_alive():
                break
            peak = max(peak, resident_mb(process.pid or 0))
            if peak > memory_mb:
                raise LimitExceeded(f"it needed more than {memory_mb:,.0f} MB of memory", "memory")
            if time.monotonic() - started > seconds:
                raise LimitExceeded(f"it took longer than {seconds:,.0f} s", "time")
        process.join(5)
        code = process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        raise WorkerCrashed(f"the worker process stopped without an answer ({how})")
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)
        receive.close()
        shutil.rmtree(scratch, ignore_errors=True)
