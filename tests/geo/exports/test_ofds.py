"""The OFDS export, checked by the standard's own validator (libcoveofds) and on a hand-made network."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import io
import json
import uuid
import zipfile

import psycopg
import pytest
from libcoveofds.geojson import GeoJSONAssumeFeatureType, GeoJSONToJSONConverter, JSONToGeoJSONConverter
from ofds_checks import validation_problems

from geo.core.settings import OfdsSettings
from geo.exports import InvalidScope, Scope, TooManySpans, export_ofds, parse_scope
from geo.exports.ofds import SCHEMA_URL, STATUSES

SETTINGS = OfdsSettings()
NS = SETTINGS.network_id


async def _export(conn, scope: Scope, fmt="json", part=None, settings=SETTINGS) -> bytes:
    out = io.BytesIO()
    await export_ofds(conn, scope, settings, out, fmt, part)
    return out.getvalue()


def run(db_url, work):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def test_the_test_database_is_valid_ofds_and_its_geojson_is_the_standards(db_url, conn):
    async def work(c):
        return (
            await _export(c, Scope()),
            await _export(c, Scope()),
            await _export(c, Scope(), "geojson"),
        )

    first, second, archive = run(db_url, work)
    assert first == second  # deterministic: ids, order and the publication date come from the data
    package = json.loads(first)
    assert validation_problems(package) == ([], [], {})
    network = package["networks"][0]
    assert network["id"] == str(NS) and network["links"][0] == {"rel": "describedby", "href": SCHEMA_URL}
    ducts, newest = conn.execute(
        "SELECT count(*), max(valid_from) FROM assets WHERE kind = 'duct' AND retired_at IS NULL"
    ).fetchone()
    assert len(network["spans"]) == ducts == 106
    assert network["publicationDate"] <= dt.date.today().isoformat()
    assert network["publicationDate"] >= newest.astimezone(dt.UTC).date().isoformat()
    assert {s["status"] for s in network["spans"]} <= set(STATUSES.values())
    used = {s["start"] for s in network["spans"]} | {s["end"] for s in network["spans"]}
    assert used == {n["id"] for n in network["nodes"]}
    owners = {s["supportingInfrastructure"]["owner"]["name"] for s in network["spans"]}
    assert owners <= {o["name"] for o in network["organisations"]}

    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.namelist() == ["nodes.geojson", "spans.geojson"]
        nodes, spans = (json.loads(z.read(name)) for name in z.namelist())
    converter = JSONToGeoJSONConverter()
    converter.process_package(copy.deepcopy(package))
    assert nodes == converter.get_nodes_geojson() and spans == converter.get_spans_geojson()
    back = GeoJSONToJSONConverter()
    back.process_data(copy.deepcopy(nodes), GeoJSONAssumeFeatureType.NODE)
    back.process_data(copy.deepcopy(spans), GeoJSONAssumeFeatureType.SPAN)
    returned = back.get_json()["networks"][0]
    assert sorted(returned["nodes"], key=lambda n: n["id"]) == sorted(network["nodes"], key=lambda n: n["id"])
    assert sorted(returned["spans"], key=lambda s: s["id"]) == sorted(network["spans"], key=lambda s: s["id"])


#: A quiet corner of Richmond Park (EPSG:27700), where the demo has no asset.
X, Y = 520_500.0, 172_500.0


async def _asset(conn, kind, subtype, wkt, status="in_service", name=None) -> int:
    cur = await conn.execute(
        """INSERT INTO assets (borough_code, kind, subtype, source_id, name, owner, status, geom)
           VALUES ('E09000027', %s, %s, %s, %s, 'Royal Parks', %s, ST_GeomFromText(%s, 27700)) RETURNING id""",
        [kind, subtype, f"OFDS-{uuid.uuid4().hex[:8]}", name, status, wkt],
    )
    return (await cur.fetchone())[0]


def _line(*points) -> str:
    return "LINESTRING(" + ", ".join(f"{X + dx} {Y + dy}" for dx, dy in points) + ")"


async def _hand_made_network(conn) -> tuple[dict[str, int], bytes]:
    """Two cabinets with a duct between, a lamp post, a dangling duct, two ducts end to end, a two-part duct."""
    cur = await conn.execute(
        "SELECT count(*) FROM assets WHERE ST_DWithin(geom, ST_MakeEnvelope(%s, %s, %s, %s, 27700), 50)",
        [X - 10, Y - 10, X + 260, Y + 510],
    )
    assert (await cur.fetchone())[0] == 0  # the corner is empty: what meets what is only what is made here
    ids = {
        "a": await _asset(conn, "street_furniture", "street_cabinet", f"POINT({X} {Y})", name="Cabinet A"),
        "b": await _asset(conn, "street_furniture", "street_cabinet", f"POINT({X + 100} {Y})", "unknown"),
        "lamp": await _asset(conn, "street_furniture", "lamp_post", f"POINT({X + 104} {Y})"),
        "between": await _asset(conn, "duct", "duct", _line((2, 0), (50, 3), (103, 0)), "installed"),
        "dangling": await _asset(conn, "duct", "sub_duct", _line((50, 50), (50, 150)), "proposed"),
        "d3": await _asset(conn, "duct", "duct", _line((0, 300), (60, 300))),
        "d4": await _asset(conn, "duct", "duct", _line((61, 300.5), (120, 300))),
        "multi": await _asset(
            conn, "duct", "trough",
            f"MULTILINESTRING(({X} {Y + 500}, {X + 50} {Y + 500}), ({X + 200} {Y + 500}, {X + 250} {Y + 500}))",
            "abandoned",
        ),
    }  # fmt: skip
    scope = parse_scope(None, f"{X - 10},{Y - 10},{X + 260},{Y + 510}", "EPSG:27700")
    return ids, await _export(conn, scope)


def test_duct_ends_meet_cabinets_first_then_junctions_shared_end_to_end(db_url):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            try:
                return await _hand_made_network(conn)
            finally:
                await conn.rollback()  # the session database is left as it was

    ids, body = asyncio.run(main())
    package = json.loads(body)
    assert validation_problems(package) == ([], [], {})
    network = package["networks"][0]
    nodes = {n["id"]: n for n in network["nodes"]}
    spans = {s["id"]: s for s in network["spans"]}

    def node(key):
        return str(uuid.uuid5(NS, key))

    def span(name, part=1):
        return spans[str(uuid.uuid5(NS, f"duct/{ids[name]}/{part}"))]

    assert len(spans) == 6
    assert (span("between")["start"], span("between")["end"]) == (
        node(f"asset/{ids['a']}"),
        node(f"asset/{ids['b']}"),
    )
    assert node(f"asset/{ids['lamp']}") not in nodes  # nearer to the end, but a cabinet comes first
    cabinet = nodes[node(f"asset/{ids['a']}")]
    assert (
        cabinet["type"] == ["cabinet"]
        and cabinet["status"] == "operational"
        and cabinet["name"] == "Cabinet A"
    )
    assert cabinet["supportingInfrastructure"] == {
        "type": "cabinet",
        "description": "Street cabinet",
        "owner": {"id": str(uuid.uuid5(NS, "organisation/Royal Parks")), "name": "Royal Parks"},
    }
    assert "status" not in nodes[node(f"asset/{ids['b']}")]  # unknown has no OFDS counterpart
    assert span("between")["status"] == "inactive" and span("dangling")["status"] == "proposed"
    assert span("dangling")["supportingInfrastructure"]["type"] == "duct"
    ends = [nodes[span("dangling")["start"]], nodes[span("dangling")["end"]]]
    assert ends[0] != ends[1] and all("type" not in n and "status" not in n for n in ends)
    assert ends[0]["name"] == f"Duct end at {X + 50:.0f} {Y + 50:.0f}"
    assert span("d3")["end"] == span("d4")["start"] == node(f"duct/{ids['d3']}/1/end")  # 1.1 m apart
    assert span("d3")["start"] != span("d4")["end"]
    assert (
        span("multi", 1)["name"].endswith("(part 1 of 2)") and span("multi", 2)["status"] == "decommissioned"
    )
    assert "type" not in span("multi", 2)["supportingInfrastructure"]  # a trough has no OFDS counterpart
    assert len(nodes) == 2 + 2 + 3 + 4  # cabinets, the dangling ends, d3/d4's three, the two parts' four
    assert [o["name"] for o in network["organisations"]] == ["Royal Parks"]


def test_a_bad_scope_names_its_parameter_and_too_many_spans_is_refused(db_url):
    for args, where in [
        (("E09000099", None, None), "query.borough"),
        ((None, "1,2,3", None), "query.bbox"),
        ((None, "0,51,1,52", "EPSG:3857"), "query.bbox-crs"),
    ]:
        with pytest.raises(InvalidScope) as info:
            parse_scope(*args)
        assert info.value.problem_extra["errors"][0]["where"] == where
    with pytest.raises(TooManySpans, match="more than 5 spans"):
        run(db_url, lambda c: _export(c, Scope(), settings=OfdsSettings(max_spans=5)))
