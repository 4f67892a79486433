"""geo.layers.filtering: CQL2 text and JSON read into one tree, limits, and translation to SQL.

The translation is checked against brute force: random filters (hypothesis) in both encodings
select, through PostGIS, exactly the rows a Python evaluation of the same filter selects.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from pygeofilter import ast

from geo.access.principals import Principal
from geo.core.crs import Crs
from geo.layers.collections import get_collection
from geo.layers.filtering import InvalidFilter, Queryable, Queryables, parse, queryables_for, translate
from geo.layers.filtering.parse import MAX_BYTES, MAX_DEPTH

BUILDINGS = get_collection("public_buildings")


def offline_queryables(**more: Queryable) -> Queryables:
    """Queryables built by hand (no database): a few columns of each type."""
    fields = {
        "name": Queryable("name", "string", column="name"),
        "subtype": Queryable("subtype", "string", column="subtype"),
        "height_m": Queryable("height_m", "number", column="height_m"),
        "version": Queryable("version", "integer", column="version"),
        "valid_from": Queryable("valid_from", "date-time", column="valid_from"),
        "last_surveyed": Queryable("last_surveyed", "date", column="last_surveyed"),
        "rooftop_access": Queryable("rooftop_access", "boolean", column="rooftop_access"),
        "geometry": Queryable("geometry", "geometry", column="geom"),
        **more,
    }
    return Queryables(BUILDINGS, fields)


def sql_text(tree: Any, queryables: Queryables | None = None) -> tuple[str, dict[str, Any]]:  # noqa: D103
    compiled = translate(tree, queryables or offline_queryables())
    return compiled.sql.as_string(None), compiled.params


# -- reading -------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or_and_not_takes_a_condition():
    tree = parse("name = 'a' OR name = 'b' AND height_m > 1")
    assert isinstance(tree, ast.Or) and isinstance(tree.rhs, ast.And)
    tree = parse("NOT (name = 'a' AND height_m > 1) AND version = 1")
    assert (
        isinstance(tree, ast.And) and isinstance(tree.lhs, ast.Not) and isinstance(tree.lhs.sub_node, ast.And)
    )


@pytest.mark.parametrize(
    ("text", "document"),
    [
        ("name = 'O''Brien'", {"op": "=", "args": [{"property": "name"}, "O'Brien"]}),
        ("h = -1.5e3", {"op": "=", "args": [{"property": "h"}, -1500.0]}),
        ("x BETWEEN 1 AND 2", {"op": "between", "args": [{"property": "x"}, 1, 2]}),
        ("x IN ('a', 'b')", {"op": "in", "args": [{"property": "x"}, ["a", "b"]]}),
        ("x IS NULL", {"op": "isNull", "args": [{"property": "x"}]}),
        ("CASEI(x) LIKE CASEI('a%')", {"op": "like", "args": [{"op": "casei", "args": [{"property": "x"}]}, {"op": "casei", "args": ["a%"]}]}),
        ("S_INTERSECTS(g, BBOX(0, 51, 1, 52))", {"op": "s_intersects", "args": [{"property": "g"}, {"bbox": [0, 51, 1, 52]}]}),
        ("S_DWITHIN(g, POINT(0 51), 10)", {"op": "s_dwithin", "args": [{"property": "g"}, {"type": "Point", "coordinates": [0, 51]}, 10]}),
        ("T_AFTER(t, TIMESTAMP('2020-01-01T00:00:00Z'))", {"op": "t_after", "args": [{"property": "t"}, {"timestamp": "2020-01-01T00:00:00Z"}]}),
        ("T_STARTS(INTERVAL('2020-01-01', '..'), INTERVAL('2020-01-01', '2021-01-01'))", {"op": "t_starts", "args": [{"interval": ["2020-01-01", ".."]}, {"interval": ["2020-01-01", "2021-01-01"]}]}),
        ("TRUE", True),
        ("b", {"property": "b"}),
    ],
)  # fmt: skip
def test_both_encodings_read_to_the_same_tree(text, document):
    from_text, from_json = parse(text), parse(json.dumps(document), "cql2-json")
    assert from_text == from_json or repr(from_text) == repr(from_json)


def test_the_drafts_language_names_are_read_too():
    assert parse("x = 1", "cql-text") == parse("x = 1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 'a' OR", "the filter ends too early at line 1, column 11"),
        ("x = = 1", "unexpected '=' at line 1, column 5"),
        ("x = 1\nAND y ~ 2", "unexpected character '~' at line 2, column 7"),
        ("x = 'unterminated", "at line 1, column 5"),
    ],
)
def test_syntax_errors_say_where(text, message):
    with pytest.raises(InvalidFilter, match=re.escape(message)):
        parse(text)


def test_limits_on_size_and_depth():
    with pytest.raises(InvalidFilter, match=f"longer than the {MAX_BYTES}"):
        parse("x = '" + "é" * (MAX_BYTES // 2) + "'")
    with pytest.raises(InvalidFilter, match=f"nested deeper than {MAX_DEPTH}"):
        parse("NOT (" * (MAX_DEPTH + 1) + "x = 1" + ")" * (MAX_DEPTH + 1))
    nested: Any = True
    for _ in range(MAX_DEPTH + 5):
        nested = {"op": "not", "args": [nested]}
    with pytest.raises(InvalidFilter, match="nested deeper"):
        parse(json.dumps(nested), "cql2-json")
    with pytest.raises(InvalidFilter, match="brackets nested"):
        parse("[" * 100, "cql2-json")
    # A long flat chain is one level, however many terms it has: it is read and translated.
    chain = " AND ".join(f"version <> {i}" for i in range(400))
    text, params = sql_text(parse(chain))
    assert len(params) == 400 and text.count(" AND ") == 399
    assert parse(" OR ".join(["x = 1"] * 200))


# -- translating ---------------------------------------------------------------------------------

ATTEMPTS = [
    ("name = '''; DROP TABLE assets; --'", "'; DROP TABLE assets; --"),
    ("name = 'x'' OR ''1''=''1'", "x' OR '1'='1"),
    ("name LIKE '%''); DELETE FROM assets; --'", "%'); DELETE FROM assets; --"),
    ("CASEI(name) = CASEI(''' || pg_sleep(10) || ''')", "' || pg_sleep(10) || '"),
    ('"name" = \'"; DROP TABLE assets; --\'', '"; DROP TABLE assets; --'),
    ("name IN ('a''); DROP TABLE assets; --', 'b')", "a'); DROP TABLE assets; --"),
]


@pytest.mark.parametrize(("text", "value"), ATTEMPTS)
def test_values_never_reach_the_sql_text(text, value):
    text_sql, params = sql_text(parse(text))
    for word in ("DROP", "DELETE", "pg_sleep", "--", "'1'"):
        assert word not in text_sql
    assert value in params.values()
    assert set(re.findall(r"%\((\w+)\)s", text_sql)) == set(params)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"name; DROP TABLE assets" = 1', "'name; DROP TABLE assets' is not a queryable"),
        ('"name\\" = 1" = 1', "unexpected character '\"' at line 1, column 12"),  # CQL2 names have no \\"
        ("pg_sleep(10)", "'PG_SLEEP' is not a function"),
        ("lo_import('/etc/passwd') IS NULL", "'LO_IMPORT' is not a function"),
        ("version = 99999999999999999999", "out of range"),
        ("S_INTERSECTS(geometry, POINT(0 91))", "not longitude/latitude"),
        ("T_AFTER(valid_from, height_m)", "'height_m' is a number"),
        ("CASEI(height_m) = 'x'", "CASEI takes a string"),
        ("S_DWITHIN(geometry, POINT(0 51), height_m)", "S_DWITHIN's distance is a number of metres"),
    ],
)
def test_names_functions_and_types_are_checked(text, message):
    with pytest.raises(InvalidFilter, match=re.escape(message)):
        sql_text(parse(text))


def test_restricted_values_read_null_on_rows_of_other_boroughs():
    queryables = Queryables(
        BUILDINGS, {}, extra_any=True, extra_only_borough="E09000007", public_extra=("ward",)
    )
    text_sql, params = sql_text(parse("\"extra.contact\" = 'x' AND \"extra.ward\" = 'y'"), queryables)
    assert text_sql.count("CASE WHEN borough_code =") == 1 and "E09000007" in params.values()
    assert {"contact", "ward"} <= set(params.values())  # the field names are parameters too
    with pytest.raises(InvalidFilter, match="'extra.contact' is not a queryable"):
        sql_text(parse("\"extra.contact\" = 'x'"), Queryables(BUILDINGS, {}, public_extra=("ward",)))


def test_geometry_literals_move_to_british_national_grid_once_per_query():
    text_sql, params = sql_text(parse("S_INTERSECTS(geometry, POINT(-0.1 51.5))"))
    assert (
        "(SELECT ST_Transform(ST_Segmentize(ST_GeomFromWKB(" in text_sql
        and "4326), 0.001), 27700))" in text_sql
    )
    bng = translate(parse("S_INTERSECTS(geometry, POINT(530000 180000))"), offline_queryables(), Crs(27700))
    assert "(SELECT ST_GeomFromWKB(%(cql_0)s::bytea, 27700))" in bng.sql.as_string(None)
    # EPSG:4326 by URI is latitude first: the literal is turned to longitude first.
    lat_first = translate(
        parse("S_INTERSECTS(geometry, POINT(51.5 -0.1))"), offline_queryables(), Crs(4326, True)
    )
    assert lat_first.params["cql_0"] == params["cql_0"]


# -- brute force ---------------------------------------------------------------------------------

SUBTYPES = ["library", "school", "housing_block", "depot", "office"]
STATUSES = ["in_service", "proposed", "out_of_commission"]
PATTERNS = ["Library%", "%(Camden)%", "School _ %", "%Block%"]
COLUMNS = "id, name, subtype, status, height_m, rooftop_access, listed_building, version"


def like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


leaves = st.one_of(
    st.tuples(st.just("eq"), st.sampled_from(["subtype", "status"]), st.sampled_from(SUBTYPES + STATUSES)),
    st.tuples(
        st.sampled_from(["<", "<=", ">", ">=", "<>"]),
        st.just("height_m"),
        st.integers(0, 60).map(lambda n: n / 2),
    ),
    st.tuples(st.just("in"), st.just("subtype"), st.lists(st.sampled_from(SUBTYPES), min_size=1, max_size=3)),
    st.tuples(st.just("between"), st.just("height_m"), st.tuples(st.integers(0, 30), st.integers(0, 60))),
    st.tuples(st.just("like"), st.just("name"), st.sampled_from(PATTERNS)),
    st.tuples(st.just("bool"), st.sampled_from(["rooftop_access", "listed_building"]), st.none()),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
        st.tuples(st.just("not"), inner),
    ),
    max_leaves=8,
)


def as_text(node: Any) -> str:
    kind = node[0]
    if kind in ("and", "or"):
        return "(" + f" {kind.upper()} ".join(as_text(n) for n in node[1]) + ")"
    if kind == "not":
        return f"NOT ({as_text(node[1])})"
    _, name, value = node
    if kind == "eq":
        return f"{name} = '{value}'"
    if kind == "in":
        return f"{name} IN ({', '.join(repr(v) for v in value)})"
    if kind == "between":
        return f"{name} BETWEEN {value[0]} AND {value[1]}"
    if kind == "like":
        return f"{name} LIKE '{value}'"
    if kind == "bool":
        return name
    return f"{name} {kind} {value}"


def as_json(node: Any) -> Any:
    kind = node[0]
    if kind in ("and", "or"):
        return {"op": kind, "args": [as_json(n) for n in node[1]]}
    if kind == "not":
        return {"op": "not", "args": [as_json(node[1])]}
    _, name, value = node
    prop = {"property": name}
    if kind == "eq":
        return {"op": "=", "args": [prop, value]}
    if kind == "in":
        return {"op": "in", "args": [prop, value]}
    if kind == "between":
        return {"op": "between", "args": [prop, value[0], value[1]]}
    if kind == "like":
        return {"op": "like", "args": [prop, value]}
    if kind == "bool":
        return prop
    return {"op": kind, "args": [prop, value]}


def evaluate(node: Any, row: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "and":
        return all(evaluate(n, row) for n in node[1])
    if kind == "or":
        return any(evaluate(n, row) for n in node[1])
    if kind == "not":
        return not evaluate(node[1], row)
    _, name, value = node
    have = row[name]
    return {
        "eq": lambda: have == value,
        "in": lambda: have in value,
        "between": lambda: value[0] <= have <= value[1],
        "like": lambda: like(value, have),
        "bool": lambda: bool(have),
        "<": lambda: have < value,
        "<=": lambda: have <= value,
        ">": lambda: have > value,
        ">=": lambda: have >= value,
        "<>": lambda: have != value,
    }[kind]()


@pytest.fixture(scope="module")
def database(db_url):
    """The public buildings (none of these columns is NULL there) and the anonymous queryables."""

    async def read() -> Queryables:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            return await queryables_for(conn, BUILDINGS, Principal(role=None))

    queryables = asyncio.run(read())
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            f"SELECT {COLUMNS} FROM assets WHERE kind = 'public_building' AND retired_at IS NULL"
        )
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        assert all(v is not None for row in rows for v in row.values())
        yield conn, queryables, rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_random_filters_select_what_python_selects(database, tree):
    conn, queryables, rows = database
    expected = {r["id"] for r in rows if evaluate(tree, r)}
    for language, text in (("cql2-text", as_text(tree)), ("cql2-json", json.dumps(as_json(tree)))):
        compiled = translate(parse(text, language), queryables)
        statement = sql.SQL(
            "SELECT id FROM assets WHERE kind = 'public_building' AND retired_at IS NULL AND {}"
        ).format(compiled.sql)
        got = {r[0] for r in conn.execute(statement, compiled.params)}
        assert got == expected, (language, text)


WORDS = [
    "name", "height_m", "geometry", "valid_from", "last_surveyed", "rooftop_access", "AND", "OR", "NOT", "=",
    "<>", "<", ">=", "(", ")", ",", "'x'", "'", '"', "1", "-2.5e9", "TRUE", "NULL", "IS", "IN", "LIKE",
    "BETWEEN", "CASEI", "S_INTERSECTS", "S_DWITHIN", "T_AFTER", "POINT(0 51)", "BBOX(0,51,1,52)",
    "DATE('2020-01-01')", "TIMESTAMP('2020-01-01T00:00:00Z')", "INTERVAL('..','2020-01-01')", "POLYGON((",
    "+", ";", "--", "\\", "é", "\n",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=120), st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join)))
def test_any_text_is_a_filter_or_a_400(text):
    try:
        translate(parse(text), offline_queryables())
    except InvalidFilter:
        pass


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.sampled_from(["name", "geometry"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["op", "args", "property", "type", "coordinates", "bbox", "date", "timestamp", "interval"]), inner, max_size=3),
        st.builds(lambda o, a: {"op": o, "args": a}, st.sampled_from(["and", "or", "not", "=", "<", "like", "in", "between", "isNull", "casei", "s_intersects", "s_dwithin", "t_after", "t_during", "+", "x"]), st.lists(inner, max_size=3)),
    ),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(document=json_values)
def test_any_json_is_a_filter_or_a_400(document):
    try:
        translate(parse(json.dumps(document), "cql2-json"), offline_queryables())
    except InvalidFilter:
        pass
