"""``GET /exports/ofds``: the ducts and the assets they join as an Open Fibre Data Standard network.

The export is written into a temporary file (in memory up to :data:`SPOOL_BYTES`, then on disk)
on the request's pooled connection, which goes back to the pool before the file is sent.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import IO, Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Lazy, LazyReader
from api.params import BBOX_HELP, CRS_HELP
from api.schemas import problems
from geo import exports

router = APIRouter(tags=["Open Fibre Data Standard"])
#: Bytes of an export kept in memory before its temporary file moves to disk.
SPOOL_BYTES = 8 * 2**20
#: Bytes sent at a time.
CHUNK_BYTES = 2**20
CONTENT = {
    "application/json": {"schema": {"type": "object"}},
    "application/geo+json": {"schema": {"type": "object"}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
}


async def _chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
    finally:
        file.close()


@router.get(
    "/exports/ofds",
    summary="The ducts as an Open Fibre Data Standard network (JSON package or GeoJSON)",
    response_class=Response,
    responses={
        200: {
            "content": CONTENT,
            "description": "format=json: the OFDS 0.4 network package (application/json); format=geojson: "
            "nodes.geojson or spans.geojson (part=), or a zip of both (application/zip)",
        },
        **problems(
            (400, "A parameter cannot be used: `errors` say which (query.borough, query.bbox…)."),
            401,
            (413, "More spans match than one export may hold (CONNECTIVITY_OFDS_MAX_SPANS): narrow it."),
        ),
    },
)
async def ofds(
    request: Request,
    lazy: Lazy,
    reader: LazyReader,
    borough: Annotated[
        str | None, Query(description="GSS codes, comma-separated: the ducts of these boroughs")
    ] = None,
    bbox: Annotated[str | None, Query(description=f"The ducts crossing this box: {BBOX_HELP}")] = None,
    bbox_crs: Annotated[
        str | None, Query(alias="bbox-crs", description=f"CRS84 or EPSG:27700. {CRS_HELP}")
    ] = None,
    format: Annotated[
        Literal["json", "geojson"],
        Query(description="json: the OFDS network package; geojson: the GeoJSON publication format"),
    ] = "json",
    part: Annotated[
        Literal["nodes", "spans"] | None,
        Query(
            description="With format=geojson: only nodes.geojson or spans.geojson (without: a zip of both)"
        ),
    ] = None,
) -> Response:
    """The ducts in scope as OFDS spans, and the cabinets, chambers, buildings and junctions their ends meet as nodes.

    Without ``borough`` or ``bbox``, all of London. Ids are derived from ours, so two exports of
    the same data are equal; every caller gets the same file (public properties only).
    ``data/ofds-mapping.md`` describes the mapping.
    """
    scope = exports.parse_scope(borough, bbox, bbox_crs)
    filename, media_type = exports.output_file(format, part)
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed once sent
    try:
        await exports.export_ofds(await lazy.get(), scope, request.app.state.settings.ofds, out, format, part)
    except BaseException:
        out.close()
        raise
    await lazy.release()  # the pooled connection is not needed while the file is sent
    size = out.tell()
    out.seek(0)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(size)}
    return StreamingResponse(_chunks(out), media_type=media_type, headers=headers)
