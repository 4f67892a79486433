"""Places a person looks for on the map: postcodes, wards, boroughs, assets and Pipeline projects.

Postcodes and wards come from the files the product ships and are held **in memory**, read on
first use (about 0.6 s once per process, some 15 MB): 181,216 Code-Point Open 2014 centroids
(``data/london_postcodes_codepoint_2014.csv``) as numpy arrays sorted by postcode, so a prefix
is two binary searches and the nearest postcode one vectorised distance; 625 wards
(``data/london_wards_citymerged.geojson``) with their names, bounds and label points. They are
reference data that never change while the service runs, so a table, its loader and its
migration would add a load step to every database (and to the tests' template) for no gain:
a search answers in well under a millisecond from memory.

Boroughs, assets and Pipeline projects are searched in PostGIS, where they change: an asset by
its borough's source id (prefix, any case) or by words of its name (prefixes), a project by its
title; migration 0017 indexes both asset searches.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psycopg
import shapely

from geo.core.crs import transformer
from geo.core.errors import InvalidParameter
from geo.core.settings import DATA_DIR
from geo.reference.model import load_model

POSTCODES_FILE = DATA_DIR / "london_postcodes_codepoint_2014.csv"
WARDS_FILE = DATA_DIR / "london_wards_citymerged.geojson"
#: Longest query accepted, and most results one search returns.
MAX_QUERY = 100
MAX_LIMIT = 50
#: A full postcode, with or without its space ("NW1 2DB", "nw12db").
FULL_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][0-9A-Z]?) ?([0-9][A-Z]{2})$")
#: The start of a postcode: an outward code, maybe with part of the inward one ("NW1", "NW1 2").
POSTCODE_START = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?( [0-9][A-Z]{0,2})?$")
#: Asset kind -> the map layer (tile collection) that draws it.
KIND_LAYERS = {"street_furniture": "street_furniture", "public_building": "public_buildings", "duct": "ducts"}
KIND_LABELS = {"street_furniture": "Street furniture", "public_building": "Public building", "duct": "Duct"}


@dataclass(frozen=True)
class Place:
    """One search result: what it is, where it is, and how to frame it."""

    kind: str
    id: str
    label: str
    detail: str
    lon: float
    lat: float
    bbox: tuple[float, float, float, float] | None = None
    borough_code: str | None = None
    layer: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The place as the API answers it (coordinates to 6 decimals, about 0.1 m)."""
        out = asdict(self)
        out["lon"], out["lat"] = round(self.lon, 6), round(self.lat, 6)
        if self.bbox is not None:
            out["bbox"] = [round(v, 6) for v in self.bbox]
        return out


class Postcodes:
    """The shipped postcode centroids, sorted by postcode (``"NW1 2DB"``: outward, space, inward)."""

    def __init__(self) -> None:
        import pandas as pd  # imported when used: the CLI never needs it for this

        raw = pd.read_csv(
            POSTCODES_FILE, usecols=["POSTCODE", "EASTING", "NORTHING", "LAD_GSS", "WARD_GSS"], dtype=str
        ).sort_values("POSTCODE", kind="stable")
        self.codes = raw["POSTCODE"].to_numpy(dtype="U8")
        self.x = raw["EASTING"].to_numpy(dtype=float)
        self.y = raw["NORTHING"].to_numpy(dtype=float)
        self.lon, self.lat = transformer(27700, 4326).transform(self.x, self.y)
        self.borough = raw["LAD_GSS"].to_numpy(dtype="U9")
        self.ward = raw["WARD_GSS"].fillna("").to_numpy(dtype="U9")
        outward = raw["POSTCODE"].str.split(" ").str[0]
        frame = pd.DataFrame({"outward": outward.to_numpy(), "lon": self.lon, "lat": self.lat})
        groups = frame.groupby("outward", sort=True).agg(
            n=("lon", "size"), w=("lon", "min"), s=("lat", "min"), e=("lon", "max"), north=("lat", "max"),
            cx=("lon", "mean"), cy=("lat", "mean"),
        )  # fmt: skip
        self.districts: dict[str, tuple[int, float, float, float, float, float, float]] = {
            str(k): (int(r.n), r.w, r.s, r.e, r.north, r.cx, r.cy) for k, r in groups.iterrows()
        }
        self.district_names = sorted(self.districts)

    def __len__(self) -> int:
        return len(self.codes)

    def starting(self, prefix: str, limit: int) -> list[int]:
        """Indexes of the postcodes that start with ``prefix``, first ``limit`` in order."""
        lo = int(np.searchsorted(self.codes, prefix, side="left"))
        hi = int(np.searchsorted(self.codes, prefix + "\uffff", side="left"))
        return list(range(lo, min(hi, lo + limit)))

    def place(self, i: int, names: dict[str, str] | None = None) -> Place:
        """Postcode ``i`` as a place (``names``: GSS code -> borough name, for its detail)."""
        borough = str(self.borough[i])
        return Place(
            kind="postcode", id=str(self.codes[i]), label=str(self.codes[i]),
            detail=f"Postcode in {(names or {}).get(borough, borough)}" if borough else "Postcode",
            lon=float(self.lon[i]), lat=float(self.lat[i]), borough_code=borough or None,
        )  # fmt: skip

    def district(self, outward: str) -> Place | None:
        """A postcode district ("NW1") framed by its postcodes, or None."""
        found = self.districts.get(outward)
        if found is None:
            return None
        n, w, s, e, north, cx, cy = found
        return Place(
            kind="postcode_district", id=outward, label=outward, detail=f"Postcode district, {n:,} postcodes",
            lon=cx, lat=cy, bbox=(w, s, e, north),
        )  # fmt: skip

    def nearest(self, x: float, y: float) -> tuple[int, float]:
        """The postcode nearest to a British National Grid point, and its distance in metres."""
        d2 = (self.x - x) ** 2 + (self.y - y) ** 2
        i = int(np.argmin(d2))
        return i, float(np.sqrt(d2[i]))


class Wards:
    """The shipped 2002-2014 electoral wards (the City of London as one), with label points."""

    def __init__(self) -> None:
        from shapely.ops import polylabel

        collection = json.loads(WARDS_FILE.read_text())
        features = collection["features"]
        geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in features])
        to_bng, to_wgs = transformer(4326, 27700), transformer(27700, 4326)
        bng = shapely.transform(geoms, lambda xy: np.column_stack(to_bng.transform(xy[:, 0], xy[:, 1])))
        # The pole of inaccessibility: inside the ward, away from its edges (a label fits there).
        poles = [polylabel(g, 5.0) for g in bng]
        lon, lat = to_wgs.transform([p.x for p in poles], [p.y for p in poles])
        self.codes = [f["properties"]["GSS_CODE"] for f in features]
        self.names = [f["properties"]["NAME"] for f in features]
        self.boroughs = [f["properties"]["LB_GSS_CD"] for f in features]
        self.borough_names = [f["properties"]["BOROUGH"] for f in features]
        self.bounds = [tuple(float(v) for v in b) for b in shapely.bounds(geoms)]
        self.label_points = [(round(float(a), 6), round(float(b), 6)) for a, b in zip(lon, lat, strict=True)]
        self.by_code = {code: i for i, code in enumerate(self.codes)}
        self.features = features
        self._lower = [n.lower() for n in self.names]
        self._geoms = geoms
        self._tree = shapely.STRtree(geoms)
        self._body: bytes | None = None

    def at(self, lon: float, lat: float) -> int | None:
        """The ward a WGS84 point is in, or None."""
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        return int(hits[0]) if len(hits) else None

    def geojson_bytes(self) -> bytes:
        """:meth:`geojson` as compact UTF-8 JSON (made once)."""
        if self._body is None:
            self._body = json.dumps(self.geojson(), separators=(",", ":"), ensure_ascii=False).encode()
        return self._body

    def place(self, i: int) -> Place:
        """Ward ``i`` as a place."""
        lon, lat = self.label_points[i]
        detail = "The City of London" if self.codes[i] == "E09000001" else f"Ward in {self.borough_names[i]}"
        return Place(
            kind="ward", id=self.codes[i], label=self.names[i], detail=detail, lon=lon, lat=lat,
            bbox=self.bounds[i], borough_code=self.boroughs[i],  # type: ignore[arg-type]
        )  # fmt: skip

    def matching(self, text: str) -> list[int]:
        """Wards whose name is ``text``, starts with it, or has a word starting with it; best first."""
        needle = text.lower()
        scored = []
        for i, name in enumerate(self._lower):
            if name == needle:
                scored.append((0, name, i))
            elif name.startswith(needle):
                scored.append((1, name, i))
            elif any(w.startswith(needle) for w in re.split(r"[\s'.-]+", name)) or (
                len(needle) > 3 and needle in name
            ):
                scored.append((2, name, i))
        return [i for _, _, i in sorted(scored)]

    def geojson(self) -> dict[str, Any]:
        """The wards as a FeatureCollection for a map: name, codes, borough and label point."""
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": self.codes[i],
                    "properties": {
                        "code": self.codes[i],
                        "name": self.names[i],
                        "borough_code": self.boroughs[i],
                        "borough": self.borough_names[i],
                        "label": list(self.label_points[i]),
                    },
                    "geometry": f["geometry"],
                }
                for i, f in enumerate(self.features)
            ],
        }


_lock = threading.Lock()


@functools.cache
def _postcodes() -> Postcodes:
    return Postcodes()


@functools.cache
def _wards() -> Wards:
    return Wards()


def postcodes() -> Postcodes:
    """The postcode index, read on first use (one thread reads it; the others wait)."""
    with _lock:
        return _postcodes()


def wards() -> Wards:
    """The ward index, read on first use."""
    with _lock:
        return _wards()


def clean_query(q: str) -> str:
    """``q`` trimmed, its spaces collapsed; :class:`InvalidParameter` when it cannot be searched."""
    text = " ".join(q.split())
    if len(text) < 2:
        raise InvalidParameter("q: give at least 2 characters (a postcode, a place, an asset or a project)")
    if len(text) > MAX_QUERY:
        raise InvalidParameter(f"q: at most {MAX_QUERY} characters")
    if any(ord(c) < 32 for c in text):
        raise InvalidParameter("q: control characters are not allowed")
    return text


def postcode_places(text: str, limit: int, names: dict[str, str] | None = None) -> list[Place]:
    """A full postcode; or a district ("NW1", framed) and the postcodes that start as ``text`` does.

    ``names`` (GSS code -> borough name) words the postcodes' details ("Postcode in Camden").
    """
    index = postcodes()
    upper = text.upper()
    full = FULL_POSTCODE.match(upper)
    if full:
        code = f"{full.group(1)} {full.group(2)}"
        return [index.place(i, names) for i in index.starting(code, 1) if index.codes[i] == code]
    if not POSTCODE_START.match(upper):
        return []
    outward, _, inward = upper.partition(" ")
    found: list[Place] = []
    district = index.district(outward)
    if district is not None and not inward:
        found.append(district)
    prefix = f"{outward} {inward}" if inward or district is not None else outward
    found += [index.place(i, names) for i in index.starting(prefix, limit)]
    return found[:limit]


def ward_places(text: str, limit: int) -> list[Place]:
    """Wards by name."""
    index = wards()
    return [index.place(i) for i in index.matching(text)[:limit]]


_BOROUGHS_SQL = """
SELECT code, name, ST_X(p), ST_Y(p), ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
FROM boroughs,
     LATERAL (SELECT ST_Transform(ST_PointOnSurface(geom), 4326) AS p,
                     ST_Transform(geom, 4326)::box2d AS e) t
WHERE lower(name) LIKE '%%' || %(needle)s || '%%' OR lower(code) = %(needle)s
ORDER BY lower(name) <> %(needle)s, NOT lower(name) LIKE %(needle)s || '%%', name
LIMIT %(limit)s
"""


async def borough_places(conn: psycopg.AsyncConnection[Any], text: str, limit: int) -> list[Place]:
    """Boroughs whose name holds ``text`` (or whose GSS code it is)."""
    needle = text.lower().replace("\\", "").replace("%", "").replace("_", " ")
    cur = await conn.execute(_BOROUGHS_SQL, {"needle": needle, "limit": limit})
    return [
        Place(
            kind="borough",
            id=code,
            label=name,
            detail="London borough" if code != "E09000001" else "London authority",
            lon=x,
            lat=y,
            bbox=(w, s, e, n),
            borough_code=code,
        )  # fmt: skip
        for code, name, x, y, w, s, e, n in await cur.fetchall()
    ]


# Both conditions match the partial indexes of migration 0017, so the planner ORs two index scans.
_ASSETS_SQL = """
SELECT a.id, a.kind, a.subtype, a.source_id, a.name, a.borough_code, b.name,
       ST_X(t.p), ST_Y(t.p), ST_XMin(t.e), ST_YMin(t.e), ST_XMax(t.e), ST_YMax(t.e), ST_Dimension(a.geom)
FROM assets a
LEFT JOIN boroughs b ON b.code = a.borough_code
CROSS JOIN LATERAL (SELECT ST_Transform(ST_PointOnSurface(a.geom), 4326) AS p,
                           ST_Transform(a.geom, 4326)::box2d AS e) t
WHERE a.retired_at IS NULL
  AND ((lower(a.source_id) ~>=~ %(lo)s AND lower(a.source_id) ~<~ %(hi)s)
       OR (%(words)s::text IS NOT NULL AND a.name IS NOT NULL
           AND to_tsvector('simple', a.name) @@ to_tsquery('simple', %(words)s)))
ORDER BY lower(a.source_id) <> %(lo)s, NOT (lower(a.source_id) ~>=~ %(lo)s AND lower(a.source_id) ~<~ %(hi)s),
         a.name, a.id
LIMIT %(limit)s
"""


def name_query(text: str) -> str | None:
    """A ``to_tsquery`` of every word of ``text`` as a prefix (``'camden:* & lib:*'``); None for no word.

    Words are letters and digits only, so nothing of ``text`` reaches the query syntax.
    """
    words = re.findall(r"[^\W_]+", text.lower())[:6]
    return " & ".join(f"{w}:*" for w in words) or None


async def asset_places(conn: psycopg.AsyncConnection[Any], text: str, limit: int) -> list[Place]:
    """Live assets whose source id starts with ``text`` (any case) or whose name has its words."""
    lo = text.lower()
    hi = lo[:-1] + chr(ord(lo[-1]) + 1)
    cur = await conn.execute(_ASSETS_SQL, {"lo": lo, "hi": hi, "words": name_query(text), "limit": limit})
    subtypes = load_model().subtypes
    found = []
    for row in await cur.fetchall():
        asset_id, kind, subtype, source_id, name, borough, borough_name, x, y, w, s, e, n, dim = row
        what = subtypes.get(kind, {}).get(subtype, subtype) or KIND_LABELS.get(kind, kind)
        detail = f"{KIND_LABELS.get(kind, kind)}: {what.split(' (')[0]}, {borough_name or borough}"
        found.append(
            Place(
                kind="asset",
                id=str(asset_id),
                label=name or source_id,
                detail=f"{detail} · {source_id}" if name else detail,
                lon=x,
                lat=y,
                bbox=(w, s, e, n) if dim else None,
                borough_code=borough,
                layer=KIND_LAYERS.get(kind),
            )  # fmt: skip
        )
    return found


_PROJECTS_SQL = """
SELECT p.id, p.title, p.organisation, p.placement, p.borough_code, ST_X(t.p), ST_Y(t.p)
FROM pipeline_features p
CROSS JOIN LATERAL (SELECT ST_Transform(ST_PointOnSurface(p.geom), 4326) AS p) t
WHERE p.title ILIKE '%%' || %(needle)s || '%%'
ORDER BY NOT p.title ILIKE %(needle)s || '%%', p.title, p.id
LIMIT %(limit)s
"""


async def project_places(conn: psycopg.AsyncConnection[Any], text: str, limit: int) -> list[Place]:
    """Pipeline projects drawn on the map whose title holds ``text``."""
    needle = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    cur = await conn.execute(_PROJECTS_SQL, {"needle": needle, "limit": limit})
    return [
        Place(
            kind="project",
            id=str(pid),
            label=title,
            detail=f"Pipeline project, {organisation}"
            + (" (placed in its borough)" if placement == "borough" else ""),
            lon=x,
            lat=y,
            borough_code=borough,
            layer="pipeline_projects",
        )  # fmt: skip
        for pid, title, organisation, placement, borough, x, y in await cur.fetchall()
    ]


async def search(conn: psycopg.AsyncConnection[Any], q: str, limit: int = 10) -> list[Place]:
    """Places matching ``q``, best first: a postcode, boroughs, wards, projects and assets.

    Parameters
    ----------
    conn
        A connection to the project's database (boroughs, assets and projects are read there).
    q
        What a person typed: a postcode ("NW1 2DB", "nw12db", a district "NW1"), a borough or ward
        name, an asset's source id (its start) or words of its name, a Pipeline project's title.
    limit
        Most places returned (1 to :data:`MAX_LIMIT`).

    Returns
    -------
    list of Place
        Postcodes first when ``q`` is one, then boroughs, wards, projects and assets.

    Raises
    ------
    InvalidParameter
        ``q`` is shorter than 2 or longer than :data:`MAX_QUERY` characters, or ``limit`` is out of range.

    Examples
    --------
    >>> [p.label for p in await search(conn, "NW1 2DB")]  # doctest: +SKIP
    ['NW1 2DB']

    Notes
    -----
    Postcodes and wards are answered from memory (the first search of a process reads the files,
    about 0.6 s); the three SQL searches use indexes and take a few milliseconds each.
    """
    text = clean_query(q)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit: give 1 to {MAX_LIMIT}")
    cur = await conn.execute(b"SELECT code, name FROM boroughs")
    names: dict[str, str] = dict(await cur.fetchall())
    found = postcode_places(text, limit, names)
    if found and found[0].kind == "postcode" and FULL_POSTCODE.match(text.upper()):
        return found
    found += await borough_places(conn, text, limit)
    found += ward_places(text, limit)
    found += await project_places(conn, text, limit)
    found += await asset_places(conn, text, limit)
    return _interleave(found, limit)


def _interleave(found: list[Place], limit: int) -> list[Place]:
    """At most ``limit`` places, every kind found represented before any kind fills the list."""
    by_kind: dict[str, list[Place]] = {}
    for place in found:
        by_kind.setdefault(place.kind, []).append(place)
    out: list[Place] = []
    while len(out) < limit and any(by_kind.values()):
        for places in by_kind.values():
            if places and len(out) < limit:
                out.append(places.pop(0))
    order = {kind: n for n, kind in enumerate(by_kind)}
    return sorted(out, key=lambda p: order[p.kind])


def nearest(lon: float, lat: float) -> dict[str, Any]:
    """The postcode nearest to a WGS84 point, and the ward and borough the point is in.

    Raises :class:`InvalidParameter` for a point outside London's box (and well beyond it).
    """
    if not (-0.6 <= lon <= 0.4 and 51.25 <= lat <= 51.75):
        raise InvalidParameter("lon, lat: the point is not in London (-0.6..0.4, 51.25..51.75)")
    x, y = transformer(4326, 27700).transform(lon, lat)
    index = postcodes()
    i, distance = index.nearest(x, y)
    ward_index = wards()
    ward = ward_index.at(lon, lat)
    return {
        "postcode": str(index.codes[i]),
        "distance_m": round(distance, 1),
        "lon": round(float(index.lon[i]), 6),
        "lat": round(float(index.lat[i]), 6),
        "borough_code": ward_index.boroughs[ward] if ward is not None else str(index.borough[i]) or None,
        "ward_code": ward_index.codes[ward] if ward is not None else None,
        "ward": ward_index.names[ward] if ward is not None else None,
    }
