"""Converting a batch's source columns to the types of the model's fields, and the ``extra`` JSON.

Vectorised per column: with Arrow compute where the column arrives in the common types (text,
dates), with pandas otherwise; each distinct vocabulary value or date text is translated once.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.uploads.names import value_key

TRUE_VALUES = {"y", "yes", "true", "t", "1", "1.0"}
FALSE_VALUES = {"n", "no", "false", "f", "0", "0.0"}
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%y")
UNIT_SUFFIX = re.compile(r"\s*(m|mm|metres|meters|metre|meter|%)\s*$", re.IGNORECASE)


def _text(source: pd.Series) -> pd.Series:
    """Source values as trimmed text, empty text as missing."""
    if pd.api.types.is_float_dtype(source.dtype):
        # 1234.0 read from a float column is the identifier "1234".
        as_int = source.dropna()
        if (as_int == np.floor(as_int)).all():
            text = source.astype("Int64").astype("string")
            return text
    text = source.astype("string").str.strip()
    return text.mask(text == "")


def _string_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An Arrow string column as a pandas ``string`` Series (missing values are ``pd.NA``)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), dtype=pd.StringDtype("pyarrow"))


def convert_arrow(
    column: pa.ChunkedArray, type_: str, lookup: dict[str, str], default: Any
) -> tuple[pd.Series, pd.Series] | None:
    """``(raw, value)`` for the common typed cases, converted with Arrow compute; None for the others.

    Text and vocabulary columns that arrive as text, and dates that arrive as dates, take this
    path; the results are the same as :func:`convert` on the pandas column.
    """
    t = column.type
    if type_ in ("text", "vocabulary") and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        arr = column.combine_chunks()
        trimmed = pc.utf8_trim_whitespace(arr)
        out = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)
        if type_ == "vocabulary":
            # Translate each distinct value once: a column of 500k rows has a handful of values.
            encoded = out.dictionary_encode()
            codes = [lookup.get(value_key(u), u) for u in encoded.dictionary.to_pylist()]
            out = pa.array(codes, pa.string()).take(encoded.indices)
        if default is not None:
            out = pc.fill_null(out, pa.scalar(str(default), out.type))
        return _string_series(arr), _string_series(out)
    if type_ == "date" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        # Dates as text: parse each distinct text once (a column has a few thousand dates at most).
        arr = column.combine_chunks()
        encoded = arr.dictionary_encode()
        parsed = parse_dates(pd.Series(encoded.dictionary.to_pylist(), dtype=object)).to_numpy()
        parsed = np.append(parsed, np.datetime64("NaT", "ns"))
        index = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy()
        out = pd.Series(parsed[index], dtype="datetime64[ns]")
        if default is not None:
            out = out.fillna(pd.Timestamp(default))
        return _string_series(arr), out
    if type_ == "date" and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        if pa.types.is_timestamp(t) and t.tz is not None:
            return None  # local dates need the time zone: the pandas path
        arr = column.combine_chunks()
        stamps = pd.Series(
            arr.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False), dtype="datetime64[ns]"
        )
        return stamps, parse_dates(stamps, default)
    return None


def convert(source: pd.Series, type_: str, lookup: dict[str, str], default: Any) -> pd.Series:
    """Convert one column to its field type; values that do not convert come out missing (or unmatched text)."""
    if type_ in ("text", "vocabulary"):
        out = _text(source)
        if type_ == "vocabulary":
            # Translate each distinct value once: a column of 500k rows has a handful of values.
            positions, uniques = pd.factorize(out)
            translated = np.array([lookup.get(value_key(u), u) for u in uniques] + [None], dtype=object)
            out = pd.Series(translated[positions], index=out.index, dtype="string")
        if default is not None:
            out = out.fillna(default)
        return out
    if type_ in ("number", "integer"):
        if pd.api.types.is_numeric_dtype(source.dtype) and not pd.api.types.is_bool_dtype(source.dtype):
            out = source.astype(float)
        else:
            text = _text(source).str.replace(UNIT_SUFFIX, "", regex=True)
            out = pd.to_numeric(text, errors="coerce").astype(float)
        out = out.where(np.isfinite(out))
        return out.fillna(float(default)) if default is not None else out
    if type_ == "boolean":
        if pd.api.types.is_bool_dtype(source.dtype):
            out = source.astype("boolean")
        else:
            keys = _text(source).str.lower()
            out = pd.Series(pd.NA, index=source.index, dtype="boolean")
            out[keys.isin(TRUE_VALUES).fillna(False).to_numpy(bool)] = True
            out[keys.isin(FALSE_VALUES).fillna(False).to_numpy(bool)] = False
        if default is not None:
            out = out.fillna(bool(default))
        return out
    if type_ == "date":
        return parse_dates(source, default)
    return source


def parse_dates(source: pd.Series, default: Any = None) -> pd.Series:
    """Dates in the common UK forms (``dd/mm/yyyy``, ``yyyy-mm-dd``...), time of day ignored; others missing."""
    if pd.api.types.is_datetime64_any_dtype(source.dtype):
        out = pd.to_datetime(source).dt.tz_localize(None) if getattr(source.dt, "tz", None) else source
        return out.dt.normalize()
    text = _text(source).str.split(r"[T ]", n=1, regex=True).str[0]
    out = pd.Series(pd.NaT, index=source.index, dtype="datetime64[ns]")
    for fmt in DATE_FORMATS:
        missing = out.isna() & text.notna()
        if not missing.any():
            break
        out[missing] = pd.to_datetime(text[missing], format=fmt, errors="coerce")
    if default is not None:
        out = out.fillna(pd.Timestamp(default))
    return out


def extra_json(table: pa.Table, columns: list[str]) -> pa.Array:
    """One JSON object per row with the given columns, values kept as sent (vectorised with Arrow).

    The text is laid out as PostgreSQL prints jsonb (keys shortest first, then by their bytes;
    ``", "`` and ``": "`` between), so an unchanged row's text equals the stored value's
    (:mod:`geo.uploads.unchanged` compares them as text).
    """
    n = table.num_rows
    if not columns:
        return pa.array(["{}"] * n, type=pa.string())
    parts: list[Any] = []
    ordered = sorted(columns, key=lambda c: (len(str(c).encode()), str(c).encode()))
    for i, name in enumerate(ordered):
        parts.append(("{" if i == 0 else ", ") + json.dumps(str(name), ensure_ascii=False) + ": ")
        parts.append(_json_values(table.column(name)))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def _json_values(column: pa.ChunkedArray) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        out = arr.cast(pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(arr)
        out = pc.if_else(finite, arr.cast(pa.string()), pa.scalar(None, pa.string()))
    else:
        text = arr.cast(pa.string()) if not pa.types.is_string(t) else arr
        if pa.types.is_large_string(t):
            text = arr.cast(pa.string())
        needs_escape = pc.match_substring_regex(text, r'[\\"\x00-\x1f]')
        if pc.any(needs_escape).as_py():
            out = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False) for v in text.to_pylist()],
                type=pa.string(),
            )
        else:
            out = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(out, "null")
