"""What can go wrong with a borough's upload: the whole file (:class:`UploadRejected`) or one row (:class:`RowError`).

A rejected file is a 4xx answer (API) or a non-zero exit (CLI) carrying :attr:`UploadRejected.message`;
row errors are listed in the upload report and the ``errors.csv``/``errors.geojson`` downloads, every
row-error CSV written by :func:`errors_csv` with the columns :data:`ERROR_COLUMNS`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geo.core.csv_out import write_records
from geo.core.errors import InvalidInput

#: The columns of a row error, in the order every download (CSV, GeoJSON properties) gives them.
ERROR_COLUMNS = ("row", "source_id", "column", "value", "message")

# An absolute path of two or more parts (/srv/x/y.gpkg), not a URL's path (no ":" or "/" before it).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s'\"/:]+/)+[^\s'\":,;)]*")


def scrub_roots(text: str, roots: Iterable[str | os.PathLike[str]]) -> str:
    """``text`` with every path below one of ``roots`` (server directories) replaced by ``<path>``."""
    for root in {str(r) for r in roots if str(r) not in ("", "/")}:
        text = re.sub(re.escape(root) + r"[^\s'\"]*", "<path>", text)
    return text


def scrub_paths(text: str, paths: Iterable[str | os.PathLike[str]], name: str) -> str:
    """``text`` (a message from GDAL, pandas...) without server paths: ``paths`` become ``name``,
    any other absolute path ``<path>``."""
    for path in sorted({str(p) for p in paths}, key=len, reverse=True):
        text = text.replace(path, name).replace(str(Path(path).resolve()), name)
    return _ABSOLUTE_PATH.sub("<path>", text)


class UploadRejected(InvalidInput):
    """The whole file cannot be used: unsupported, corrupt, empty, ambiguous, hostile or of undecidable CRS.

    ``str(error)`` is a complete message naming the file and, where they apply, the layer, column and
    value; the same pieces are kept as attributes for structured answers (``problem+json``).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        layer: str | None = None,
        column: str | None = None,
        value: Any = None,
        candidates: list[str] | None = None,
    ) -> None:
        prefix = f"{file}: " if file else ""
        if layer:
            prefix += f"layer {layer!r}: "
        super().__init__(prefix + message)
        self.message = prefix + message
        self.file = file
        self.layer = layer
        self.column = column
        self.value = None if value is None else str(value)
        self.candidates = list(candidates or [])
        self._message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments do not survive the default pickling of exceptions (a job's process
        # sends its rejection back to the service).
        return (_rejected, (self._message, self.file, self.layer, self.column, self.value, self.candidates))

    @property
    def problem_extra(self) -> dict[str, Any]:
        """The pieces a problem document adds to its detail: file, layer, column, value, candidate layers."""
        pieces = {"file": self.file, "layer": self.layer, "column": self.column, "value": self.value}
        extra: dict[str, Any] = {k: v for k, v in pieces.items() if v is not None}
        if self.candidates:
            extra["candidates"] = self.candidates
        return extra

    def to_dict(self) -> dict[str, Any]:
        """The error as plain values, for a JSON answer."""
        return {
            "message": self.message,
            "file": self.file,
            "layer": self.layer,
            "column": self.column,
            "value": self.value,
            "candidates": self.candidates,
        }


def _rejected(
    message: str, file: str | None, layer: str | None, column: str | None, value: Any, candidates: list[str]
) -> UploadRejected:
    return UploadRejected(message, file=file, layer=layer, column=column, value=value, candidates=candidates)


@dataclass
class RowError:
    """One problem with one row (feature) of an upload.

    ``row`` is 1-based, as the user sees it: the feature number in a GIS file, the data row number in a
    CSV or spreadsheet (the header is not counted). ``geometry`` is the row's geometry as WKB in
    EPSG:27700 when there is one, so errors can be drawn.
    """

    row: int
    source_id: str | None
    column: str | None
    value: str | None
    message: str
    geometry: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The error as plain values (geometry left out), for CSV or JSON."""
        out = asdict(self)
        out.pop("geometry")
        return out


def errors_csv(errors: Iterable[RowError | dict[str, Any]]) -> str:
    """Row errors as CSV, one line per problem with the columns of :data:`ERROR_COLUMNS`.

    ``errors`` are :class:`RowError` objects or records with those keys (rows read back from a table).
    """
    return write_records(ERROR_COLUMNS, (e.to_dict() if isinstance(e, RowError) else e for e in errors))
