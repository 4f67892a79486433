"""Per-row validation of mapped upload batches, vectorised over each batch.

:class:`BatchValidator` is built once per upload (it remembers the ``source_id`` values of earlier
batches, so duplicates are found across the whole file) and turns each batch into a clean Arrow
table of valid rows plus one :class:`~geo.core.row_errors.RowError` per problem.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo.core.row_errors import RowError
from geo.reference.boroughs import check_code, read_boundaries
from geo.reference.model import load_model
from geo.uploads.batches import PointColumn
from geo.uploads.mapping import MappedBatch, Mapping

POINT, LINESTRING, POLYGON, MULTIPOINT, MULTILINESTRING, MULTIPOLYGON, COLLECTION = 0, 1, 3, 4, 5, 6, 7
TYPE_IDS = {
    "Point": POINT,
    "LineString": LINESTRING,
    "Polygon": POLYGON,
    "MultiLineString": MULTILINESTRING,
    "MultiPolygon": MULTIPOLYGON,
    "MultiPoint": MULTIPOINT,
}
MAX_AREA_CHANGE = 0.01  # a make_valid repair that changes the area by more than 1 % is not safe
FAR_OUTSIDE_M = 20_000

#: The Arrow schema of the clean rows, before the attribute fields of the kind.
BASE_COLUMNS = ("row", "borough_code", "kind")


@dataclass
class ValidatedBatch:
    """Valid rows as an Arrow table, the errors of the others, and the geometries repaired.

    ``table`` columns: ``row`` (int64, 1-based), ``borough_code``, ``kind``, one column per model
    attribute field of the kind (string, float64, bool or date32), ``extra`` (JSON text) and
    ``geom`` (WKB, EPSG:27700, 2D).
    """

    table: pa.Table
    errors: list[RowError]
    repairs: list[RowError]
    rows_in: int


@cache
def _borough(code: str, tolerance_m: float) -> tuple[str, shapely.Geometry, shapely.Geometry, float]:
    """``(name, boundary, prepared boundary buffered by the tolerance, area)``, cached per borough."""
    row = read_boundaries(code).iloc[0]
    boundary = row.geometry
    buffered = shapely.buffer(boundary, tolerance_m) if tolerance_m > 0 else boundary
    shapely.prepare(buffered)
    return str(row["name"]), boundary, buffered, float(boundary.area)


class BatchValidator:
    """Validates the batches of one upload for one borough and kind.

    Parameters
    ----------
    borough_code : GSS code of the uploading borough.
    mapping : the column mapping (gives the kind and the source column names for messages).
    tolerance_m : how far outside the borough boundary an asset may lie, in metres.

    Notes
    -----
    Performance: everything is vectorised per batch with numpy/pandas/shapely; per-row Python runs
    only to build the messages of bad rows. 500k points validate in well under a second.
    """

    def __init__(self, borough_code: str, mapping: Mapping, *, tolerance_m: float = 50.0) -> None:
        self.borough_code = check_code(borough_code)
        self.mapping = mapping
        self.kind = mapping.kind
        self.tolerance_m = float(tolerance_m)
        self.model = load_model()
        self.name, self.boundary, self.buffered, self.area = _borough(self.borough_code, self.tolerance_m)
        allowed = self.model.kinds[self.kind]["geometry"]
        self.allowed_types = {TYPE_IDS[t] for t in allowed}
        self.allowed_text = ", ".join(allowed)
        self.fields = mapping.fields()
        self.source_column = {f: c for c, f in mapping.columns.items()}
        # source_id values of earlier batches and their rows (duplicates are found across the file).
        # source_id -> row of its first occurrence, over the batches validated so far (a dict is
        # cheaper than Arrow's set lookup, which hashes every earlier id again for each batch).
        self._seen: dict[str, int] = {}

    def validate(
        self,
        rows: np.ndarray,
        geometry: np.ndarray | None,
        mapped: MappedBatch,
        failed: np.ndarray | None = None,
        points: PointColumn | None = None,
    ) -> ValidatedBatch:
        """Check one batch: geometry, borough, keys, vocabularies, types and ranges.

        ``rows`` are 1-based row numbers, ``geometry`` shapely geometries in EPSG:27700 (2D),
        ``failed`` marks rows already reported by the reader (they are left out, not re-reported).
        ``points`` (all geometries finite 2D points, see :func:`geo.uploads.batches.point_column`) lets
        the geometry checks run on the coordinates alone; ``geometry`` may then be None.
        """
        fast = points is not None and POINT in self.allowed_types and (failed is None or not failed.any())
        if geometry is None and not fast:
            assert points is not None
            geometry = shapely.points(points.x, points.y)
        n = len(rows)
        values = mapped.values
        bad = np.zeros(n, dtype=bool) if failed is None else failed.copy()
        errors: list[RowError] = []
        sid = values["source_id"]
        sid_text = sid.astype(object).where(sid.notna(), None).to_numpy()

        def report(mask: np.ndarray, field: str | None, message: Any, raw: pd.Series | None = None) -> None:
            """One error per row in ``mask``; ``message`` is text or a function of the row position."""
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                return
            bad[idx] = True
            column = self.source_column.get(field, field) if field else None
            for i in idx:
                value = None if raw is None or pd.isna(raw.iloc[i]) else str(raw.iloc[i])
                text = message(i) if callable(message) else message
                errors.append(RowError(int(rows[i]), sid_text[i], column, value, text))

        self._check_keys(sid, rows, report)
        self._check_values(mapped, report)
        if fast:
            assert points is not None
            self._check_points(points, bad, report)
            repairs: list[RowError] = []
        else:
            assert geometry is not None
            geometry, repairs = self._check_geometry(rows, geometry, sid_text, bad, report)

        # Errors carry the row's geometry (when there is one), for errors.geojson.
        if errors:
            positions = {int(r): i for i, r in enumerate(rows)}
            idx = np.array([positions[e.row] for e in errors])
            if fast:
                assert points is not None
                wkb = points.wkb.take(pa.array(idx, pa.int64())).to_pylist()
            else:
                assert geometry is not None  # set above whenever the batch is not fast
                wkb = shapely.to_wkb(geometry[idx])
            for e, w in zip(errors, wkb, strict=True):
                e.geometry = w
        errors.sort(key=lambda e: e.row)
        good = ~bad
        return ValidatedBatch(
            self._table(rows, geometry, mapped, good, points if fast else None), errors, repairs, n
        )

    # ----------------------------------------------------------------------------------------- keys

    def _check_keys(self, sid: pd.Series, rows: np.ndarray, report: Any) -> None:
        """Missing ``source_id`` and duplicates (in the batch, by Arrow hashing, or in earlier batches)."""
        missing = sid.isna().to_numpy()
        report(missing, "source_id", "source_id is missing: every asset needs the borough's own identifier")
        present = ~missing
        if isinstance(sid.dtype, pd.StringDtype):
            ids = pa.array(sid.array).cast(pa.string())
        else:
            ids = pa.array(
                sid.astype(object).where(sid.notna(), None).to_numpy(), pa.string(), from_pandas=True
            )
        encoded = ids.dictionary_encode()
        code = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        uniques, first_pos = np.unique(code, return_index=True)
        in_batch = np.ones(len(code), dtype=bool)
        in_batch[first_pos] = False
        in_batch &= present
        id_list = ids.to_pylist()
        seen = self._seen
        if seen.keys().isdisjoint(id_list):  # the usual case, checked without a Python loop
            earlier_row = np.full(len(id_list), -1, dtype=np.int64)
        else:
            earlier_row = np.array([-1 if i is None else seen.get(i, -1) for i in id_list], dtype=np.int64)
        earlier = (earlier_row >= 0) & present
        dup = in_batch | earlier
        if dup.any():
            first_by_code = np.zeros(len(encoded.dictionary), dtype=np.int64)
            first_by_code[uniques[uniques >= 0]] = first_pos[uniques >= 0]

            def first_row(i: int) -> int:
                if earlier_row[i] >= 0:
                    return int(earlier_row[i])
                return int(rows[first_by_code[code[i]]])

            report(
                dup,
                "source_id",
                lambda i: f"duplicate source_id {sid.iloc[i]!r}: row {first_row(i)} has it already",
                sid,
            )
        new = present & ~dup
        seen.update(zip(itertools.compress(id_list, new), rows[new].tolist(), strict=True))

    # --------------------------------------------------------------------------------------- values

    def _check_values(self, mapped: MappedBatch, report: Any) -> None:
        values, raw = mapped.values, mapped.raw
        for name in self.fields:
            spec = self.model.fields[name]
            value = values[name]
            source = raw[name] if name in raw else None
            if source is not None and spec.type not in ("text", "vocabulary"):
                # Only rows given in the file but missing after conversion can fail: test just those.
                failed = source.notna().to_numpy() & value.isna().to_numpy()
                if failed.any():
                    idx = np.flatnonzero(failed)
                    text = source.iloc[idx].astype("string").str.strip()
                    failed[idx] = (text != "").fillna(False).to_numpy(dtype=bool)
                expected = {
                    "number": "a number",
                    "integer": "a whole number",
                    "boolean": "yes/no (Y/N, Yes/No, True/False, 1/0)",
                    "date": "a date (dd/mm/yyyy or yyyy-mm-dd)",
                }.get(spec.type, spec.type)
                report(
                    failed,
                    name,
                    lambda i, n=name, e=expected, src=source: f"{n}: {src.iloc[i]!r} is not {e}",
                    source,
                )
            if spec.type == "vocabulary" and spec.vocabulary:
                codes = self.model.vocabulary(spec.vocabulary, self.kind if name == "subtype" else None)
                unknown = value.notna().to_numpy() & ~value.isin(codes).to_numpy()
                allowed = ", ".join(sorted(codes))
                report(
                    unknown,
                    name,
                    lambda i, n=name, a=allowed, v=value: (
                        f"{n}: {v.iloc[i]!r} is not a known {n}"
                        + (f" for {self.kind}" if n == "subtype" else "")
                        + f"; use one of {a}, or map it in the mapping file's values"
                    ),
                    source if source is not None else value,
                )
            if spec.type in ("number", "integer"):
                out = np.zeros(len(value), dtype=bool)
                v = value.to_numpy(dtype=float, na_value=np.nan)
                if spec.min is not None:
                    out |= v < spec.min
                if spec.max is not None:
                    out |= v > spec.max
                if spec.type == "integer":
                    out |= np.isfinite(v) & (v != np.floor(v))
                report(
                    out,
                    name,
                    lambda i, n=name, s=spec, v=value: f"{n}: {v.iloc[i]:g} is outside {s.min:g}..{s.max:g}",
                    source if source is not None else value,
                )
            if spec.required and name != "source_id":
                report(value.isna().to_numpy(), name, f"{name} is missing", source)

    # ------------------------------------------------------------------------------------- geometry

    def _check_geometry(
        self, rows: np.ndarray, geometry: np.ndarray, sid_text: np.ndarray, bad: np.ndarray, report: Any
    ) -> tuple[np.ndarray, list[RowError]]:
        geometry = np.asarray(geometry, dtype=object).copy()
        already = bad.copy()  # rows the reader reported: no second geometry error
        missing = (shapely.is_missing(geometry) | shapely.is_empty(geometry)) & ~already
        report(missing, "geometry", "geometry is missing or empty")
        skip = missing | already
        type_id = shapely.get_type_id(geometry)

        # A one-part MultiPoint is a Point (some GIS exports write every point as MultiPoint).
        single = (type_id == MULTIPOINT) & (shapely.get_num_geometries(geometry) == 1) & ~skip
        if single.any() and POINT in self.allowed_types:
            geometry[single] = shapely.get_geometry(geometry[single], 0)
            type_id[single] = POINT
        mixed = (type_id == COLLECTION) & ~skip
        report(
            mixed,
            "geometry",
            f"mixed geometry types in one feature (GeometryCollection); use {self.allowed_text}",
        )
        wrong = ~np.isin(type_id, list(self.allowed_types)) & ~skip & ~mixed
        report(
            wrong,
            "geometry",
            lambda i: f"{geometry[int(i)].geom_type} is not allowed for {self.kind}; use {self.allowed_text}",
        )
        skip |= mixed | wrong

        repairs: list[RowError] = []
        is_point = (type_id == POINT) & ~skip
        others = ~is_point & ~skip
        if others.any():
            invalid = np.zeros(len(geometry), dtype=bool)
            invalid[others] = ~shapely.is_valid(geometry[others])
            if invalid.any():
                geometry, unsafe, repairs = self._repair(rows, geometry, invalid, sid_text)
                reasons = {int(i): shapely.is_valid_reason(geometry[i]) for i in np.flatnonzero(unsafe)}
                report(
                    unsafe,
                    "geometry",
                    lambda i: f"invalid geometry ({reasons[int(i)]}) that cannot be repaired safely",
                )
                skip |= unsafe

        polygonal = np.isin(type_id, [POLYGON, MULTIPOLYGON]) & ~skip
        area = np.zeros(len(geometry))
        area[polygonal] = shapely.area(geometry[polygonal])
        huge = area > self.area
        report(
            huge,
            "geometry",
            lambda i: (
                f"polygon of {area[i] / 1e6:,.1f} km² is larger than the whole of {self.name} "
                f"({self.area / 1e6:,.1f} km²)"
            ),
        )
        skip |= huge

        inside = np.ones(len(geometry), dtype=bool)
        points = is_point & ~skip
        if points.any():
            inside[points] = shapely.contains_xy(
                self.buffered, shapely.get_x(geometry[points]), shapely.get_y(geometry[points])
            )
        rest = ~is_point & ~skip
        if rest.any():
            inside[rest] = shapely.covers(self.buffered, geometry[rest])
        outside = ~inside & ~skip
        if outside.any():
            distance = np.zeros(len(geometry))
            distance[outside] = shapely.distance(self.boundary, geometry[outside])

            report(outside, "geometry", lambda i: self._outside_message(distance[int(i)]))
        return geometry, repairs

    def _check_points(self, points: PointColumn, bad: np.ndarray, report: Any) -> None:
        """The geometry checks for a batch of finite 2D points: only the borough test can fail."""
        inside = shapely.contains_xy(self.buffered, points.x, points.y)
        outside = ~inside & ~bad
        if outside.any():
            distance = np.zeros(len(inside))
            idx = np.flatnonzero(outside)
            distance[idx] = shapely.distance(self.boundary, shapely.points(points.x[idx], points.y[idx]))
            report(outside, "geometry", lambda i: self._outside_message(distance[int(i)]))

    def _outside_message(self, d: float) -> str:
        text = f"outside {self.name} ({self.borough_code}): {d:,.0f} m beyond the boundary"
        text += f" (tolerance {self.tolerance_m:g} m)"
        if d > FAR_OUTSIDE_M:
            text += "; far outside London: check the coordinates and the CRS"
        return text

    def _repair(
        self, rows: np.ndarray, geometry: np.ndarray, invalid: np.ndarray, sid_text: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[RowError]]:
        """Repair invalid geometries with ``make_valid`` where the result keeps its type family and area."""
        idx = np.flatnonzero(invalid)
        before = geometry[idx]
        reasons = shapely.is_valid_reason(before)
        after = shapely.make_valid(before, method="structure", keep_collapsed=False)
        family_before = np.isin(shapely.get_type_id(before), [POLYGON, MULTIPOLYGON])
        family_after = np.isin(shapely.get_type_id(after), [POLYGON, MULTIPOLYGON])
        lines_before = np.isin(shapely.get_type_id(before), [LINESTRING, MULTILINESTRING])
        lines_after = np.isin(shapely.get_type_id(after), [LINESTRING, MULTILINESTRING])
        same_family = (family_before & family_after) | (lines_before & lines_after)
        a0, a1 = shapely.area(before), shapely.area(after)
        change = np.where(a0 > 0, np.abs(a1 - a0) / np.where(a0 > 0, a0, 1), np.where(a1 > 0, np.inf, 0.0))
        safe = same_family & ~shapely.is_empty(after) & (~family_before | (change < MAX_AREA_CHANGE))
        unsafe = np.zeros(len(geometry), dtype=bool)
        unsafe[idx[~safe]] = True
        geometry = geometry.copy()
        geometry[idx[safe]] = after[safe]
        repairs = [
            RowError(
                int(rows[i]),
                sid_text[i],
                "geometry",
                None,
                f"invalid geometry ({reason}) repaired with make_valid"
                + (f"; area changed {c * 100:.2f} %" if fam else ""),
                shapely.to_wkb(g),
            )
            for i, reason, c, fam, g, ok in zip(idx, reasons, change, family_before, after, safe, strict=True)
            if ok
        ]
        return geometry, unsafe, repairs

    # ---------------------------------------------------------------------------------------- table

    def _table(
        self,
        rows: np.ndarray,
        geometry: np.ndarray | None,
        mapped: MappedBatch,
        good: np.ndarray,
        points: PointColumn | None = None,
    ) -> pa.Table:
        idx = np.flatnonzero(good)
        n = len(idx)
        take = pa.array(idx, pa.int64())
        zeros = pa.array(np.zeros(n, dtype=np.int64))
        columns: dict[str, pa.Array] = {
            "row": pa.array(rows[idx], pa.int64()),
            "borough_code": pa.array([self.borough_code], pa.string()).take(zeros),
            "kind": pa.array([self.kind], pa.string()).take(zeros),
        }
        for name in self.fields:
            spec = self.model.fields[name]
            columns[name] = _arrow(mapped.values[name], spec.type, take)
        columns["extra"] = mapped.extra.take(take)
        if points is not None:
            columns["geom"] = points.wkb.take(take)
        else:
            assert geometry is not None
            columns["geom"] = pa.array(shapely.to_wkb(geometry[idx]), pa.binary())
        return pa.table(columns)


def output_schema(kind: str) -> pa.Schema:
    """The Arrow schema of :attr:`ValidatedBatch.table` for one kind."""
    model = load_model()
    types = {"number": pa.float64(), "integer": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}
    fields = [
        pa.field("row", pa.int64()),
        pa.field("borough_code", pa.string()),
        pa.field("kind", pa.string()),
    ]
    for f in model.attribute_fields():
        if kind in f.kinds:
            fields.append(pa.field(f.name, types.get(f.type, pa.string())))
    fields += [pa.field("extra", pa.string()), pa.field("geom", pa.binary())]
    return pa.schema(fields)


def _arrow(value: pd.Series, type_: str, take: pa.Array) -> pa.Array:
    """The rows ``take`` of a mapped column as an Arrow array of the output type (vectorised)."""
    if type_ in ("number", "integer"):
        return pa.array(value.to_numpy(dtype=float, na_value=np.nan), pa.float64(), from_pandas=True).take(
            take
        )
    if type_ == "boolean":
        return pa.array(value.astype("boolean"), pa.bool_(), from_pandas=True).take(take)
    if type_ == "date":
        return (
            pa.array(pd.to_datetime(value), pa.timestamp("ns"), from_pandas=True).take(take).cast(pa.date32())
        )
    if isinstance(value.dtype, pd.StringDtype):
        return pa.array(value.array).cast(pa.string()).take(take)
    return pa.array(value.astype(object).where(value.notna(), None), pa.string(), from_pandas=True).take(take)
