"""A parsed CQL2 filter as a ``psycopg.sql`` condition over the caller's queryables.

Nothing of the filter becomes SQL text: property names are looked up among the queryables
(:mod:`~geo.layers.filtering.queryables`), whose columns are ``sql.Identifier``; functions and
operators map to a fixed table; every value (strings, numbers, instants, geometries, even an
``extra`` field's name) is a bound parameter with an explicit cast. A name, function or type
the filter cannot use is an :class:`~geo.layers.filtering.parse.InvalidFilter` (400) naming it.

Geometry literals are read in ``filter-crs`` (CRS84 by default, or British National Grid) and
moved to EPSG:27700, the storage CRS, by PostGIS in an uncorrelated sub-select, so a generic
plan still transforms each literal once per query, not once per row. ``S_DWITHIN`` distances are
metres in EPSG:27700.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import shapely
import shapely.geometry
from psycopg import sql
from pygeofilter import ast, values

from geo.core.crs import BNG, EXTENTS, WGS84, Crs
from geo.layers.filtering.parse import (
    DWITHIN,
    SPATIAL_FUNCTIONS,
    TEMPORAL_FUNCTIONS,
    InvalidFilter,
    parse_instant,
)
from geo.layers.filtering.queryables import Queryable, Queryables

#: Longest ``S_DWITHIN`` distance, metres (London is about 50 km across).
MAX_DISTANCE_M = 100_000.0
BIGINT = 2**63 - 1

_SPATIAL_SQL = {
    "s_intersects": "ST_Intersects", "s_equals": "ST_Equals", "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches", "s_within": "ST_Within", "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses", "s_contains": "ST_Contains",
}  # fmt: skip
_PYGEOFILTER_SPATIAL = {
    ast.GeometryIntersects: "s_intersects", ast.GeometryEquals: "s_equals",
    ast.GeometryDisjoint: "s_disjoint", ast.GeometryTouches: "s_touches",
    ast.GeometryWithin: "s_within", ast.GeometryOverlaps: "s_overlaps",
    ast.GeometryCrosses: "s_crosses", ast.GeometryContains: "s_contains",
}  # fmt: skip
#: Where a literal reaching outside the service's extent gives the same answer once clipped to
#: it (every feature lies inside): the others refuse such a literal.
_CLIPPABLE = {"s_intersects", "s_disjoint", "s_within", DWITHIN}
_COMPARISON_SQL = {
    ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
    ast.GreaterThan: ">", ast.GreaterEqual: ">=",
}  # fmt: skip
#: Temporal functions that hold only between intervals (CQL2 1.0, 7.6: a client error with instants).
_INTERVAL_ONLY = {
    "t_contains", "t_during", "t_finishedby", "t_finishes", "t_meets", "t_metby",
    "t_overlappedby", "t_overlaps", "t_startedby", "t_starts",
}  # fmt: skip
#: Each temporal function over the bounds (a0, a1) and (b0, b1) of its operands (OWL-Time).
_TEMPORAL = {
    "t_after": "{a0} > {b1}",
    "t_before": "{a1} < {b0}",
    "t_disjoint": "({a1} < {b0} OR {a0} > {b1})",
    "t_equals": "({a0} = {b0} AND {a1} = {b1})",
    "t_intersects": "({a0} <= {b1} AND {a1} >= {b0})",
    "t_contains": "({a0} < {b0} AND {b1} < {a1})",
    "t_during": "({b0} < {a0} AND {a1} < {b1})",
    "t_finishedby": "({a0} < {b0} AND {a1} = {b1})",
    "t_finishes": "({b0} < {a0} AND {a1} = {b1})",
    "t_meets": "{a1} = {b0}",
    "t_metby": "{a0} = {b1}",
    "t_overlappedby": "({b0} < {a0} AND {a0} < {b1} AND {b1} < {a1})",
    "t_overlaps": "({a0} < {b0} AND {b0} < {a1} AND {a1} < {b1})",
    "t_startedby": "({a0} = {b0} AND {b1} < {a1})",
    "t_starts": "({a0} = {b0} AND {a1} < {b1})",
}
_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
    "date": "a date", "date-time": "a timestamp", "geometry": "a geometry", "interval": "an interval",
}  # fmt: skip
_NUMERIC = {"integer", "number"}
_TEMPORAL_TYPES = {"date", "date-time"}


@dataclass(frozen=True)
class Compiled:
    """A filter as a SQL condition and the parameters it binds."""

    sql: sql.Composable
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Operand:
    """A value in the filter: a property or function (``sql``), or a literal not yet bound."""

    type: str
    sql: sql.Composable | None = None
    value: Any = None
    label: str = ""

    @property
    def is_literal(self) -> bool:
        return self.sql is None


def _describe(value: Any) -> str:
    if isinstance(value, ast.Attribute):
        return repr(value.name)
    if isinstance(value, ast.Function):
        return f"{value.name.upper()}(…)"
    if isinstance(value, values.Geometry):
        return f"a {value.geometry.get('type', 'geometry')} literal"
    return repr(value)[:40]


class _Compiler:
    def __init__(self, queryables: Queryables, crs: Crs) -> None:
        self.queryables = queryables
        self.crs = crs
        self.params: dict[str, Any] = {}

    # -- values -----------------------------------------------------------------------------

    def bind(self, value: Any, cast: str) -> sql.Composable:
        """``value`` as a new parameter with a cast (``cast`` is one of this module's constants)."""
        key = f"cql_{len(self.params)}"
        self.params[key] = value
        return sql.SQL("{}::{}").format(sql.Placeholder(key), sql.SQL(cast))

    def column(self, queryable: Queryable) -> sql.Composable:
        if queryable.extra_key is not None:
            expression: sql.Composable = sql.SQL("(extra ->> {})").format(
                self.bind(queryable.extra_key, "text")
            )
        else:
            expression = sql.Identifier(queryable.column or queryable.name)
        if queryable.only_borough is not None:
            expression = sql.SQL("(CASE WHEN borough_code = {} THEN {} END)").format(
                self.bind(queryable.only_borough, "text"), expression
            )
        return expression

    def operand(self, node: Any) -> _Operand:
        if isinstance(node, ast.Attribute):
            queryable = self.queryables.get(node.name)
            if queryable is None:
                raise InvalidFilter(
                    f"filter: {node.name!r} is not a queryable of collection {self.queryables.collection.id!r} "
                    f"for this key; queryables: {', '.join(self.queryables.names())} "
                    f"(/collections/{self.queryables.collection.id}/queryables)"
                )
            return _Operand(queryable.type, sql=self.column(queryable), label=repr(node.name))
        if isinstance(node, ast.Function):
            if node.name == "lower":  # CASEI
                if len(node.arguments) != 1:
                    raise InvalidFilter("filter: CASEI takes one argument")
                inner = self.operand(node.arguments[0])
                if inner.type != "string":
                    raise InvalidFilter(
                        f"filter: CASEI takes a string; {inner.label} is {_TYPE_NAMES[inner.type]}"
                    )
                return _Operand(
                    "string", sql=sql.SQL("lower({})").format(self.value(inner)), label="CASEI(…)"
                )
            if node.name in TEMPORAL_FUNCTIONS or node.name in SPATIAL_FUNCTIONS or node.name == DWITHIN:
                raise InvalidFilter(f"filter: {node.name.upper()}(…) is a condition, not a value")
            raise self.unknown_function(node.name)
        if isinstance(node, bool):
            return _Operand("boolean", value=node, label=repr(node))
        if isinstance(node, int | float):
            if (
                isinstance(node, float)
                and not math.isfinite(node)
                or isinstance(node, int)
                and abs(node) > BIGINT
            ):
                raise InvalidFilter(f"filter: the number {str(node)[:30]} is out of range")
            return _Operand("integer" if isinstance(node, int) else "number", value=node, label=repr(node))
        if isinstance(node, str):
            return _Operand("string", value=node, label=repr(node[:40]))
        if isinstance(node, dt.datetime):
            return _Operand("date-time", value=node, label=f"TIMESTAMP('{node.isoformat()}')")
        if isinstance(node, dt.date):
            return _Operand("date", value=node, label=f"DATE('{node.isoformat()}')")
        if isinstance(node, values.Interval):
            return _Operand("interval", value=node, label="INTERVAL(…)")
        if isinstance(node, values.Geometry):
            return _Operand("geometry", value=node, label=_describe(node))
        if isinstance(node, ast.Arithmetic):
            raise InvalidFilter(f"filter: arithmetic ({node.op.value}) is not supported")
        if isinstance(node, ast.Node):
            raise InvalidFilter(
                f"filter: a condition ({type(node).__name__}) stands where a value is expected"
            )
        raise InvalidFilter(f"filter: {_describe(node)} is not a value this service can compare")

    def value(self, operand: _Operand, as_type: str | None = None) -> sql.Composable:
        """The SQL of ``operand``, a literal bound as ``as_type`` (its own type by default)."""
        if operand.sql is not None:
            if as_type == "date-time" and operand.type == "date":
                return sql.SQL("({}::timestamp AT TIME ZONE 'UTC')").format(operand.sql)
            return operand.sql
        target = as_type or operand.type
        value = operand.value
        if target in _TEMPORAL_TYPES and isinstance(value, str):
            value = parse_instant(value, operand.label)  # GDAL sends instants as strings
        if target == "date-time":
            if not isinstance(value, dt.datetime):
                value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
            return self.bind(value, "timestamptz")
        if target == "date":
            return self.bind(value, "date")
        if target == "string":
            return self.bind(value, "text")
        if target == "boolean":
            return self.bind(value, "boolean")
        if target in _NUMERIC:
            return self.bind(value, "bigint" if isinstance(value, int) else "double precision")
        raise InvalidFilter(f"filter: {operand.label} cannot be used here")  # pragma: no cover

    def common_type(self, left: _Operand, right: _Operand, what: str) -> str:
        """The type two operands are compared as, or a 400 naming both."""
        types = {left.type, right.type}
        if left.type == right.type and left.type not in ("geometry", "interval"):
            return left.type
        if types <= _NUMERIC:
            return "number"
        if types <= _TEMPORAL_TYPES:
            return "date-time"
        for column, literal in ((left, right), (right, left)):
            # An instant as a plain string, as GDAL's OAPIF driver writes it.
            if column.type in _TEMPORAL_TYPES and literal.is_literal and literal.type == "string":
                instant = parse_instant(literal.value, literal.label)
                return "date-time" if isinstance(instant, dt.datetime) else column.type
        if "geometry" in types:
            raise InvalidFilter(f"filter: {what} does not compare geometries; use S_EQUALS or S_INTERSECTS")
        raise InvalidFilter(
            f"filter: {what} compares {left.label} ({_TYPE_NAMES[left.type]}) with "
            f"{right.label} ({_TYPE_NAMES[right.type]})"
        )

    def unknown_function(self, name: str) -> InvalidFilter:
        known = ", ".join(["CASEI", *(f.upper() for f in SPATIAL_FUNCTIONS), DWITHIN.upper(), "T_…"])
        return InvalidFilter(f"filter: {name.upper()!r} is not a function this service knows ({known})")

    # -- conditions -------------------------------------------------------------------------

    def condition(self, node: Any) -> sql.Composable:
        if isinstance(node, ast.And | ast.Or):
            parts, todo = [], [node]
            while todo:  # a chain of ANDs (or ORs) flattened without recursion
                item = todo.pop()
                if type(item) is type(node):
                    todo.extend((item.rhs, item.lhs))
                else:
                    parts.append(self.condition(item))
            joiner = sql.SQL(" AND " if isinstance(node, ast.And) else " OR ")
            return sql.SQL("({})").format(joiner.join(parts))
        if isinstance(node, ast.Not):
            return sql.SQL("(NOT {})").format(self.condition(node.sub_node))
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        if isinstance(node, ast.Include):
            return sql.SQL("FALSE" if node.not_ else "TRUE")
        if isinstance(node, ast.Comparison):
            return self.comparison(node)
        if isinstance(node, ast.Like):
            return self.like(node)
        if isinstance(node, ast.In):
            return self.in_list(node)
        if isinstance(node, ast.Between):
            return self.between(node)
        if isinstance(node, ast.IsNull):
            operand = self.operand(node.lhs)
            return sql.SQL("({} IS {}NULL)").format(self.value(operand), sql.SQL("NOT " if node.not_ else ""))
        if type(node) in _PYGEOFILTER_SPATIAL:
            return self.spatial(_PYGEOFILTER_SPATIAL[type(node)], [node.lhs, node.rhs])
        if isinstance(node, ast.Function):
            if node.name in TEMPORAL_FUNCTIONS:
                return self.temporal(node.name, node.arguments)
            if node.name == DWITHIN:
                return self.spatial(DWITHIN, node.arguments)
            if node.name == "lower":
                raise InvalidFilter("filter: CASEI(…) is a string, not a condition")
            raise self.unknown_function(node.name)
        if isinstance(node, ast.Attribute):
            operand = self.operand(node)
            if operand.type != "boolean":
                raise InvalidFilter(
                    f"filter: {operand.label} is {_TYPE_NAMES[operand.type]}, not a condition"
                )
            return sql.SQL("({})").format(self.value(operand))
        if isinstance(node, ast.Node):
            raise InvalidFilter(f"filter: {type(node).__name__} is not supported")
        raise InvalidFilter(f"filter: {_describe(node)} is a value, not a condition")

    def comparison(self, node: ast.Comparison) -> sql.Composable:
        op = _COMPARISON_SQL[type(node)]
        left, right = self.operand(node.lhs), self.operand(node.rhs)
        as_type = self.common_type(left, right, f"'{op}'")
        return sql.SQL("({} {} {})").format(
            self.value(left, as_type), sql.SQL(op), self.value(right, as_type)
        )

    def like(self, node: ast.Like) -> sql.Composable:
        left = self.operand(node.lhs)
        pattern = self.operand(node.pattern)
        for operand in (left, pattern):
            if operand.type != "string":
                raise InvalidFilter(
                    f"filter: LIKE takes strings; {operand.label} is {_TYPE_NAMES[operand.type]}"
                )
        raw = node.pattern
        while isinstance(raw, ast.Function) and raw.arguments:  # CASEI('…')
            raw = raw.arguments[0]
        if isinstance(raw, str) and (len(raw) - len(raw.rstrip("\\"))) % 2:
            raise InvalidFilter(f"filter: the LIKE pattern {pattern.label} ends with the escape character \\")
        keyword = ("NOT " if node.not_ else "") + ("ILIKE" if node.nocase else "LIKE")
        # CQL2's wildcards (% and _) and escape (\) are PostgreSQL's.
        return sql.SQL("({} {} {})").format(self.value(left), sql.SQL(keyword), self.value(pattern))

    def in_list(self, node: ast.In) -> sql.Composable:
        left = self.operand(node.lhs)
        items = [self.operand(item) for item in node.sub_nodes]
        if not items:
            raise InvalidFilter("filter: IN takes at least one value")
        as_type = left.type
        for item in items:
            as_type = self.common_type(_Operand(as_type, left.sql, left.value, left.label), item, "IN")
        parts = sql.SQL(", ").join(self.value(item, as_type) for item in items)
        keyword = sql.SQL("NOT IN" if node.not_ else "IN")
        return sql.SQL("({} {} ({}))").format(self.value(left, as_type), keyword, parts)

    def between(self, node: ast.Between) -> sql.Composable:
        left, low, high = self.operand(node.lhs), self.operand(node.low), self.operand(node.high)
        as_type = self.common_type(left, low, "BETWEEN")
        as_type = self.common_type(_Operand(as_type, left.sql, left.value, left.label), high, "BETWEEN")
        if as_type not in _NUMERIC | _TEMPORAL_TYPES:
            raise InvalidFilter(
                f"filter: BETWEEN takes numbers (or instants); {left.label} is {_TYPE_NAMES[left.type]}"
            )
        keyword = sql.SQL("NOT BETWEEN" if node.not_ else "BETWEEN")
        return sql.SQL("({} {} {} AND {})").format(
            self.value(left, as_type), keyword, self.value(low, as_type), self.value(high, as_type)
        )

    # -- spatial ----------------------------------------------------------------------------

    def geometry(self, operand: _Operand, function: str) -> sql.Composable:
        if operand.type != "geometry":
            raise InvalidFilter(
                f"filter: {function.upper()} takes geometries; {operand.label} is {_TYPE_NAMES[operand.type]}"
            )
        if operand.sql is not None:
            return operand.sql
        srid = self.crs.srid
        try:
            shape = shapely.force_2d(shapely.geometry.shape(operand.value.geometry))
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise InvalidFilter(
                f"filter: {function.upper()}: the geometry literal cannot be read: {str(exc)[:100]}"
            ) from None
        if shape.is_empty:
            raise InvalidFilter(f"filter: {function.upper()}: the geometry literal is empty")
        if self.crs.lat_first:
            shape = shapely.transform(shape, lambda xy: xy[:, ::-1])
        bounds = shapely.bounds(shape)
        if not all(math.isfinite(b) for b in bounds):
            raise InvalidFilter(
                f"filter: {function.upper()}: the geometry literal has coordinates that are not numbers"
            )
        x0, y0, x1, y1 = (float(b) for b in bounds)
        if srid == WGS84 and not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise InvalidFilter(
                f"filter: {function.upper()}: the geometry literal is not longitude/latitude; for British "
                "National Grid add filter-crs=http://www.opengis.net/def/crs/EPSG/0/27700"
            )
        if not shape.is_valid:
            reason = shapely.is_valid_reason(shape)
            raise InvalidFilter(f"filter: {function.upper()}: the geometry literal is not valid ({reason})")
        ex0, ey0, ex1, ey1 = EXTENTS[srid]
        if not (ex0 <= x0 and ey0 <= y0 and x1 <= ex1 and y1 <= ey1):
            if function not in _CLIPPABLE:
                raise InvalidFilter(
                    f"filter: {function.upper()}: the geometry literal reaches outside Great Britain "
                    f"({ex0}, {ey0}, {ex1}, {ey1} in filter-crs), where no feature lies"
                )
            # Every feature lies inside the extent, so the answer is the same for the clipped
            # literal; a world-wide box would otherwise be densified into millions of vertices.
            shape = shapely.clip_by_rect(shape, ex0, ey0, ex1, ey1)
            if shape.is_empty:
                return sql.SQL("NULL::geometry")
        wkb = self.bind(shapely.to_wkb(shape), "bytea")
        if srid == BNG:
            return sql.SQL("(SELECT ST_GeomFromWKB({}, 27700))").format(wkb)
        # Densified before it is moved, as a bbox is, so its edges stay where they were drawn.
        return sql.SQL("(SELECT ST_Transform(ST_Segmentize(ST_GeomFromWKB({}, 4326), 0.001), 27700))").format(
            wkb
        )

    def spatial(self, function: str, arguments: list[Any]) -> sql.Composable:
        if function == DWITHIN:
            if len(arguments) != 3:
                raise InvalidFilter("filter: S_DWITHIN takes two geometries and a distance in metres")
            distance = self.operand(arguments[2])
            if (
                not distance.is_literal
                or distance.type not in _NUMERIC
                or not 0 <= distance.value <= MAX_DISTANCE_M
            ):
                raise InvalidFilter(
                    f"filter: S_DWITHIN's distance is a number of metres from 0 to {MAX_DISTANCE_M:.0f}; "
                    f"not {distance.label}"
                )
            a, b = (self.geometry(self.operand(arg), function) for arg in arguments[:2])
            return sql.SQL("ST_DWithin({}, {}, {})").format(
                a, b, self.bind(float(distance.value), "double precision")
            )
        if len(arguments) != 2:
            raise InvalidFilter(f"filter: {function.upper()} takes two geometries")
        a, b = (self.geometry(self.operand(arg), function) for arg in arguments)
        return sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL_SQL[function]), a, b)

    # -- temporal ---------------------------------------------------------------------------

    def bounds(self, operand: _Operand, function: str) -> tuple[sql.Composable, sql.Composable]:
        """An instant or interval operand as its first and last moment (timestamptz)."""
        if operand.type not in _TEMPORAL_TYPES | {"interval"}:
            raise InvalidFilter(
                f"filter: {function.upper()} takes instants or intervals; {operand.label} is {_TYPE_NAMES[operand.type]}"
            )
        if operand.sql is not None:
            if operand.type == "date-time":
                return operand.sql, operand.sql
            # A date lasts the whole day (UTC).
            start = sql.SQL("({}::timestamp AT TIME ZONE 'UTC')").format(operand.sql)
            end = sql.SQL("((({} + 1)::timestamp AT TIME ZONE 'UTC') - interval '1 microsecond')").format(
                operand.sql
            )
            return start, end
        if operand.type == "interval":
            return self.moment(operand.value.start, first=True), self.moment(operand.value.end, first=False)
        if isinstance(operand.value, dt.datetime):
            moment = self.moment(operand.value, first=True)
            return moment, moment
        return self.moment(operand.value, first=True), self.moment(operand.value, first=False)

    def moment(self, value: dt.date | dt.datetime | None, first: bool) -> sql.Composable:
        if value is None:  # '..': open
            return sql.SQL("'-infinity'::timestamptz" if first else "'infinity'::timestamptz")
        if isinstance(value, dt.datetime):
            return self.bind(value, "timestamptz")
        start = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return self.bind(start if first else start + dt.timedelta(days=1, microseconds=-1), "timestamptz")

    def temporal(self, function: str, arguments: list[Any]) -> sql.Composable:
        if len(arguments) != 2:
            raise InvalidFilter(f"filter: {function.upper()} takes two instants or intervals")
        left, right = (self.operand(arg) for arg in arguments)
        if function in _INTERVAL_ONLY:
            for operand in (left, right):
                if operand.type != "interval":
                    raise InvalidFilter(
                        f"filter: {function.upper()} compares intervals, and {operand.label} is an instant "
                        "(use T_AFTER, T_BEFORE, T_EQUALS, T_DISJOINT or T_INTERSECTS)"
                    )
        (a0, a1), (b0, b1) = self.bounds(left, function), self.bounds(right, function)
        return sql.SQL(_TEMPORAL[function]).format(a0=a0, a1=a1, b0=b0, b1=b1)


def translate(tree: Any, queryables: Queryables, crs: Crs = Crs(WGS84)) -> Compiled:
    """A pygeofilter tree (:func:`~geo.layers.filtering.parse.parse`) as a SQL condition.

    ``crs`` is the ``filter-crs``: the CRS of the filter's geometry literals.
    """
    compiler = _Compiler(queryables, crs)
    condition = compiler.condition(tree)
    return Compiled(condition, compiler.params)
