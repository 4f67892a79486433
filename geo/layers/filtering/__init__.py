"""CQL2 filters (OGC API Features Part 3): queryables per role, parsing, translation to SQL.

- :mod:`~geo.layers.filtering.queryables`: what a caller may filter a collection by
  (:func:`queryables_for`) and its JSON Schema (:func:`queryables_schema`);
- :mod:`~geo.layers.filtering.parse`: ``cql2-text`` and ``cql2-json`` read by pygeofilter into
  one tree, with the size and depth limits (:func:`parse`, :class:`InvalidFilter`);
- :mod:`~geo.layers.filtering.translate`: that tree as a ``psycopg.sql`` condition over the
  queryables, every value a parameter (:func:`translate`).

:func:`compile_filter` does the three for a request. :data:`CONFORMANCE` lists the conformance
classes they implement, which ``/conformance`` declares.
"""

from __future__ import annotations

from typing import Any

import psycopg

from geo.access.principals import Principal
from geo.core.crs import BNG, WGS84, Crs, parse_crs
from geo.layers.collections import Collection
from geo.layers.filtering.parse import ALIASES, LANGUAGES, MAX_BYTES, MAX_DEPTH, InvalidFilter, parse
from geo.layers.filtering.queryables import Queryable, Queryables, queryables_for, queryables_schema
from geo.layers.filtering.translate import MAX_DISTANCE_M, Compiled, translate

CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"
FEATURES_3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
#: The conformance classes of Part 3 and CQL2 1.0 implemented here (each exercised by the tests).
CONFORMANCE = [
    FEATURES_3 + "queryables",
    FEATURES_3 + "filter",
    FEATURES_3 + "features-filter",
    CQL2 + "basic-cql2",
    CQL2 + "cql2-text",
    CQL2 + "cql2-json",
    CQL2 + "advanced-comparison-operators",
    CQL2 + "case-insensitive-comparison",
    CQL2 + "basic-spatial-functions",
    CQL2 + "basic-spatial-functions-plus",
    CQL2 + "spatial-functions",
    CQL2 + "temporal-functions",
    CQL2 + "property-property",
]


async def compile_filter(
    conn: psycopg.AsyncConnection[Any],
    collection: Collection,
    principal: Principal,
    text: str | None,
    language: str | None = None,
    crs: str | None = None,
    public_extra: tuple[str, ...] = (),
) -> Compiled | None:
    """A request's ``filter``, ``filter-lang`` and ``filter-crs`` as a SQL condition (None without a filter)."""
    filter_crs = parse_crs(crs, "filter-crs", (WGS84, BNG)) or Crs(WGS84)  # checked even without a filter
    if text is None or text == "":
        return None
    tree = parse(text, language or "cql2-text")
    return translate(tree, await queryables_for(conn, collection, principal, public_extra), filter_crs)


__all__ = [
    "ALIASES",
    "CONFORMANCE",
    "LANGUAGES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_DISTANCE_M",
    "Compiled",
    "InvalidFilter",
    "Queryable",
    "Queryables",
    "compile_filter",
    "parse",
    "queryables_for",
    "queryables_schema",
    "translate",
]
