"""Functions the sandbox tests run in a child process (importable by the fork server: tests/ is on the path)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def leave_files_then_hang(seconds: float) -> None:
    """Write into a temporary folder, as an archive's extraction does, then outlive the time limit."""
    folder = Path(tempfile.mkdtemp(prefix="extracted-"))
    (folder / "doc.kml").write_bytes(b"x" * 2**20)
    time.sleep(seconds)


def allocate(megabytes: int) -> int:
    """Hold ``megabytes`` of memory for a while."""
    block = bytearray(megabytes * 2**20)
    time.sleep(5)
    return len(block)
