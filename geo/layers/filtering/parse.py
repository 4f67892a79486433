"""CQL2 text and JSON read into pygeofilter's syntax tree, with the limits a query parameter keeps.

Both encodings end as the same tree (``pygeofilter.ast`` nodes and Python values), which
:mod:`~geo.layers.filtering.translate` turns into SQL:

- **cql2-text**: pygeofilter's Lark grammar and transformer, with the rules where pygeofilter 0.4
  departs from CQL2 1.0 (OGC 21-065r2) overridden here: ``AND`` binds tighter than ``OR``
  (pygeofilter gives them one precedence, so ``a OR b AND c`` read as ``(a OR b) AND c``); ``NOT``
  takes a parenthesised condition; a function or a boolean alone is a condition
  (``S_DWITHIN(…)``, ``TRUE``); temporal functions take the standard's form
  ``T_INTERSECTS(a, b)`` and names (``T_STARTS``, ``T_FINISHES``, ``T_DISJOINT``…); ``BBOX(…)``,
  ``DATE('…')``, ``TIMESTAMP('…')`` and ``INTERVAL('…', '..')`` literals; ``''`` inside a string;
  one-letter property names; line breaks as spaces. ``ILIKE`` is kept for GDAL, whose OAPIF driver sends it.
- **cql2-json**: the document is checked and brought to the shape pygeofilter's walker reads
  (``between`` with three arguments, functions as ``{"op": name, "args": …}``, temporal and
  bbox literals as values), then walked by pygeofilter.

Errors are :class:`InvalidFilter` (400) saying where: the line and column for text, the JSON path
(``$.args[1]``) for JSON.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Any

from lark import Lark, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json.parser import walk_cql_json
from pygeofilter.parsers.cql2_text.parser import CQLTransformer

from geo.core.errors import InvalidParameter

# pygeofilter's parser module sets Lark's logger to DEBUG on import; Lark then logs every unused
# rule of the grammar below at start-up.
logging.getLogger("lark").setLevel(logging.WARNING)

#: Longest filter accepted, in bytes of UTF-8 (a GET query; the next links repeat it).
MAX_BYTES = 8192
#: Deepest nesting of conditions (a chain of ANDs or ORs is one level) and of function calls.
MAX_DEPTH = 20
#: Deepest nesting of brackets in the raw text, checked before a parser sees it (geometry
#: literals take three levels, each JSON operation two).
MAX_BRACKETS = 64

LANGUAGES = ("cql2-text", "cql2-json")
#: The language names of the drafts of Part 3, still sent by GDAL's OAPIF driver.
ALIASES = {"cql-text": "cql2-text", "cql-json": "cql2-json"}

TEMPORAL_FUNCTIONS = (
    "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedby",
    "t_finishes", "t_intersects", "t_meets", "t_metby", "t_overlappedby", "t_overlaps",
    "t_startedby", "t_starts",
)  # fmt: skip
SPATIAL_FUNCTIONS = (
    "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses",
    "s_contains",
)  # fmt: skip
#: Not in CQL2 1.0: ``S_DWITHIN(a, b, metres)``, distance in British National Grid metres.
DWITHIN = "s_dwithin"


class InvalidFilter(InvalidParameter):
    """A ``filter`` that cannot be read or used; the message says what and where (400)."""


# Rules of pygeofilter's cql2-text grammar replaced or added (see the module docstring).
_OVERRIDES = r"""
%override ?condition: bool_term | condition "OR"i bool_term -> or_
?bool_term: bool_factor | bool_term "AND"i bool_factor -> and_
?bool_factor: bool_primary | "NOT"i bool_primary -> not_
?bool_primary: predicate
             | "(" condition ")"
             | expression -> truthy

%override ?atom: func | attribute | literal | "-" atom -> neg

%extend ?predicate: expression "ILIKE"i expression -> ilike
                  | expression "NOT"i "ILIKE"i expression -> not_ilike

%override ?spatial_predicate: _binary_spatial_predicate_func "(" expression "," expression ")" -> binary_spatial_predicate
                            | "S_DWITHIN"i "(" expression "," expression "," expression ")" -> dwithin

%override ?temporal_predicate: _temporal_function "(" expression "," expression ")" -> temporal_function
!_temporal_function: "T_AFTER"i | "T_BEFORE"i | "T_CONTAINS"i | "T_DISJOINT"i | "T_DURING"i
                   | "T_EQUALS"i | "T_FINISHEDBY"i | "T_FINISHES"i | "T_INTERSECTS"i | "T_MEETS"i
                   | "T_METBY"i | "T_OVERLAPPEDBY"i | "T_OVERLAPS"i | "T_STARTEDBY"i | "T_STARTS"i

%override ?timestamp: "TIMESTAMP"i "(" SINGLE_QUOTED ")" -> timestamp_literal
%override ?date: "DATE"i "(" SINGLE_QUOTED ")" -> date_literal
%override ?interval: "INTERVAL"i "(" SINGLE_QUOTED "," SINGLE_QUOTED ")" -> interval_literal
%override envelope: "BBOX"i "(" full_number "," full_number "," full_number "," full_number ("," full_number "," full_number)? ")"

%override attribute: /[a-zA-Z_:][a-zA-Z_:0-9.]*/ | DOUBLE_QUOTED
%override SINGLE_QUOTED: /'(?:[^'\\]|''|\\.)*'/s
%override DOUBLE_QUOTED: /"(?:[^"]|"")*"/
%ignore /\s+/
"""

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_timestamp(text: str, where: str) -> dt.datetime:
    """An RFC 3339 timestamp with its offset (``Z`` or ``+01:00``), as an aware datetime."""
    if not _TIMESTAMP.fullmatch(text):
        raise InvalidFilter(
            f"filter: {where}: {text[:40]!r} is not an RFC 3339 timestamp (2024-01-31T09:00:00Z)"
        )
    digits = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("z", "Z").replace("t", "T"))
    try:
        return dt.datetime.fromisoformat(digits)
    except ValueError:
        raise InvalidFilter(f"filter: {where}: {text[:40]!r} is not a valid date and time") from None


def parse_date(text: str, where: str) -> dt.date:
    """A calendar date ``YYYY-MM-DD``."""
    if not _DATE.fullmatch(text):
        raise InvalidFilter(f"filter: {where}: {text[:40]!r} is not a date (2024-01-31)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidFilter(f"filter: {where}: {text[:40]!r} is not a valid date") from None


def parse_instant(text: str, where: str) -> dt.date | dt.datetime:
    """A timestamp or a date, whichever ``text`` is (``'2024-01-31T'``, as GDAL writes a date, too)."""
    if _DATE.fullmatch(text.rstrip("Tt")):
        return parse_date(text.rstrip("Tt"), where)
    return parse_timestamp(text, where)


def _interval_bound(text: str, where: str) -> dt.date | dt.datetime | None:
    return None if text == ".." else parse_instant(text, where)


def _interval(start: str, end: str, where: str) -> values.Interval:
    """An interval of two instants, ``'..'`` for an open end; one that ends before it starts is refused."""
    first, last = _interval_bound(start, where), _interval_bound(end, where)

    def moment(value: dt.date | dt.datetime) -> dt.datetime:
        return (
            value
            if isinstance(value, dt.datetime)
            else dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        )

    if first is not None and last is not None and moment(first) > moment(last):
        raise InvalidFilter(f"filter: {where}: the interval ('{start}', '{end}') ends before it starts")
    return values.Interval(first, last)


def _bbox_polygon(numbers: list[Any], where: str) -> values.Geometry:
    """A CQL2 bbox (west, south, east, north; or with elevations) as a polygon."""
    if len(numbers) not in (4, 6) or not all(
        isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
    ):
        raise InvalidFilter(f"filter: {where}: a bbox is 4 numbers (west, south, east, north) or 6")
    west, south, east, north = (
        (numbers[0], numbers[1], numbers[3], numbers[4]) if len(numbers) == 6 else numbers
    )
    if west > east or south > north:
        raise InvalidFilter(f"filter: {where}: the bbox {numbers} has its minimum above its maximum")
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    return values.Geometry({"type": "Polygon", "coordinates": [ring]})


@v_args(meta=False, inline=True)
class _Transformer(CQLTransformer):  # type: ignore[misc]
    """pygeofilter's transformer, with the rules this module adds or changes."""

    def truthy(self, value: Any) -> Any:
        return value

    def dwithin(self, lhs: Any, rhs: Any, distance: Any) -> ast.Function:
        return ast.Function(DWITHIN, [lhs, rhs, distance])

    def temporal_function(self, name: Any, lhs: Any, rhs: Any) -> ast.Function:
        return ast.Function(str(name).lower(), [lhs, rhs])

    def ilike(self, node: Any, pattern: Any) -> ast.Like:
        return ast.Like(node, pattern, True, "%", "_", "\\", False)

    def not_ilike(self, node: Any, pattern: Any) -> ast.Like:
        return ast.Like(node, pattern, True, "%", "_", "\\", True)

    def neg(self, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value
        raise InvalidFilter(
            "filter: '-' before a property or function is arithmetic, which this service does not support"
        )

    def timestamp_literal(self, text: str) -> dt.datetime:
        return parse_timestamp(text, "TIMESTAMP")

    def date_literal(self, text: str) -> dt.date:
        return parse_date(text, "DATE")

    def interval_literal(self, start: str, end: str) -> values.Interval:
        return _interval(start, end, "INTERVAL")

    def envelope(self, *numbers: Any) -> values.Geometry:
        return _bbox_polygon(list(numbers), "BBOX")

    def SINGLE_QUOTED(self, token: Any) -> str:  # noqa: N802 (Lark names callbacks after terminals)
        return str(token)[1:-1].replace("''", "'").replace("\\'", "'")

    def DOUBLE_QUOTED(self, token: Any) -> str:  # noqa: N802
        return str(token)[1:-1].replace('""', '"')

    def wkt__geometry_with_srid(self, srid: Any, geometry: Any) -> Any:
        raise InvalidFilter("filter: SRID=…; is not CQL2: give geometries in filter-crs (CRS84 by default)")

    def wkt__multipoint_2(self, *coordinates: Any) -> dict[str, Any]:
        return {"type": "MultiPoint", "coordinates": coordinates}


def _grammar() -> tuple[str, list[str]]:
    spec = importlib.util.find_spec("pygeofilter")
    assert spec is not None and spec.submodule_search_locations
    parsers = Path(next(iter(spec.submodule_search_locations))) / "parsers"
    text = (parsers / "cql2_text" / "grammar.lark").read_text()
    # Read from a string, pygeofilter's relative import of its WKT grammar is made absolute.
    return text.replace("%import .wkt.", "%import wkt.") + _OVERRIDES, [str(parsers)]


_GRAMMAR, _IMPORT_PATHS = _grammar()
_PARSER = Lark(
    _GRAMMAR,
    parser="lalr",
    maybe_placeholders=False,
    import_paths=_IMPORT_PATHS,
    transformer=_Transformer(),
)
_READABLE = {
    "SINGLE_QUOTED": "a string",
    "DOUBLE_QUOTED": "a quoted property name",
    "INT": "a number",
    "FLOAT": "a number",
    "BOOLEAN": "TRUE or FALSE",
    "$END": "the end",
}
#: Terminal name -> its text, for the keywords and symbols of the grammar.
_LITERALS = {t.name: t.pattern.value for t in _PARSER.terminals if t.pattern.type == "str"}


def _expected(names: set[str]) -> str:
    shown = {_READABLE.get(name) or _LITERALS.get(name) or "a property name" for name in names}
    listed = sorted(shown, key=lambda s: (not s[0].isalpha(), s.lower()))
    if not listed:
        return ""
    more = ", …" if len(listed) > 15 else ""
    return f"; expected {', '.join(listed[:15])}{more}"


def _syntax_error(text: str, exc: UnexpectedInput) -> InvalidFilter:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        what, line, column = (
            "the filter ends too early",
            1 + text.count("\n"),
            len(text.rsplit("\n", 1)[-1]) + 1,
        )
    elif isinstance(exc, UnexpectedCharacters):
        what = f"unexpected character {exc.char!r}"
    elif isinstance(exc, UnexpectedToken):
        what = f"unexpected {str(exc.token)[:40]!r}"
    else:
        what = "cannot be read"
    where = f" at line {line}, column {column}" if line is not None and column is not None else ""
    near = ""
    if isinstance(exc, UnexpectedCharacters | UnexpectedToken) and exc.pos_in_stream is not None:
        start = exc.pos_in_stream
        near = f" (near {text[max(0, start - 10) : start + 20]!r})"
    expected = _expected(set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()))
    return InvalidFilter(f"filter (cql2-text): {what}{where}{near}{expected}")


def _check_size(text: str, quotes: str) -> None:
    if len(text.encode()) > MAX_BYTES:
        raise InvalidFilter(
            f"filter: {len(text.encode())} bytes is longer than the {MAX_BYTES} a filter may have"
        )
    if "\x00" in text:
        raise InvalidFilter("filter: a NUL character is not allowed")
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in quotes:
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    if deepest > MAX_BRACKETS:
        raise InvalidFilter(f"filter: brackets nested {deepest} deep; at most {MAX_BRACKETS}")


def parse_text(text: str) -> Any:
    """A cql2-text filter as a pygeofilter tree."""
    _check_size(text, "'\"")
    if not text.strip():
        raise InvalidFilter("filter: empty")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    except InvalidFilter:
        raise
    except (LarkError, ValueError, TypeError, KeyError, IndexError) as exc:
        # pygeofilter's transformer refusing a value (a malformed number or geometry).
        cause = exc.orig_exc if hasattr(exc, "orig_exc") else exc
        if isinstance(cause, InvalidFilter):
            raise cause from None
        raise InvalidFilter(f"filter (cql2-text): cannot be read: {str(cause)[:200]}") from None
    _check_depth(tree)
    return tree


# -- cql2-json ------------------------------------------------------------------------------------

_COMPARISONS = {"=", "<>", "<", "<=", ">", ">="}
_ARITHMETIC = {"+", "-", "*", "/", "%", "^", "div"}
_ARRAY = {"a_equals", "a_contains", "a_containedby", "a_overlaps"}
_GEOJSON = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}


def _arguments(node: dict[str, Any], path: str, count: int | None = None) -> list[Any]:
    args = node.get("args")
    if isinstance(args, dict):  # the standard allows one argument given bare for not and isNull
        args = [args]
    if not isinstance(args, list):
        raise InvalidFilter(f"filter: {path}.args must be a list")
    if count is not None and len(args) != count:
        raise InvalidFilter(f"filter: {path}: {node['op']!r} takes {count} arguments, not {len(args)}")
    return args


def _json_value(node: Any, path: str) -> Any:
    """A CQL2 JSON node brought to the shape pygeofilter's walker reads."""
    if isinstance(node, bool | str):
        return node
    if isinstance(node, int | float):
        if isinstance(node, float) and node != node or node in (float("inf"), float("-inf")):
            raise InvalidFilter(f"filter: {path}: not a finite number")
        return node
    if node is None:
        raise InvalidFilter(f"filter: {path}: null is not a CQL2 value (test for it with isNull)")
    if isinstance(node, list):
        raise InvalidFilter(f"filter: {path}: a list is only the second argument of 'in'")
    if not isinstance(node, dict):
        raise InvalidFilter(f"filter: {path}: not a CQL2 JSON node")
    if "property" in node:
        if not isinstance(node["property"], str) or len(node) != 1:
            raise InvalidFilter(f'filter: {path}: a property is {{"property": "name"}}')
        return node
    if "timestamp" in node:
        return parse_timestamp(_string(node["timestamp"], f"{path}.timestamp"), f"{path}.timestamp")
    if "date" in node:
        return parse_date(_string(node["date"], f"{path}.date"), f"{path}.date")
    if "interval" in node:
        bounds = node["interval"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise InvalidFilter(f"filter: {path}.interval must be a list of two instants ('..' for open)")
        start, end = (_string(b, f"{path}.interval[{i}]") for i, b in enumerate(bounds))
        return _interval(start, end, f"{path}.interval")
    if "bbox" in node:
        if not isinstance(node["bbox"], list):
            raise InvalidFilter(f"filter: {path}.bbox must be a list of numbers")
        return _bbox_polygon(node["bbox"], f"{path}.bbox")
    if node.get("type") in _GEOJSON:
        return values.Geometry(node)
    if "type" in node and "op" not in node:
        raise InvalidFilter(f"filter: {path}: {str(node.get('type'))[:40]!r} is not a GeoJSON geometry type")
    if "op" in node:
        return _json_operation(node, path)
    raise InvalidFilter(f"filter: {path}: not a CQL2 JSON node (an operation, a property or a literal)")


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidFilter(f"filter: {path} must be a string")
    return value


def _json_operation(node: dict[str, Any], path: str) -> Any:
    op = node["op"]
    if not isinstance(op, str):
        raise InvalidFilter(f"filter: {path}.op must be a string")
    name = op.lower() if op.lower() not in ("isnull",) else "isNull"
    if name in ("and", "or"):
        args = _arguments(node, path)
        if len(args) < 2:
            raise InvalidFilter(f"filter: {path}: {op!r} takes two or more arguments")
        return {"op": name, "args": [_json_value(a, f"{path}.args[{i}]") for i, a in enumerate(args)]}
    if name in ("not", "isNull", "casei"):
        (arg,) = _arguments(node, path, 1)
        return {"op": name, "args": [_json_value(arg, f"{path}.args[0]")]}
    if name in _COMPARISONS or name == "like" or name in SPATIAL_FUNCTIONS:
        args = _arguments(node, path, 2)
        if name == "like":
            pattern = args[1]
            # pygeofilter keeps a LIKE pattern as sent; CASEI around it is read here.
            if isinstance(pattern, dict):
                pattern = walk_cql_json(_json_value(pattern, f"{path}.args[1]"))
            elif not isinstance(pattern, str):
                raise InvalidFilter(f"filter: {path}.args[1]: a LIKE pattern is a string")
            return {"op": "like", "args": [_json_value(args[0], f"{path}.args[0]"), pattern]}
        return {"op": name, "args": [_json_value(a, f"{path}.args[{i}]") for i, a in enumerate(args)]}
    if name == "between":
        args = _arguments(node, path)
        if len(args) == 2 and isinstance(args[1], list) and len(args[1]) == 2:  # the drafts' form
            args = [args[0], *args[1]]
        if len(args) != 3:
            raise InvalidFilter(f"filter: {path}: 'between' takes 3 arguments (value, low, high)")
        low, high = (_json_value(a, f"{path}.args[{i + 1}]") for i, a in enumerate(args[1:]))
        return {"op": "between", "args": [_json_value(args[0], f"{path}.args[0]"), [low, high]]}
    if name == "in":
        args = _arguments(node, path, 2)
        if not isinstance(args[1], list) or not args[1]:
            raise InvalidFilter(f"filter: {path}.args[1]: 'in' takes a non-empty list of values")
        items = [_json_value(a, f"{path}.args[1][{i}]") for i, a in enumerate(args[1])]
        return {"op": "in", "args": [_json_value(args[0], f"{path}.args[0]"), items]}
    if name in TEMPORAL_FUNCTIONS or name == DWITHIN:
        args = _arguments(node, path, 3 if name == DWITHIN else 2)
        converted = [_json_value(a, f"{path}.args[{i}]") for i, a in enumerate(args)]
        return ast.Function(name, [walk_cql_json(a) for a in converted])
    if name in _ARITHMETIC:
        raise InvalidFilter(f"filter: {path}: arithmetic ({op!r}) is not supported")
    if name in _ARRAY:
        raise InvalidFilter(f"filter: {path}: array functions ({op!r}) are not supported")
    if name == "accenti":
        raise InvalidFilter(f"filter: {path}: ACCENTI (accent-insensitive comparison) is not supported")
    # Any other name is a function call; translate refuses those it does not know, by name.
    args = _arguments(node, path)
    return ast.Function(
        name, [walk_cql_json(_json_value(a, f"{path}.args[{i}]")) for i, a in enumerate(args)]
    )


def parse_json(text: str) -> Any:
    """A cql2-json filter as a pygeofilter tree."""
    _check_size(text, '"')
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFilter(
            f"filter (cql2-json): not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidFilter("filter (cql2-json): nested too deep") from None
    try:
        tree = walk_cql_json(_json_value(document, "$"))
    except InvalidFilter:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidFilter(f"filter (cql2-json): cannot be read: {str(exc)[:200]}") from None
    _check_depth(tree)
    return tree


def _check_depth(tree: Any) -> None:
    """Refuse trees nested deeper than :data:`MAX_DEPTH` (a chain of one AND or OR counts once)."""
    todo: list[tuple[Any, int]] = [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"filter: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.And | ast.Or):
            for child in (node.lhs, node.rhs):
                todo.append((child, depth if type(child) is type(node) else depth + 1))
        elif isinstance(node, ast.Node):
            todo.extend((child, depth + 1) for child in node.get_sub_nodes() if isinstance(child, ast.Node))
        elif isinstance(node, list):
            todo.extend((child, depth) for child in node)


def parse(text: str, language: str = "cql2-text") -> Any:
    """A filter in ``language`` (``cql2-text`` or ``cql2-json``, or the drafts' names) as a pygeofilter tree."""
    language = ALIASES.get(language, language)
    if language == "cql2-text":
        return parse_text(text)
    if language == "cql2-json":
        return parse_json(text)
    raise InvalidFilter(f"filter-lang: {language!r} is not cql2-text or cql2-json")
