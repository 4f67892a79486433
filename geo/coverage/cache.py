"""What the process keeps between coverage reports: indexed assets of recent filters, Pipeline projects.

Entries are keyed by the data versions they were read at, so a change to the data makes a new
key and a stale entry is never used.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg
import shapely

from geo.coverage.nearest import AssetIndex
from geo.coverage.request import ReportRequest
from geo.coverage.sources import Assets, asset_box, read_assets, read_versions
from geo.projects import projects_in_area

#: How many indexed asset sets the process keeps (least recently used first out). London's
#: (550,000 points and ducts densified into 470,000 vertices) takes about 150 MB.
ASSET_INDEX_CACHE_SIZE = 4
V = TypeVar("V")


@dataclass
class IndexedAssets:
    """The assets of one filter, box and data version, with their nearest-asset indexes built."""

    assets: Assets
    index: AssetIndex
    _candidates: AssetIndex | None = field(default=None, repr=False)

    def candidate_index(self, spacing: float) -> AssetIndex:
        """The index of the candidates (built on first use: only prioritisation needs it)."""
        if self._candidates is None:
            cpts, cids, clines, clids = self.assets.candidates()
            self._candidates = AssetIndex(cpts, cids, clines, clids, spacing)
        return self._candidates


class ProcessCache(Generic[V]):
    """A bounded, thread-safe, least-recently-used map: what the process keeps between reports.

    The asset indexes (:data:`ASSET_INDEXES`) are keyed by the database (URL and OID), the
    data versions their assets depend on (``data_versions``: the ``assets`` layer, and
    ``wayleaves`` for ``ready_now``; every statement that changes those tables bumps them, in
    its own transaction), the asset filters, the box read and the index spacing. A warm report
    reads the versions (one small query) and, when nothing changed, reuses the index instead
    of reading the assets again; any change to the assets makes a new key, so a stale entry is
    never used (it just ages out). Entries are immutable once stored, apart from the candidate
    index built on demand.
    """

    def __init__(self, maxsize: int = ASSET_INDEX_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The entry for ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: Hashable, entry: V) -> None:
        """Store an entry, dropping the least recently used beyond :attr:`maxsize`."""
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the counters too)."""
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


#: The process-wide cache of the reports (the service is long running: warm reports reuse it).
ASSET_INDEXES: ProcessCache[IndexedAssets] = ProcessCache()


def _asset_key(url: str, request: ReportRequest, versions: dict[str, Any], spacing: float) -> Hashable:
    layers = ("assets", "wayleaves") if request.ready_now else ("assets",)
    return (
        url, versions.get("database"), tuple((layer, versions.get(layer)) for layer in layers),
        request.kinds, request.subtypes, request.statuses, request.asset_boroughs, request.ready_now,
        asset_box(request), spacing,
    )  # fmt: skip


def indexed_assets(
    url: str, request: ReportRequest, spacing: float, versions: dict[str, Any] | None = None
) -> IndexedAssets:
    """The request's assets and their index: from :data:`ASSET_INDEXES` when the data is unchanged.

    Parameters
    ----------
    url : str
        Database URL.
    request : ReportRequest
        With its geometry resolved.
    spacing : float
        Duct spacing of the index (the settings' ``spacing_m``): speed only, never the answer.
    versions : dict, optional
        ``data_versions`` as just read (:func:`~geo.coverage.sources.read_versions`); read here
        when not given.

    Returns
    -------
    IndexedAssets
        ``assets.versions`` are the versions the assets were read at.

    Notes
    -----
    Performance: a hit costs the versions query (a millisecond); a miss reads the assets
    (:func:`read_assets`, about 1-1.5 s for London) and builds the index (about 0.3 s).
    """
    if versions is None:
        with psycopg.connect(url) as conn:
            versions = read_versions(conn)
    entry = ASSET_INDEXES.get(_asset_key(url, request, versions, spacing))
    if entry is not None:
        return entry
    assets = read_assets(url, request)
    pts, pids, lines, lids = assets.qualifying()
    entry = IndexedAssets(assets, AssetIndex(pts, pids, lines, lids, spacing))
    # Keyed by the versions of the snapshot the assets were read in (they may be newer than
    # ``versions``): the same data, whoever asks next.
    ASSET_INDEXES.put(_asset_key(url, request, assets.snapshot_versions, spacing), entry)
    return entry


#: The Pipeline projects of recent areas, as the summaries list them.
_PROJECTS: ProcessCache[list[dict[str, Any]]] = ProcessCache(maxsize=8)


def pipeline_projects(
    conn: psycopg.Connection[Any], url: str, database: Any, area: shapely.Geometry, versions: dict[str, Any]
) -> list[dict[str, Any]]:
    """The area's Pipeline projects as a summary lists them (JSON values), kept per area and data
    version: London-wide, the query tests the union of 33 boroughs (40 ms a report)."""
    key = (url, database, shapely.to_wkb(area), versions.get("pipeline"), versions.get("boroughs"))
    found = _PROJECTS.get(key)
    if found is None:
        projects = projects_in_area(conn, area)
        found = json.loads(
            json.dumps([{k: v for k, v in p.items() if k != "geom"} for p in projects], default=str)
        )
        _PROJECTS.put(key, found)
    return list(found)
