"""The London demo: real boroughs and TfL bus stops, plus clearly labelled synthetic assets.

Synthetic assets are deterministic (one seed) and spread the way real ones are: lamp posts
and other street furniture around the real postcode centroids, public buildings near
them, and duct routes that follow chains of neighbouring postcodes inside one borough
rather than straight lines across parks and the Thames. Every synthetic row has
``provenance = 'synthetic'`` and belongs to a load marked ``synthetic``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg.types.json import Jsonb
from scipy.spatial import cKDTree

from geo.access.audit import record
from geo.access.principals import Principal
from geo.core.errors import Conflict
from geo.core.progress import Progress, silent
from geo.core.settings import DATA_DIR
from geo.layers.collections import COLLECTIONS
from geo.layers.tiles import refresh_summaries
from geo.reference.boroughs import borough_frame, council_name, load_boroughs

POSTCODES_FILE = DATA_DIR / "london_postcodes_codepoint_2014.csv"
BUS_STOPS_FILE = DATA_DIR / "tfl_bus_stops.csv"
SEED = 20_261_126


@dataclass(frozen=True)
class Scale:
    """How much synthetic data to make."""

    lamp_posts_per_postcode: float
    other_furniture_per_postcode: float
    buildings_per_postcode: float
    duct_km: float


SCALES = {
    "small": Scale(0.05, 0.01, 0.005, 60),
    "default": Scale(0.3, 0.06, 0.02, 600),
    # At least 500,000 street-furniture points and 5,000 km of duct, for benchmarks.
    "london": Scale(2.6, 0.3, 0.05, 5_200),
}

OTHER_FURNITURE = {
    "cctv_column": 0.22,
    "traffic_signal": 0.2,
    "street_cabinet": 0.25,
    "access_chamber": 0.15,
    "bus_shelter": 0.1,
    "feeder_pillar": 0.08,
}
BUILDINGS = {
    "housing_block": 0.4,
    "school": 0.18,
    "office": 0.08,
    "library": 0.06,
    "health_centre": 0.06,
    "community_centre": 0.06,
    "leisure_centre": 0.04,
    "depot": 0.04,
    "town_hall": 0.02,
    "fire_station": 0.03,
    "police_station": 0.03,
}
STATUS_WEIGHTS = {
    "in_service": 0.82,
    "installed": 0.05,
    "out_of_commission": 0.04,
    "proposed": 0.04,
    "pending_removal": 0.03,
    "unfit_for_service": 0.02,
}

COLUMNS = (
    "borough_code", "kind", "subtype", "source_id", "name", "owner", "status", "height_m",
    "power_available", "power_source", "duct_diameter_mm", "duct_spare_capacity_pct", "rooftop_access",
    "listed_building", "conservation_area", "positional_accuracy_m", "survey_quality", "last_surveyed",
    "provenance", "load_id", "extra", "geom", "changed_by",
)  # fmt: skip
COPY_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "float8",
    "bool", "text", "float8", "float8", "bool",
    "bool", "bool", "float8", "text", "date",
    "text", "int8", "jsonb", "bytea", "text",
)  # fmt: skip


class DemoAlreadyLoaded(Conflict):
    """The database already holds assets; the demo fills only an empty one."""


def read_postcodes() -> pd.DataFrame:
    """The shipped 2014 postcode centroids (EPSG:27700)."""
    return pd.read_csv(POSTCODES_FILE, usecols=["POSTCODE", "EASTING", "NORTHING", "LAD_GSS"])


def _choice(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _dates(rng: np.random.Generator, n: int, start: dt.date, end: dt.date, null_share: float) -> list[Any]:
    days = rng.integers(0, (end - start).days, size=n)
    nulls = rng.random(n) < null_share
    return [None if z else start + dt.timedelta(days=int(d)) for d, z in zip(days, nulls, strict=True)]


def _assign_boroughs(boroughs: Any, geoms: np.ndarray) -> np.ndarray:
    """The code of the borough containing each geometry (None when in none)."""
    tree = shapely.STRtree(boroughs.geometry.values)
    geom_idx, borough_idx = tree.query(geoms, predicate="within")
    codes = np.full(len(geoms), None, dtype=object)
    codes[geom_idx] = boroughs["code"].values[borough_idx]
    return codes


def _points_near_postcodes(
    rng: np.random.Generator, postcodes: pd.DataFrame, per_postcode: float, spread_m: float
) -> np.ndarray:
    counts = rng.poisson(per_postcode, size=len(postcodes))
    idx = np.repeat(np.arange(len(postcodes)), counts)
    x = postcodes["EASTING"].to_numpy(float)[idx] + rng.normal(0, spread_m, len(idx))
    y = postcodes["NORTHING"].to_numpy(float)[idx] + rng.normal(0, spread_m, len(idx))
    return np.round(np.column_stack([x, y]), 1)


def _frame(base: dict[str, Any], n: int) -> pd.DataFrame:
    return pd.DataFrame({c: base.get(c, [None] * n) for c in COLUMNS if c not in ("load_id", "changed_by")})


def _street_furniture(
    rng: np.random.Generator, postcodes: pd.DataFrame, boroughs: Any, scale: Scale
) -> pd.DataFrame:
    lamps = _points_near_postcodes(rng, postcodes, scale.lamp_posts_per_postcode, 45)
    other = _points_near_postcodes(rng, postcodes, scale.other_furniture_per_postcode, 60)
    xy = np.vstack([lamps, other])
    subtype = np.concatenate(
        [np.full(len(lamps), "lamp_post", dtype=object), _choice(rng, OTHER_FURNITURE, len(other))]
    )
    geoms = shapely.points(xy)
    codes = _assign_boroughs(boroughs, geoms)
    keep = codes != None  # noqa: E711 (element-wise)
    geoms, subtype, codes = geoms[keep], subtype[keep], codes[keep]
    n = len(geoms)
    is_lamp = subtype == "lamp_post"
    heights = np.where(
        is_lamp,
        rng.choice([5.0, 6.0, 8.0, 10.0, 12.0], size=n, p=[0.15, 0.3, 0.3, 0.2, 0.05]),
        np.where(subtype == "street_cabinet", 1.4, np.round(rng.uniform(2.5, 7.0, n), 1)),
    )
    powered = np.isin(
        subtype, ["lamp_post", "cctv_column", "traffic_signal", "street_cabinet", "feeder_pillar"]
    )
    power_source = np.where(is_lamp, "unmetered_supply", np.where(powered, "metered_supply", "none"))
    metals = _choice(rng, {"steel": 0.6, "aluminium": 0.25, "concrete": 0.15}, n)
    material = [m if lamp else None for m, lamp in zip(metals, is_lamp, strict=True)]
    owner = [
        council_name(c, boroughs_name)
        for c, boroughs_name in zip(codes, _names(boroughs, codes), strict=True)
    ]
    base = {
        "borough_code": codes,
        "kind": "street_furniture",
        "subtype": subtype,
        "source_id": [f"SYN-SF-{i:07d}" for i in range(n)],
        "name": None,
        "owner": owner,
        "status": _choice(rng, STATUS_WEIGHTS, n),
        "height_m": heights,
        "power_available": powered,
        "power_source": power_source,
        "listed_building": False,
        "conservation_area": rng.random(n) < 0.12,
        "positional_accuracy_m": np.round(rng.uniform(0.5, 5.0, n), 1),
        "survey_quality": _choice(rng, {"QL-D": 0.7, "QL-C": 0.3}, n),
        "last_surveyed": _dates(rng, n, dt.date(2014, 1, 1), dt.date(2026, 6, 30), 0.2),
        "provenance": "synthetic",
        "extra": [{"material": m} if m else {} for m in material],
        "geom": geoms,
    }
    return _frame(base, n)


def _names(boroughs: Any, codes: np.ndarray) -> np.ndarray:
    lookup = dict(zip(boroughs["code"], boroughs["name"], strict=True))
    return np.array([lookup[c] for c in codes], dtype=object)


def _public_buildings(
    rng: np.random.Generator, postcodes: pd.DataFrame, boroughs: Any, scale: Scale
) -> pd.DataFrame:
    centres = _points_near_postcodes(rng, postcodes, scale.buildings_per_postcode, 30)
    n0 = len(centres)
    width = rng.uniform(12, 45, n0)
    depth = rng.uniform(10, 30, n0)
    angle = rng.uniform(0, np.pi, n0)
    # Rotated rectangles as footprints.
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    dx = corners[None, :, 0] * width[:, None]
    dy = corners[None, :, 1] * depth[:, None]
    ring_x = centres[:, 0:1] + dx * cos - dy * sin
    ring_y = centres[:, 1:2] + dx * sin + dy * cos
    coords = np.round(np.stack([ring_x, ring_y], axis=-1), 1)
    geoms = shapely.polygons(coords)
    codes = _assign_boroughs(boroughs, geoms)
    keep = codes != None  # noqa: E711
    geoms, codes = geoms[keep], codes[keep]
    n = len(geoms)
    subtype = _choice(rng, BUILDINGS, n)
    names = _names(boroughs, codes)
    storeys = np.where(subtype == "housing_block", rng.integers(3, 25, n), rng.integers(1, 6, n))
    base = {
        "borough_code": codes,
        "kind": "public_building",
        "subtype": subtype,
        "source_id": [f"SYN-PB-{i:06d}" for i in range(n)],
        "name": [
            f"{s.replace('_', ' ').title()} {i % 997 + 1} ({b})"
            for i, (s, b) in enumerate(zip(subtype, names, strict=True))
        ],
        "owner": [council_name(c, b) for c, b in zip(codes, names, strict=True)],
        "status": _choice(rng, {"in_service": 0.9, "out_of_commission": 0.05, "proposed": 0.05}, n),
        "height_m": np.round(storeys * 3.1 + rng.uniform(0, 2, n), 1),
        "power_available": True,
        "power_source": "building_supply",
        "rooftop_access": rng.random(n) < 0.55,
        "listed_building": rng.random(n) < 0.06,
        "conservation_area": rng.random(n) < 0.2,
        "positional_accuracy_m": 1.0,
        "survey_quality": "QL-D",
        "last_surveyed": _dates(rng, n, dt.date(2016, 1, 1), dt.date(2026, 6, 30), 0.3),
        "provenance": "synthetic",
        "extra": [{"storeys": int(s)} for s in storeys],
        "geom": geoms,
    }
    return _frame(base, n)


def _ducts(rng: np.random.Generator, postcodes: pd.DataFrame, boroughs: Any, scale: Scale) -> pd.DataFrame:
    """Random walks over neighbouring postcodes of one borough, until the length is reached."""
    xy = postcodes[["EASTING", "NORTHING"]].to_numpy(float)
    lad = postcodes["LAD_GSS"].to_numpy(object)
    tree = cKDTree(xy)
    dist, nbr = tree.query(xy, k=9)
    # A step goes to a neighbour of the same borough at most 220 m away (streets, not parks).
    ok = (dist > 5) & (dist <= 220) & (lad[np.minimum(nbr, len(xy) - 1)] == lad[:, None])
    outlines = dict(zip(boroughs["code"], shapely.buffer(boroughs.geometry.values, 25), strict=True))
    for g in outlines.values():
        shapely.prepare(g)
    # Every borough gets duct in proportion to its postcodes (so to its streets).
    share = pd.Series(lad).value_counts(normalize=True)
    lines, codes = [], []
    for code in sorted(outlines):
        target_m = scale.duct_km * 1000 * share.get(code, 0)
        total = 0.0
        for start in rng.permutation(np.flatnonzero(lad == code)):
            if total >= target_m:
                break
            path = [start]
            for _ in range(int(rng.integers(4, 25))):
                options = nbr[path[-1]][ok[path[-1]]]
                options = options[~np.isin(options, path)]
                if len(options) == 0:
                    break
                path.append(int(options[rng.integers(0, min(3, len(options)))]))
            if len(path) < 3:
                continue
            line = shapely.LineString(xy[path])
            if not outlines[code].contains(line):
                continue
            lines.append(line)
            codes.append(code)
            total += line.length
    n = len(lines)
    codes_arr = np.array(codes, dtype=object)
    names = _names(boroughs, codes_arr)
    base = {
        "borough_code": codes_arr,
        "kind": "duct",
        "subtype": _choice(rng, {"duct": 0.85, "sub_duct": 0.1, "trough": 0.05}, n),
        "source_id": [f"SYN-DU-{i:06d}" for i in range(n)],
        "owner": [council_name(c, b) for c, b in zip(codes_arr, names, strict=True)],
        "status": _choice(rng, {"in_service": 0.75, "installed": 0.1, "proposed": 0.1, "abandoned": 0.05}, n),
        "duct_diameter_mm": rng.choice([54.0, 90.0, 100.0, 110.0], size=n),
        "duct_spare_capacity_pct": np.round(rng.uniform(0, 80, n)),
        "positional_accuracy_m": np.round(rng.uniform(0.3, 2.0, n), 1),
        "survey_quality": _choice(rng, {"QL-B": 0.4, "QL-C": 0.3, "QL-D": 0.3}, n),
        "last_surveyed": _dates(rng, n, dt.date(2012, 1, 1), dt.date(2026, 6, 30), 0.25),
        "provenance": "synthetic",
        "extra": [{} for _ in range(n)],
        "geom": np.array(lines, dtype=object),
    }
    return _frame(base, n)


def _bus_stops(boroughs: Any) -> pd.DataFrame:
    """The real TfL bus stops inside London, as street furniture."""
    raw = pd.read_csv(BUS_STOPS_FILE, dtype=str, keep_default_na=False)
    raw = raw[raw["BOROUGH_GSS"] != ""]
    x = raw["Location_Easting"].astype(float).to_numpy()
    y = raw["Location_Northing"].astype(float).to_numpy()
    n = len(raw)
    extra_cols = ["Bus_Stop_Code", "Naptan_Atco", "Heading", "Stop_Area", "Virtual_Bus_Stop"]
    extras = raw[extra_cols].to_dict("records")
    base = {
        "borough_code": raw["BOROUGH_GSS"].to_numpy(object),
        "kind": "street_furniture",
        "subtype": "bus_stop",
        "source_id": ("TFL-" + raw["Stop_Code_LBSL"]).to_numpy(object),
        "name": raw["Stop_Name"].to_numpy(object),
        "owner": "Transport for London",
        "status": "in_service",
        "provenance": "open_data",
        "extra": [{k: v for k, v in e.items() if v != ""} for e in extras],
        "geom": shapely.points(x, y),
    }
    return _frame(base, n)


def copy_assets(conn: psycopg.Connection[Any], frame: pd.DataFrame, load_id: int, changed_by: str) -> int:
    """Binary-COPY a frame with the model's columns into ``assets`` (new rows only)."""
    n = len(frame)
    columns: dict[str, Any] = {}
    for name in COLUMNS:
        if name == "geom":
            geoms = shapely.set_srid(frame["geom"].to_numpy(), 27700)
            columns[name] = shapely.to_wkb(geoms, include_srid=True)
        elif name == "extra":
            columns[name] = [Jsonb(e or {}) for e in frame["extra"]]
        elif name == "load_id":
            columns[name] = [load_id] * n
        elif name == "changed_by":
            columns[name] = [changed_by] * n
        else:
            values = frame[name].astype(object)
            columns[name] = values.where(values.notna(), None).tolist()
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY assets ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(list(COPY_TYPES))
        for row in zip(*columns.values(), strict=True):
            copy.write_row(row)
    return n


def _new_load(
    conn: psycopg.Connection[Any], description: str, synthetic: bool, details: dict[str, Any]
) -> int:
    row = conn.execute(
        """INSERT INTO loads (source, description, synthetic, created_by, details)
           VALUES ('demo', %s, %s, 'connectivity demo load', %s) RETURNING id""",
        [description, synthetic, Jsonb(details)],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _refuse_if_loaded(conn: psycopg.Connection[Any]) -> None:
    """Raise :class:`DemoAlreadyLoaded` when the database holds any asset."""
    existing = conn.execute("SELECT count(*) FROM assets").fetchone()
    if existing and existing[0]:
        raise DemoAlreadyLoaded(
            f"the database already holds {existing[0]} assets; the demo loads only into an empty database"
        )


def _copy_demo_assets(
    conn: psycopg.Connection[Any], scale: str, progress: Progress, steps: int
) -> tuple[dict[str, int], int, int]:
    """Copy the TfL bus stops and the synthetic assets in: the rows per kind and the two loads' ids."""
    boroughs = borough_frame(conn)
    rng = np.random.default_rng(SEED)
    postcodes = read_postcodes()
    params = SCALES[scale]
    progress("TfL bus stops", 1, steps)
    tfl_load = _new_load(conn, "TfL bus stops (real open data; Powered by TfL Open Data)", False, {})
    counts = {"street_furniture": copy_assets(conn, _bus_stops(boroughs), tfl_load, "demo: TfL open data")}
    synthetic_load = _new_load(
        conn,
        f"Synthetic demonstration assets (scale {scale}, seed {SEED}): not real assets",
        True,
        {"scale": scale, "seed": SEED},
    )
    by = "demo: synthetic"
    progress("synthetic street furniture", 2, steps)
    counts["street_furniture"] += copy_assets(
        conn, _street_furniture(rng, postcodes, boroughs, params), synthetic_load, by
    )
    progress("synthetic public buildings", 3, steps)
    counts["public_building"] = copy_assets(
        conn, _public_buildings(rng, postcodes, boroughs, params), synthetic_load, by
    )
    progress("synthetic duct routes", 4, steps)
    counts["duct"] = copy_assets(conn, _ducts(rng, postcodes, boroughs, params), synthetic_load, by)
    return counts, tfl_load, synthetic_load


def load_demo(
    conn: psycopg.Connection[Any],
    scale: str = "default",
    progress: Progress = silent,
    raw_min_zoom: int = 13,
    actor: Principal | str = "system",
) -> dict[str, int]:
    """Fill an empty database with the London demo, in one transaction.

    Parameters
    ----------
    conn
        A connection to a migrated database that holds no assets yet.
    scale
        ``small`` (tests), ``default`` (a London-wide picture in seconds) or ``london``
        (at least 500,000 street-furniture points and 5,000 km of duct, for benchmarks).
    progress
        Called with ``(step, done, total)`` as the steps finish.
    raw_min_zoom
        The tile zoom from which raw features are served; summaries are built below it.
    actor
        Who loads it, for the audit trail.

    Returns
    -------
    dict
        Rows loaded per kind.

    Examples
    --------
    >>> load_demo(conn, "small")  # doctest: +SKIP
    {'street_furniture': 28123, 'public_building': 887, 'duct': 245}
    """
    if scale not in SCALES:
        raise ValueError(f"unknown demo scale {scale!r}; choose one of {', '.join(SCALES)}")
    steps = 6
    with conn.transaction():
        progress("boroughs", 0, steps)
        load_boroughs(conn)
        _refuse_if_loaded(conn)
        counts, tfl_load, synthetic_load = _copy_demo_assets(conn, scale, progress, steps)
        for load_id in (tfl_load, synthetic_load):
            conn.execute("UPDATE loads SET finished_at = now() WHERE id = %s", [load_id])
        progress("tile summaries", 5, steps)
        refresh_summaries(conn, list(COLLECTIONS.values()), raw_min_zoom)
        record(
            conn,
            actor,
            "demo.load",
            "load",
            synthetic_load,
            {"scale": scale, "counts": counts, "tfl_load": tfl_load},
        )
    conn.execute("ANALYZE assets")
    progress("done", steps, steps)
    return counts
