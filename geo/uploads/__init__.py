"""Asset file imports: a borough's file checked, read, mapped to the asset model, validated and applied.

The way in is :func:`submit` (check the request, inspect the file, register the upload), used by
the API and the command line alike; the upload's job is :func:`process_upload`. By concern:
``file_checks`` and ``gdal`` (what a file must be before a parser sees it), ``inspection``
(opening a file, the kind to load it as), ``source``, ``tables``, ``crs`` and ``batches`` (reading
it), ``names``, ``conversion`` and ``mapping`` (to the model), ``validation``, ``staging`` (read, map
and validate together), ``unchanged``, ``apply`` and ``process`` (the database half), ``records``
and ``row_errors`` (the ``uploads`` and ``upload_errors`` tables), ``row_map`` (the rows kept for an
upload's map, read back as GeoJSON), ``sandbox`` (the limits).

The names below are imported when first used, so that importing this package stays cheap: the
readers load pandas, pyogrio and GDAL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geo.core.lazy import lazy_exports

if TYPE_CHECKING:
    from geo.uploads.batches import SourceBatch, iter_batches
    from geo.uploads.gdal import GdalUnavailable
    from geo.uploads.inspection import inspect_isolated, inspect_upload, open_upload
    from geo.uploads.mapping import MAX_MAPPING_BYTES, Mapping, build_mapping, load_mapping_file
    from geo.uploads.process import process_upload, run_upload_job
    from geo.uploads.records import (
        InvalidUploadRequest,
        UploadNotFound,
        UploadRequest,
        UploadStateError,
        check_fields,
        get_upload,
        get_upload_sync,
        list_uploads,
        mark_for_apply,
        register_upload,
    )
    from geo.uploads.row_errors import upload_errors, upload_errors_sync
    from geo.uploads.row_map import RowMap, row_map
    from geo.uploads.sandbox import LimitExceeded
    from geo.uploads.source import FORMATS, ReadLimits, SourceInfo
    from geo.uploads.staging import PreparedUpload, UploadReport, prepare_upload
    from geo.uploads.submission import check_request, submit
    from geo.uploads.validation import BatchValidator, output_schema

#: Public name -> the module of this package that defines it.
_HOMES = {
    "FORMATS": "source",
    "MAX_MAPPING_BYTES": "mapping",
    "BatchValidator": "validation",
    "GdalUnavailable": "gdal",
    "InvalidUploadRequest": "records",
    "LimitExceeded": "sandbox",
    "Mapping": "mapping",
    "PreparedUpload": "staging",
    "ReadLimits": "source",
    "RowMap": "row_map",
    "SourceBatch": "batches",
    "SourceInfo": "source",
    "UploadNotFound": "records",
    "UploadReport": "staging",
    "UploadRequest": "records",
    "UploadStateError": "records",
    "build_mapping": "mapping",
    "check_fields": "records",
    "check_request": "submission",
    "get_upload": "records",
    "get_upload_sync": "records",
    "inspect_isolated": "inspection",
    "inspect_upload": "inspection",
    "iter_batches": "batches",
    "list_uploads": "records",
    "load_mapping_file": "mapping",
    "mark_for_apply": "records",
    "open_upload": "inspection",
    "output_schema": "validation",
    "prepare_upload": "staging",
    "process_upload": "process",
    "register_upload": "records",
    "row_map": "row_map",
    "run_upload_job": "process",
    "submit": "submission",
    "upload_errors": "row_errors",
    "upload_errors_sync": "row_errors",
}

__all__ = [
    "FORMATS",
    "MAX_MAPPING_BYTES",
    "BatchValidator",
    "GdalUnavailable",
    "InvalidUploadRequest",
    "LimitExceeded",
    "Mapping",
    "PreparedUpload",
    "ReadLimits",
    "RowMap",
    "SourceBatch",
    "SourceInfo",
    "UploadNotFound",
    "UploadReport",
    "UploadRequest",
    "UploadStateError",
    "build_mapping",
    "check_fields",
    "check_request",
    "get_upload",
    "get_upload_sync",
    "inspect_isolated",
    "inspect_upload",
    "iter_batches",
    "list_uploads",
    "load_mapping_file",
    "mark_for_apply",
    "open_upload",
    "output_schema",
    "prepare_upload",
    "process_upload",
    "register_upload",
    "row_map",
    "run_upload_job",
    "submit",
    "upload_errors",
    "upload_errors_sync",
]

__getattr__ = lazy_exports(__name__, _HOMES)
