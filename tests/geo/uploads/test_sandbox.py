"""The sandbox: a child process stopped at its memory or time limit, leaving nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import sandbox_work

from geo.uploads import sandbox


def scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("connectivity-job-*")}


def test_a_child_past_its_time_limit_is_stopped_and_its_files_removed():
    before = scratch_folders()
    with pytest.raises(sandbox.LimitExceeded, match="longer than 1 s") as err:
        sandbox.run(sandbox_work.leave_files_then_hang, 30, memory_mb=2000, seconds=1)
    assert err.value.limit == "time"
    assert scratch_folders() <= before  # the child's extracted files went with its folder


def test_a_child_past_its_memory_limit_is_stopped():
    with pytest.raises(sandbox.LimitExceeded, match="more than 400 MB") as err:
        sandbox.run(sandbox_work.allocate, 1200, memory_mb=400, seconds=30)
    assert err.value.limit == "memory"
    assert sandbox.run(sandbox_work.allocate, 10, memory_mb=1500, seconds=30) == 10 * 2**20


def test_gdal_missing_on_the_server_is_its_fault_not_the_files(monkeypatch, tmp_path):
    """A 503 (api/errors.py), not the 422 "the file cannot be read" of a reader's error."""
    from geo.core.settings import UploadSettings
    from geo.uploads import gdal, inspection

    def unavailable(*args, **kwargs):
        raise gdal.GdalUnavailable("pyogrio's GDAL library was not found")

    monkeypatch.setattr(sandbox, "run", unavailable)
    with pytest.raises(gdal.GdalUnavailable):
        inspection.inspect_isolated(tmp_path / "x.gpkg", None, None, "x.gpkg", UploadSettings())
