"""Preparing a borough's upload for the database: read, map and validate, without touching the database.

:func:`prepare_upload` ties :mod:`geo.uploads.inspection`, :mod:`geo.uploads.batches`,
:mod:`geo.uploads.mapping` and :mod:`geo.uploads.validation` together. The apply step (staging
``COPY`` and upsert, :mod:`geo.uploads.apply`) consumes :meth:`PreparedUpload.batches`, whose Arrow
tables have the schema :func:`geo.uploads.validation.output_schema` gives, and records
:attr:`PreparedUpload.report` with the upload.

Example::

    with prepare_upload("lamps.zip", "E09000007", "street_furniture") as upload:
        for table in upload.batches():
            copy_into_staging(table)          # the database half
        if upload.report.error_count:
            ...
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from geo.core.progress import Progress, silent
from geo.core.row_errors import RowError
from geo.uploads.batches import iter_batches
from geo.uploads.inspection import open_upload
from geo.uploads.mapping import Mapping, build_mapping
from geo.uploads.source import ReadLimits, SourceInfo
from geo.uploads.validation import BatchValidator, output_schema


@dataclass
class UploadReport:
    """What the upload contained and what validation found; complete once every batch is consumed.

    ``errors`` keeps at most ``max_errors`` errors (``error_count`` counts them all); ``repairs``
    lists geometries fixed with ``make_valid``.
    """

    source: dict[str, Any]
    mapping: dict[str, Any]
    borough_code: str
    kind: str
    tolerance_m: float
    rows_read: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    repairs: list[RowError] = field(default_factory=list)
    complete: bool = False

    @property
    def notes(self) -> list[str]:
        """Everything inferred or fixed: CRS, axis order, encoding, Z/M, mapping defaults."""
        return list(self.source.get("notes", [])) + list(self.mapping.get("notes", []))

    def to_dict(self) -> dict[str, Any]:
        """The report as plain values (errors without geometry)."""
        return {
            "source": self.source,
            "mapping": self.mapping,
            "borough_code": self.borough_code,
            "kind": self.kind,
            "tolerance_m": self.tolerance_m,
            "notes": self.notes,
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "error_count": self.error_count,
            "errors": [e.to_dict() for e in self.errors],
            "repairs": [e.to_dict() for e in self.repairs],
            "complete": self.complete,
        }


@dataclass
class PreparedUpload:
    """An opened, mapped upload ready to stream validated batches; use it as a context manager."""

    source: SourceInfo
    mapping: Mapping
    validator: BatchValidator
    report: UploadReport
    progress: Progress = silent
    batch_size: int | None = None
    max_errors: int = 10_000

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of every batch."""
        return output_schema(self.mapping.kind)

    def batches(self) -> Iterator[pa.Table]:
        """Validated rows, batch by batch (only valid rows; errors go to :attr:`report`).

        Raises :class:`~geo.core.row_errors.UploadRejected` if the file turns out to be truncated or
        corrupt part-way through.
        """
        report = self.report
        total = self.source.row_count or 0
        self.progress("validate", 0, total)
        for batch in iter_batches(self.source, self.batch_size):
            mapped = self.mapping.apply(batch.attributes)
            geometry = None if batch.points is not None else batch.geometry
            checked = self.validator.validate(batch.rows, geometry, mapped, batch.failed, batch.points)
            reader_errors = batch.errors
            if reader_errors:
                sid = mapped.values["source_id"]
                first = int(batch.rows[0])
                for e in reader_errors:
                    value = sid.iloc[e.row - first]
                    e.source_id = None if value is None or value is _NA else str(value)
            errors = sorted(reader_errors + checked.errors, key=lambda e: e.row)
            report.rows_read += len(batch)
            report.rows_valid += checked.table.num_rows
            report.rows_invalid += len(batch) - checked.table.num_rows
            report.error_count += len(errors)
            room = self.max_errors - len(report.errors)
            report.errors.extend(errors[: max(room, 0)])
            report.repairs.extend(checked.repairs[: max(self.max_errors - len(report.repairs), 0)])
            self.progress("validate", report.rows_read, max(total, report.rows_read))
            yield checked.table
        report.source = self.source.to_dict()  # notes added while reading (Z/M dropped...)
        report.complete = True

    def __enter__(self) -> PreparedUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.close()


_NA: Any = __import__("pandas").NA

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """``items``, produced by a background thread up to ``depth`` ahead of the consumer.

    Reading and validating the next batch (pyogrio, numpy, pyarrow: mostly outside the GIL)
    then overlaps with the database taking the current one. An exception of the producer is
    raised in the consumer. Close the generator (``contextlib.closing``) before closing what
    ``items`` reads from: closing stops and joins the thread.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((False, exc))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = handoff.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def prepare_upload(
    path: str | Path,
    borough_code: str,
    kind: str,
    *,
    layer: str | None = None,
    mapping: dict[str, Any] | str | Path | None = None,
    tolerance_m: float = 50.0,
    limits: ReadLimits | None = None,
    progress: Progress = silent,
    file_name: str | None = None,
    batch_size: int | None = None,
    max_errors: int = 10_000,
) -> PreparedUpload:
    """Open, map and set up validation for an upload; stream it with :meth:`PreparedUpload.batches`.

    Parameters
    ----------
    path : the uploaded file.
    borough_code : GSS code of the uploading borough (rows must lie inside it).
    kind : ``street_furniture``, ``public_building`` or ``duct``.
    layer : layer, sheet or Shapefile to read when the file has several.
    mapping : overrides of the automatic column/value mapping (dict, or a YAML/JSON file).
    tolerance_m : how far outside the borough boundary an asset may lie.
    limits : file size and archive limits.
    progress : ``progress(step, done, total)`` callback.
    file_name : the name the user sent, for messages.
    batch_size : rows per batch (default from ``limits``).
    max_errors : errors kept in the report (all are counted).

    Returns
    -------
    PreparedUpload
        Whole-file problems have already raised :class:`~geo.core.row_errors.UploadRejected`.

    Notes
    -----
    Memory is bounded by a few batches (see :func:`read_ahead`) plus the set of ``source_id``
    values seen.
    """
    source = open_upload(path, layer=layer, kind=kind, limits=limits, file_name=file_name)
    try:
        progress("open", 1, 1)
        chosen = build_mapping(source.columns, kind, mapping, geometry_columns=source.geometry_columns)
        validator = BatchValidator(borough_code, chosen, tolerance_m=tolerance_m)
        report = UploadReport(
            source=source.to_dict(),
            mapping=chosen.report(),
            borough_code=validator.borough_code,
            kind=kind,
            tolerance_m=tolerance_m,
        )
    except BaseException:
        source.close()
        raise
    return PreparedUpload(source, chosen, validator, report, progress, batch_size, max_errors)
