"""CQL2 filters on vector tiles: the items' filter, compiled once per caller, with a key for the cache.

A tile's ``filter`` (``filter-lang``, ``filter-crs``) is read and translated by
:func:`geo.layers.filtering.compile_filter`, over the same per-role queryables as the items, so a
filter QGIS sends to the items and the map sends to the tiles select the same features.

- :attr:`TileFilter.key` hashes the SQL the filter became and its bound values. A role's
  visibility is part of that SQL (a borough key's ``changed_by`` or ``extra.*`` read only its own
  borough's rows), so two filters, or one filter read for callers who see different things,
  never share a cache entry or an ETag; callers who see the same get the same key.
- Below the raw zoom tiles come from summaries kept per borough, subtype and status. A filter
  that only says which of those it wants (``=``, ``IN`` joined by ``AND``) is served from them
  (:attr:`TileFilter.summary`), as fast as the ``borough``/``subtype``/``status`` parameters; any
  other filter is counted from the features in the tile (:mod:`geo.layers.tiles`).

Compiled filters are kept per caller's visibility (:data:`MAX_KEPT`), so a cached tile with a
filter needs no database connection either.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from pygeofilter import ast

from geo.access.principals import Principal
from geo.layers import filtering
from geo.layers.collections import Collection
from geo.layers.tile_summaries import SUMMARY_COLUMNS

#: Compiled filters kept per process (the parse and translation of a filter take about 100 µs).
MAX_KEPT = 1024


@dataclass(frozen=True)
class TileFilter:
    """A tile request's CQL2 filter, compiled."""

    compiled: filtering.Compiled
    #: Hash of the SQL and values: equal keys select the same features.
    key: str
    #: The filter as summary column -> values, when it is only that (None: it needs the features).
    summary: dict[str, list[str]] | None


class _OnDemand:
    """Stands for a connection and takes one only if a statement runs.

    Compiling a filter reads the table's column types once per process; after that it needs no
    connection, and a cached tile is served without one.
    """

    def __init__(self, connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]) -> None:
        self._connect = connect

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self._connect()).execute(*args, **kwargs)


_KEPT: OrderedDict[tuple[Any, ...], TileFilter] = OrderedDict()


def _key(compiled: filtering.Compiled) -> str:
    # repr of psycopg.sql objects names every literal, identifier and placeholder; bound values are
    # str, bytes (geometries as WKB), numbers and datetimes, whose repr is exact.
    text = repr(compiled.sql) + repr(sorted(compiled.params.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _strings(nodes: list[Any]) -> list[str] | None:
    return sorted(set(nodes)) if nodes and all(isinstance(v, str) for v in nodes) else None


def summary_terms(tree: Any) -> dict[str, list[str]] | None:
    """``a = 'x'``, ``a IN ('x', 'y')`` over :data:`SUMMARY_COLUMNS`, joined by AND, as column -> values.

    None when the filter says anything else (the summaries cannot answer it).
    """
    if isinstance(tree, ast.And):
        left, right = summary_terms(tree.lhs), summary_terms(tree.rhs)
        if left is None or right is None:
            return None
        return merge_terms(left, right)
    if isinstance(tree, ast.Equal | ast.In) and isinstance(tree.lhs, ast.Attribute):
        if tree.lhs.name not in SUMMARY_COLUMNS:
            return None
        if isinstance(tree, ast.In):
            values = None if tree.not_ else _strings(list(tree.sub_nodes))
        else:
            values = _strings([tree.rhs])
        return None if values is None else {tree.lhs.name: values}
    return None


def merge_terms(a: dict[str, list[str]], b: dict[str, list[str]]) -> dict[str, list[str]]:
    """Both sets of column -> values at once: a column named by both keeps the values common to both."""
    out = dict(a)
    for column, values in b.items():
        out[column] = sorted(set(out[column]) & set(values)) if column in out else values
    return out


async def compile_tile_filter(
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    collection: Collection,
    principal: Principal,
    text: str | None,
    language: str | None = None,
    crs: str | None = None,
    public_extra: tuple[str, ...] = (),
) -> TileFilter | None:
    """A tile request's filter (None without one); an invalid one raises ``InvalidFilter`` (400).

    ``connect()`` is called only if the collection's column types were never read in this process.
    """
    if not text and crs is None:
        return None
    visibility = (principal.role, principal.borough_code)
    kept = (collection.id, visibility, text, language, crs, public_extra)
    found = _KEPT.get(kept)
    if found is not None:
        _KEPT.move_to_end(kept)
        return found
    conn = cast(psycopg.AsyncConnection[Any], _OnDemand(connect))
    compiled = await filtering.compile_filter(conn, collection, principal, text, language, crs, public_extra)
    if compiled is None:
        return None
    summary = None
    if collection.low_zoom != "raw":
        summary = summary_terms(filtering.parse(str(text), language or "cql2-text"))
    answer = TileFilter(compiled, _key(compiled), summary)
    _KEPT[kept] = answer
    while len(_KEPT) > MAX_KEPT:
        _KEPT.popitem(last=False)
    return answer
