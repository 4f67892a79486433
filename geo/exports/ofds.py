"""The Open Fibre Data Standard (OFDS 0.4) export: the ducts as spans, the assets their ends meet as nodes.

Two outputs of one network, as the standard publishes them:

- the **JSON network package** (``{"networks": [network]}``, the nodes and spans embedded, the
  first link the 0.4 network schema, a CRS84 ``crs``);
- the **GeoJSON publication format**: ``nodes.geojson`` and ``spans.geojson`` (one of them, or a
  zip of both), the features libcoveofds's ``JSONToGeoJSONConverter`` makes of the package (the
  properties are the node or span without its geometry, plus ``network`` (the network without
  its nodes, spans, phases and organisations) and ``featureType``; a span's ``start`` and ``end``
  are the nodes themselves).

How the network is made (``data/ofds-mapping.md`` has the field by field mapping):

- **Spans**: every part of every duct in scope (borough codes, a bbox, or both; all of London
  without either), one span per LineString part. More than ``max_spans`` is :class:`TooManySpans`.
- **Nodes**: each duct end, in EPSG:27700, meets the asset within ``snap_m`` metres: a street
  cabinet or access chamber first, else the nearest other asset (points or polygons, any
  borough: a Camden duct may end at an Islington cabinet), the smaller id on a tie. Ends that meet
  no asset are clustered (``ST_ClusterDBSCAN`` with ``snap_m``), so ducts meeting end to end share
  one generated junction node (no type or status: the standard's convention for a junction).
  Only assets that a span starts or ends at are nodes (the validator flags unused nodes). A duct
  ending on the middle of another is not split.
- **Ids** are uuid5 of the network id (a setting, the same for every export) and our ids:
  ``asset/<id>`` for an asset node, ``duct/<id>/<part>`` for a span, ``duct/<id>/<part>/<side>``
  of a junction's first end (by duct id, part, side), ``organisation/<owner>``. The publication
  date is that of the newest ``valid_from`` exported, and every list is in a fixed order, so two
  exports of the same data are byte for byte equal.
- **Redaction**: only columns of :data:`geo.layers.collections.ASSET_PROPERTIES` are read (never
  ``extra`` or ``changed_by``), so the export is the same for every caller.

Everything runs in one transaction on the caller's connection: three temporary tables (dropped at
the end), then the nodes and spans are streamed (``cursor.stream``) and written as they come into
a binary file, so memory holds a batch of rows, not the network. Time is bounded by the
connection's statement timeout per statement, and size by ``max_spans``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from geo.core.crs import WGS84, Crs, parse_crs
from geo.core.errors import InvalidParameter, TooLarge
from geo.core.progress import Progress, silent
from geo.core.query import BOX_SQL, Bbox, parse_bbox
from geo.core.settings import OfdsSettings
from geo.layers.collections import ASSET_PROPERTIES
from geo.reference.boroughs import UnknownBorough, check_code
from geo.reference.model import load_model

SCHEMA_URL = "https://standard.ofds.info/en/0__4__0/network-schema.json"
CRS = {"name": "urn:ogc:def:crs:OGC::CRS84", "uri": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
#: NUAR operational status -> OFDS nodeStatus / spanStatus (``unknown``: no status).
STATUSES = {
    "proposed": "proposed",
    "under_construction": "underConstruction",
    "installed": "inactive",
    "commissioned": "inactive",
    "in_service": "operational",
    **dict.fromkeys(
        (
            "out_of_commission",
            "unfit_for_service",
            "pending_removal",
            "removed",
            "decommissioned",
            "abandoned",
        ),
        "decommissioned",
    ),
}
#: Kind or street furniture subtype -> nodeSupportingInfrastructure (others: no type).
NODE_INFRASTRUCTURE = {
    "public_building": "building",
    "street_cabinet": "cabinet",
    "access_chamber": "cableWell",
    **dict.fromkeys(("lamp_post", "cctv_column", "traffic_signal", "sign_post", "bus_stop"), "pole"),
}
#: Duct subtype -> spanSupportingInfrastructure (a trough or other: no type).
SPAN_INFRASTRUCTURE = {"duct": "duct", "sub_duct": "duct"}
#: Street furniture a duct end meets first, whatever else is nearer.
SNAP_FIRST = ["street_cabinet", "access_chamber"]
PROVIDER = "physicalInfrastructureProvider"
#: Rows fetched from the server at a time while streaming.
BATCH_ROWS = 1000

# What is read of an asset: public properties only, so every role gets the same export.
_SPAN_COLUMNS = (
    "subtype", "source_id", "name", "owner", "status", "duct_diameter_mm", "duct_spare_capacity_pct", "valid_from",
)  # fmt: skip
_NODE_COLUMNS = ("kind", "subtype", "source_id", "name", "owner", "status", "power_available", "valid_from")
if not set(_SPAN_COLUMNS + _NODE_COLUMNS) <= set(ASSET_PROPERTIES):  # pragma: no cover - a guard for edits
    raise RuntimeError("the OFDS export may read only public asset properties (ASSET_PROPERTIES)")

Format = Literal["json", "geojson"]
Part = Literal["nodes", "spans"]


class InvalidScope(InvalidParameter):
    """A parameter of an export cannot be used (400); ``errors`` say where (``query.borough``…)."""

    def __init__(self, where: str, message: str, value: Any) -> None:
        super().__init__(f"{where.removeprefix('query.')}: {message}")
        shown = value[:200] if isinstance(value, str) else value
        self.problem_extra = {"errors": [{"where": where, "message": message, "value": shown}]}


class TooManySpans(TooLarge):
    """More duct parts match than one export may hold (413)."""


@dataclass(frozen=True)
class Scope:
    """Which ducts an export holds: those of some boroughs, crossing a bbox, or both (none: all)."""

    boroughs: tuple[str, ...] = ()
    bbox: Bbox | None = None


@dataclass(frozen=True)
class Export:
    """What an export wrote."""

    nodes: int
    spans: int
    organisations: int
    publication_date: str | None


def parse_scope(borough: str | None, bbox: str | None, bbox_crs: str | None) -> Scope:
    """The ``borough`` (GSS codes, comma-separated), ``bbox`` and ``bbox-crs`` of an export, checked.

    A bad value is :class:`InvalidScope` naming the parameter (``query.borough``…) and the value.
    """
    codes = set()
    for code in (borough or "").split(","):
        if code.strip():
            try:
                codes.add(check_code(code))
            except UnknownBorough as exc:
                raise InvalidScope("query.borough", str(exc), borough) from None
    try:
        crs = parse_crs(bbox_crs, "bbox-crs") or Crs(WGS84)
    except InvalidParameter as exc:
        raise InvalidScope("query.bbox-crs", str(exc).partition(": ")[2], bbox_crs) from None
    try:
        box = parse_bbox(bbox, crs.srid, crs.lat_first)
    except InvalidParameter as exc:
        raise InvalidScope("query.bbox", str(exc).partition(": ")[2], bbox) from None
    return Scope(tuple(sorted(codes)), None if box is None else Bbox(box, crs.srid))


def output_file(fmt: Format, part: Part | None) -> tuple[str, str]:
    """The file name and media type of an export in ``fmt`` (and ``part`` of the GeoJSON)."""
    if fmt == "json":
        if part is not None:
            raise InvalidScope("query.part", "nodes or spans are GeoJSON files: give format=geojson", part)
        return "ofds-network.json", "application/json"
    if part is None:
        return "ofds-geojson.zip", "application/zip"
    return f"{part}.geojson", "application/geo+json"


# -- the network, in temporary tables -------------------------------------------------------------------


def _columns(alias: str, names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)


def _spans_statement(scope: Scope) -> sql.Composed:
    conditions: list[sql.Composable] = [sql.SQL("a.kind = 'duct' AND a.retired_at IS NULL")]
    if scope.boroughs:
        conditions.append(sql.SQL("a.borough_code = ANY(%(boroughs)s)"))
    box, source = sql.SQL(""), sql.SQL("assets a")
    if scope.bbox is not None:
        box, source = sql.SQL("WITH " + BOX_SQL), sql.SQL("assets a CROSS JOIN b")
        conditions.append(sql.SQL("a.geom && b.box AND ST_Intersects(a.geom, b.box)"))
    # LIMIT one more than the cap: enough to know the cap is passed, never the whole of London.
    return sql.SQL(
        """CREATE TEMP TABLE ofds_spans ON COMMIT DROP AS {box}
SELECT a.id, coalesce(d.path[1], 1) AS part, ST_NumGeometries(a.geom) AS parts, {columns},
       ST_Force2D(d.geom) AS geom
FROM {source} CROSS JOIN LATERAL ST_Dump(a.geom) AS d
WHERE {conditions}
ORDER BY a.id, part
LIMIT %(limit)s"""
    ).format(
        box=box,
        source=source,
        columns=_columns("a", _SPAN_COLUMNS),
        conditions=sql.SQL(" AND ").join(conditions),
    )


# Each end meets a cabinet or chamber within snap_m first, else the nearest other asset (GiST on
# assets.geom through ST_DWithin); ends that meet none are clustered so ducts meeting end to end
# share a node, named after the cluster's first end.
_ENDS = """CREATE TEMP TABLE ofds_ends ON COMMIT DROP AS
WITH ends AS (
    SELECT s.id, s.part, e.side, e.pt, n.asset_id
    FROM ofds_spans s
    CROSS JOIN LATERAL (VALUES ('start', ST_StartPoint(s.geom)), ('end', ST_EndPoint(s.geom))) AS e (side, pt)
    LEFT JOIN LATERAL (
        SELECT a.id AS asset_id FROM assets a
        WHERE a.kind <> 'duct' AND a.retired_at IS NULL AND ST_DWithin(a.geom, e.pt, %(snap)s)
        ORDER BY a.subtype = ANY(%(first)s) DESC, ST_Distance(a.geom, e.pt), a.id
        LIMIT 1
    ) AS n ON true
), clustered AS (
    SELECT ends.*, ST_ClusterDBSCAN(pt, %(snap)s, 1) OVER (PARTITION BY asset_id IS NULL) AS cluster
    FROM ends
)
SELECT id, part, side, pt, asset_id,
       CASE WHEN asset_id IS NOT NULL THEN 'asset/' || asset_id
            ELSE first_value('duct/' || id || '/' || part || '/' || side)
                 OVER (PARTITION BY asset_id IS NULL, cluster ORDER BY id, part, side)
       END AS node_key
FROM clustered"""

# One row per node: an asset (a point on its surface) or a junction (its first end).
_NODES = sql.SQL(
    """CREATE TEMP TABLE ofds_nodes ON COMMIT DROP AS
SELECT DISTINCT ON (e.node_key) e.node_key AS key, e.asset_id, {columns},
       ST_AsGeoJSON(ST_Transform(coalesce(ST_PointOnSurface(ST_Force2D(a.geom)), e.pt), 4326), 7, 0)::json
           AS location,
       CASE WHEN a.id IS NULL THEN round(ST_X(e.pt))::bigint END AS easting,
       CASE WHEN a.id IS NULL THEN round(ST_Y(e.pt))::bigint END AS northing
FROM ofds_ends e LEFT JOIN assets a ON a.id = e.asset_id
ORDER BY e.node_key, e.id, e.part, e.side"""
).format(columns=_columns("a", _NODE_COLUMNS))

_META = """SELECT (SELECT count(*) FROM ofds_spans) AS spans, (SELECT count(*) FROM ofds_nodes) AS nodes,
       (SELECT max(v) FROM (SELECT valid_from FROM ofds_spans UNION ALL SELECT valid_from FROM ofds_nodes) AS t (v))
           AS newest"""
_OWNERS = """SELECT o FROM (SELECT nullif(btrim(owner), '') FROM ofds_spans
                      UNION SELECT nullif(btrim(owner), '') FROM ofds_nodes) AS t (o)
WHERE o IS NOT NULL ORDER BY o COLLATE "C\""""
_NODE_ROWS = 'SELECT * FROM ofds_nodes ORDER BY key COLLATE "C"'


def _span_rows(with_nodes: bool) -> sql.Composed:
    nodes = sql.SQL(
        """, to_json(ns) AS start_node, to_json(ne) AS end_node
FROM ofds_spans s
JOIN ofds_ends es ON (es.id, es.part, es.side) = (s.id, s.part, 'start')
JOIN ofds_ends ee ON (ee.id, ee.part, ee.side) = (s.id, s.part, 'end')
JOIN ofds_nodes ns ON ns.key = es.node_key JOIN ofds_nodes ne ON ne.key = ee.node_key"""
        if with_nodes
        else """
FROM ofds_spans s
JOIN ofds_ends es ON (es.id, es.part, es.side) = (s.id, s.part, 'start')
JOIN ofds_ends ee ON (ee.id, ee.part, ee.side) = (s.id, s.part, 'end')"""
    )
    return sql.SQL(
        """SELECT s.id, s.part, s.parts, {columns},
       ST_AsGeoJSON(ST_Transform(s.geom, 4326), 7, 0)::json AS route, es.node_key AS start_key,
       ee.node_key AS end_key{nodes}
ORDER BY s.id, s.part"""
    ).format(columns=_columns("s", _SPAN_COLUMNS), nodes=nodes)


@dataclass
class _Network:
    """The network built in the temporary tables: its own fields and counts."""

    namespace: uuid.UUID
    meta: dict[str, Any]
    organisations: list[dict[str, Any]]
    nodes: int
    spans: int


async def _build(conn: psycopg.AsyncConnection[Any], scope: Scope, settings: OfdsSettings) -> _Network:
    """Fill the temporary tables with the network of ``scope`` (inside the caller's transaction)."""
    params: dict[str, Any] = {"limit": settings.max_spans + 1, "boroughs": list(scope.boroughs)}
    if scope.bbox is not None:
        params |= scope.bbox.params()
    await conn.execute(_spans_statement(scope), params)
    cur = await conn.execute("SELECT count(*) FROM ofds_spans")
    row = await cur.fetchone()
    if row is not None and row[0] > settings.max_spans:
        raise TooManySpans(
            f"more than {settings.max_spans:,} spans (duct parts) match; narrow the export with borough "
            "or bbox (the limit is CONNECTIVITY_OFDS_MAX_SPANS)"
        )
    await conn.execute(_ENDS, {"snap": settings.snap_m, "first": SNAP_FIRST})
    await conn.execute(_NODES)
    await conn.execute("ANALYZE ofds_spans, ofds_ends, ofds_nodes")
    cur = await conn.execute(_META)
    spans, nodes, newest = await cur.fetchone() or (0, 0, None)
    owners = [o for (o,) in await (await conn.execute(_OWNERS)).fetchall()]
    ns = settings.network_id
    meta: dict[str, Any] = {
        "id": str(ns),
        "name": settings.network_name,
        "publisher": {"name": settings.publisher_name},
    }
    if newest is not None:
        meta["publicationDate"] = newest.astimezone(dt.UTC).date().isoformat()
    if settings.website:
        meta["website"] = settings.website
    meta |= {"crs": CRS, "language": "en", "links": [{"rel": "describedby", "href": SCHEMA_URL}]}
    organisations = [{**_owner_ref(ns, o), "roles": [PROVIDER]} for o in owners]
    return _Network(ns, meta, organisations, nodes, spans)


# -- nodes and spans as OFDS objects -----------------------------------------------------------------------


def _owner(value: str | None) -> str | None:
    return (value or "").strip(" ") or None  # as btrim() in _OWNERS


def _owner_ref(ns: uuid.UUID, owner: str) -> dict[str, str]:
    return {"id": str(uuid.uuid5(ns, f"organisation/{owner}")), "name": owner}


def _label(kind: str, subtype: str) -> str:
    return load_model().subtypes[kind].get(subtype, subtype)


def _node(row: dict[str, Any], ns: uuid.UUID) -> dict[str, Any]:
    """An OFDS node from a row of ``ofds_nodes`` (as a dict)."""
    node: dict[str, Any] = {"id": str(uuid.uuid5(ns, row["key"]))}
    if row["asset_id"] is None:  # a junction of duct ends: no type, no status
        node["name"] = f"Duct end at {row['easting']} {row['northing']}"
        node["location"] = row["location"]
        return node
    kind, subtype = row["kind"], row["subtype"]
    label = _label(kind, subtype)
    node["name"] = (row["name"] or "").strip() or f"{label} {row['source_id']}"
    if row["status"] in STATUSES:
        node["status"] = STATUSES[row["status"]]
    node["location"] = row["location"]
    if subtype == "street_cabinet" and kind == "street_furniture":
        node["type"] = ["cabinet"]
    infrastructure: dict[str, Any] = {}
    code = NODE_INFRASTRUCTURE.get(kind if kind == "public_building" else subtype)
    if code is not None:
        infrastructure["type"] = code
    infrastructure["description"] = label
    if (owner := _owner(row["owner"])) is not None:
        infrastructure["owner"] = _owner_ref(ns, owner)
    node["supportingInfrastructure"] = infrastructure
    if row["power_available"] is not None:
        node["power"] = row["power_available"]
    return node


def _span(row: dict[str, Any], ns: uuid.UUID) -> dict[str, Any]:
    """An OFDS span from a row of :func:`_span_rows` (start and end as node ids)."""
    label = _label("duct", row["subtype"])
    name = (row["name"] or "").strip() or f"{label} {row['source_id']}"
    if row["parts"] > 1:
        name += f" (part {row['part']} of {row['parts']})"
    span: dict[str, Any] = {"id": str(uuid.uuid5(ns, f"duct/{row['id']}/{row['part']}")), "name": name}
    if row["status"] in STATUSES:
        span["status"] = STATUSES[row["status"]]
    span |= {
        "start": str(uuid.uuid5(ns, row["start_key"])),
        "end": str(uuid.uuid5(ns, row["end_key"])),
        "directed": False,
        "route": row["route"],
        "deployment": ["belowGround"],
    }
    infrastructure: dict[str, Any] = {}
    if row["subtype"] in SPAN_INFRASTRUCTURE:
        infrastructure["type"] = SPAN_INFRASTRUCTURE[row["subtype"]]
    diameter = row["duct_diameter_mm"]
    infrastructure["description"] = label if diameter is None else f"{label}, {diameter:g} mm diameter"
    if (owner := _owner(row["owner"])) is not None:
        infrastructure["owner"] = _owner_ref(ns, owner)
    if row["duct_spare_capacity_pct"] is not None:
        infrastructure["spareCapacity"] = row["duct_spare_capacity_pct"] > 0
    span["supportingInfrastructure"] = infrastructure
    span["countries"] = ["GB"]
    return span


def _node_feature(node: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in node.items() if k != "location"}
    return {
        "type": "Feature",
        "geometry": node.get("location"),
        "properties": {**properties, "network": meta, "featureType": "node"},
    }


def _span_feature(
    span: dict[str, Any], start: dict[str, Any], end: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    properties = {k: v for k, v in span.items() if k != "route"} | {"start": start, "end": end}
    return {
        "type": "Feature",
        "geometry": span.get("route"),
        "properties": {**properties, "network": meta, "featureType": "span"},
    }


# -- writing --------------------------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def _stream(
    conn: psycopg.AsyncConnection[Any], query: sql.Composed | str
) -> AsyncIterator[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        async for row in cur.stream(query, size=BATCH_ROWS):
            yield row


async def _write_items(
    out: IO[bytes], items: AsyncIterator[dict[str, Any]], step: str, total: int, progress: Progress
) -> None:
    """``items`` as the members of a JSON array (without its brackets), reporting every batch."""
    done = 0
    async for item in items:
        out.write(b"," + _dumps(item) if done else _dumps(item))
        done += 1
        if done % BATCH_ROWS == 0:
            progress(step, done, total)
            await asyncio.sleep(0)  # the worker's other requests run between batches
    progress(step, done, total)


async def _nodes(conn: psycopg.AsyncConnection[Any], net: _Network) -> AsyncIterator[dict[str, Any]]:
    async for row in _stream(conn, _NODE_ROWS):
        yield _node(row, net.namespace)


async def _spans(conn: psycopg.AsyncConnection[Any], net: _Network) -> AsyncIterator[dict[str, Any]]:
    async for row in _stream(conn, _span_rows(with_nodes=False)):
        yield _span(row, net.namespace)


async def _node_features(conn: psycopg.AsyncConnection[Any], net: _Network) -> AsyncIterator[dict[str, Any]]:
    async for node in _nodes(conn, net):
        yield _node_feature(node, net.meta)


async def _span_features(conn: psycopg.AsyncConnection[Any], net: _Network) -> AsyncIterator[dict[str, Any]]:
    async for row in _stream(conn, _span_rows(with_nodes=True)):
        start, end = _node(row["start_node"], net.namespace), _node(row["end_node"], net.namespace)
        yield _span_feature(_span(row, net.namespace), start, end, net.meta)


async def _write_package(
    conn: psycopg.AsyncConnection[Any], net: _Network, out: IO[bytes], progress: Progress
) -> None:
    out.write(b'{"networks":[' + _dumps(net.meta)[:-1] + b',"organisations":' + _dumps(net.organisations))
    out.write(b',"nodes":[')
    await _write_items(out, _nodes(conn, net), "nodes", net.nodes, progress)
    out.write(b'],"spans":[')
    await _write_items(out, _spans(conn, net), "spans", net.spans, progress)
    out.write(b"]}]}")


async def _write_collection(
    out: IO[bytes], features: AsyncIterator[dict[str, Any]], step: str, total: int, progress: Progress
) -> None:
    out.write(b'{"type":"FeatureCollection","features":[')
    await _write_items(out, features, step, total, progress)
    out.write(b"]}")


async def _write_zip(
    conn: psycopg.AsyncConnection[Any], net: _Network, out: IO[bytes], progress: Progress
) -> None:
    """``nodes.geojson`` and ``spans.geojson`` in one zip, its members dated by the publication date."""
    date = dt.date.fromisoformat(net.meta.get("publicationDate", "1980-01-01"))
    members: list[tuple[str, Callable[[], AsyncIterator[dict[str, Any]]], int]] = [
        ("nodes", lambda: _node_features(conn, net), net.nodes),
        ("spans", lambda: _span_features(conn, net), net.spans),
    ]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, features, total in members:
            info = zipfile.ZipInfo(f"{name}.geojson", date_time=(date.year, date.month, date.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                await _write_collection(member, features(), name, total, progress)


async def export_ofds(
    conn: psycopg.AsyncConnection[Any],
    scope: Scope,
    settings: OfdsSettings,
    out: IO[bytes],
    fmt: Format = "json",
    part: Part | None = None,
    progress: Progress = silent,
) -> Export:
    """Write the OFDS network of ``scope`` to ``out``: the JSON package, or GeoJSON (``part``, else a zip of both).

    Parameters
    ----------
    conn
        A connection; the export runs in one transaction on it (a savepoint if one is open).
    scope
        The ducts to export (:func:`parse_scope`).
    settings
        The network's id, name, publisher and website, ``snap_m`` and ``max_spans``.
    out
        A binary file the export is written to as it is read.
    fmt, part
        ``json`` (the network package) or ``geojson``: ``nodes`` or ``spans``, or both in a zip.
    progress
        Called with ``(step, done, total)`` as nodes and spans are written.

    Returns
    -------
    Export
        The counts written. Raises :class:`TooManySpans` over ``max_spans`` (before anything is written).

    Examples
    --------
    >>> with open("camden.json", "wb") as out:  # doctest: +SKIP
    ...     await export_ofds(conn, parse_scope("E09000007", None, None), OfdsSettings(), out)
    """
    output_file(fmt, part)  # refuses a part of the JSON package before any work
    async with conn.transaction():
        net = await _build(conn, scope, settings)
        if fmt == "json":
            await _write_package(conn, net, out, progress)
        elif part == "nodes":
            await _write_collection(out, _node_features(conn, net), "nodes", net.nodes, progress)
        elif part == "spans":
            await _write_collection(out, _span_features(conn, net), "spans", net.spans, progress)
        else:
            await _write_zip(conn, net, out, progress)
        # Gone now, not at commit: inside a caller's transaction a second export makes them again.
        await conn.execute("DROP TABLE ofds_spans, ofds_ends, ofds_nodes")
    return Export(net.nodes, net.spans, len(net.organisations), net.meta.get("publicationDate"))
