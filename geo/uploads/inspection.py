"""Opening a received file: its format by its extension, its size and content checked, then its
layer, columns and CRS; and the asset kind to load it as, in a sandbox for the service.

:func:`open_upload` reads a file only as the format its extension names (:mod:`geo.uploads.file_checks`,
:mod:`geo.uploads.gdal`) and rejects what cannot be used with
:class:`~geo.core.row_errors.UploadRejected`. :func:`inspect_upload` is what a submission runs
before it queues anything; :func:`inspect_isolated` runs it in a child process within the limits.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from geo.core.row_errors import UploadRejected
from geo.core.settings import UploadSettings
from geo.uploads import file_checks, gdal, sandbox
from geo.uploads.records import InvalidUploadRequest
from geo.uploads.source import FORMATS, ReadLimits, SourceInfo
from geo.uploads.tables import open_csv, open_ogr

log = logging.getLogger("connectivity.uploads")


def open_upload(
    path: str | Path,
    *,
    layer: str | None = None,
    kind: str | None = None,
    limits: ReadLimits | None = None,
    file_name: str | None = None,
) -> SourceInfo:
    """Inspect an uploaded file and decide how to read it.

    Parameters
    ----------
    path : the file on disk.
    layer : the layer (or sheet, or Shapefile in a zip) to read; needed when several could fit.
    kind : the asset kind, used to tell which layers could fit (lines for ducts, otherwise points
        or polygons).
    limits : size and archive limits.
    file_name : the name the user sent (for messages); defaults to the file's name.

    Returns
    -------
    SourceInfo
        Close it (or use ``with``) to remove files extracted from archives.

    Raises
    ------
    UploadRejected
        Unsupported extension, empty, too large, corrupted or truncated file, hostile archive, no
        layers, several candidate layers and none named, no coordinates, undecidable CRS,
        non-UTF-8 column names.
    """
    path = Path(path)
    limits = limits or ReadLimits()
    name = file_name or path.name
    fmt = _named_format(path, name, limits)
    gdal.harden()
    tmpdir: Path | None = None
    checks = limits.checks()
    try:
        if fmt in ("Shapefile", "KMZ"):
            tmpdir = Path(tempfile.mkdtemp(prefix="upload-"))
            file_checks.extract_zip(path, tmpdir, checks, name)
        read_path, fmt = _checked_content(path, tmpdir, fmt, name, checks)
        info = SourceInfo(
            path=path,
            file_name=name,
            format=fmt,
            layer=None,
            layers=[],
            crs="",
            crs_inferred=False,
            columns=[],
            geometry_columns=[],
            row_count=None,
            geometry_type=None,
            limits=limits,
            read_path=read_path,
            tmpdir=tmpdir,
        )
        if fmt == "CSV":
            open_csv(info)
        else:
            open_ogr(info, layer, kind)
        return info
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
            tmpdir.with_suffix(".kmz").unlink(missing_ok=True)
        raise


def _named_format(path: Path, name: str, limits: ReadLimits) -> str:
    """The format the file's extension names, once the file is known to exist within the size limit."""
    ext = "".join(PurePosixPath(name.lower()).suffixes[-1:])
    fmt = FORMATS.get(ext)
    if fmt is None:
        allowed = ", ".join(sorted(FORMATS))
        raise UploadRejected(
            f"unexpected file extension {ext or '(none)'!r}; send one of {allowed}", file=name
        )
    if not path.is_file():
        raise UploadRejected("the file does not exist", file=name)
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected("the file is empty (0 bytes)", file=name)
    if size > limits.max_bytes:
        raise UploadRejected(
            f"the file is {size / 2**20:.0f} MB, more than the limit of {limits.max_bytes / 2**20:.0f} MB",
            file=name,
        )
    return fmt


def _checked_content(
    path: Path, tmpdir: Path | None, fmt: str, name: str, checks: file_checks.Limits
) -> tuple[Path, str]:
    """The path GDAL or pandas is to open and its format, once its content (an archive's too) passed."""
    read_path = path
    if tmpdir is not None:  # an archive, extracted into tmpdir
        read_path, fmt = _find_in_archive(tmpdir, fmt, name, checks)
    if fmt == "KMZ" and tmpdir is not None:
        # Every document of the archive is checked; LIBKML then reads a KMZ made again of the
        # checked files only (not the one sent, whose other members it might open), as it
        # resolves the links between documents (GDAL's own KMZ files link a document per layer).
        for document in sorted(p for p in tmpdir.rglob("*") if p.suffix.lower() == ".kml" and p.is_file()):
            file_checks.check_content(document, fmt, name, checks, archive_root=tmpdir)
        return file_checks.rezip(tmpdir, tmpdir.parent / f"{tmpdir.name}.kmz"), fmt
    file_checks.check_content(read_path, fmt, name, checks)
    return read_path, fmt


def _find_in_archive(tmpdir: Path, fmt: str, name: str, checks: file_checks.Limits) -> tuple[Path, str]:
    files = [p for p in tmpdir.rglob("*") if p.is_file()]
    if fmt == "KMZ":  # read as a whole (a KMZ made again of its checked documents)
        if not any(p.suffix.lower() == ".kml" for p in files):
            raise UploadRejected("the KMZ holds no .kml document", file=name)
        return tmpdir, "KMZ"
    shps = sorted(p for p in files if p.suffix.lower() == ".shp")
    if not shps:
        others = sorted(p for p in files if FORMATS.get(p.suffix.lower()) not in (None, "Shapefile", "KMZ"))
        if len(others) == 1:
            return others[0], FORMATS[others[0].suffix.lower()]
        listed = ", ".join(sorted(p.name for p in files)) or "nothing"
        raise UploadRejected(f"the zip holds no Shapefile (.shp); it holds {listed}", file=name)
    if len(shps) > 1:
        # Several Shapefiles: GDAL opens the directory with one layer per .shp.
        for shp in shps:
            file_checks.check_shapefile(shp, name, checks)
        return shps[0].parent if len({s.parent for s in shps}) == 1 else shps[0], "Shapefile"
    file_checks.check_shapefile(shps[0], name, checks)
    return shps[0], "Shapefile"


def inspect_upload(
    path: Path, layer: str | None, kind: str | None, file_name: str, limits: ReadLimits
) -> str:
    """Open a received file (format, layers, CRS, coordinates) and return the asset kind to load it as.

    Whole-file problems raise :class:`UploadRejected` here, before anything is queued. Without
    ``kind``, the geometry decides: lines are ducts, polygons public buildings, points street furniture.
    """
    with open_upload(path, layer=layer, kind=kind, limits=limits, file_name=file_name) as info:
        geometry = info.geometry_type or ""
    if kind:
        return kind
    if "LineString" in geometry:
        return "duct"
    if "Polygon" in geometry:
        return "public_building"
    return "street_furniture"


def inspect_isolated(
    path: Path, layer: str | None, kind: str | None, file_name: str, settings: UploadSettings
) -> str:
    """:func:`inspect_upload` in a child process within the upload limits; a file beyond them is rejected."""
    try:
        return sandbox.run(
            inspect_upload, path, layer, kind, file_name, ReadLimits.from_settings(settings),
            memory_mb=settings.max_memory_mb, seconds=settings.inspect_seconds,
        )  # fmt: skip
    except sandbox.LimitExceeded as exc:
        raise UploadRejected(
            f"reading the file was stopped: {exc} (the limit for one upload)", file=file_name
        ) from None
    except sandbox.WorkerCrashed as exc:
        raise UploadRejected(f"the file cannot be read: {exc}", file=file_name) from None
    except (UploadRejected, InvalidUploadRequest, gdal.GdalUnavailable):  # the last: the server's fault (503)
        raise
    except Exception as exc:  # whatever else a reader raised on this file: the file's fault, not a 500
        log.error("reading %s failed", file_name, exc_info=exc)
        raise UploadRejected(f"the file cannot be read ({type(exc).__name__})", file=file_name) from None
