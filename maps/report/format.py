"""Figures as a person reads them: numbers with their units, shares, tables and lists, all escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def e(value: Any) -> str:
    """``value`` as HTML text (None as nothing)."""
    return html.escape("" if value is None else str(value))


def pct(value: Any, digits: int = 1) -> str:
    """A share (0..1) as a percentage, "–" when unknown."""
    return "–" if value is None else f"{100 * float(value):.{digits}f}%"


def num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators, "–" when unknown."""
    return "–" if value is None else f"{float(value):,.{digits}f}"


#: Between a figure and its unit: a line never breaks there ("100 m").
NBSP = "\u00a0"


def metres(value: Any) -> str:
    """A distance: "100 m" (a no-break space before the unit)."""
    return "–" if value is None else f"{float(value):,.{0 if float(value) >= 10 else 1}f}{NBSP}m"


def km2(value_m2: Any) -> str:
    """An area given in m², in km² ("2.35 km²")."""
    return "–" if value_m2 is None else f"{float(value_m2) / 1e6:,.2f}{NBSP}km²"


def hectares(value_m2: Any) -> str:
    """An area given in m², in hectares ("2.5 ha", "5,163 ha")."""
    if value_m2 is None:
        return "–"
    ha = float(value_m2) / 1e4
    text = f"{ha:,.1f}".removesuffix(".0") if ha < 10 else f"{ha:,.0f}"
    return f"{text}{NBSP}ha"


def share_digits(*shares: Any) -> int:
    """Decimals of a percentage that tell the lowest of these shares from the highest (1 to 3).

    Near 100% one decimal says "99.9%" for both ends of a change of 0.01 points; this says
    "99.86%" and "99.87%".
    """
    values = [float(s) for s in shares if s is not None]
    digits = 1
    if values and max(values) > min(values):
        while digits < 3 and round(100 * min(values), digits) == round(100 * max(values), digits):
            digits += 1
    return digits


def count(n: int | float, one: str, many: str | None = None) -> str:
    """``n`` and its noun: "1 gap", "1,329 gaps"."""
    word = one if n == 1 else (many or one + "s")
    return f"{num(n)} {word}"


def words(items: Iterable[str], empty: str = "none") -> str:
    """A list in a sentence: "a", "a and b", "a, b and c"."""
    items = [i for i in items if i]
    if not items:
        return empty
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def label(code: str | None) -> str:
    """A vocabulary code as words: ``street_furniture`` -> "street furniture"."""
    return "" if code is None else code.replace("_", " ")


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    caption: str | None = None,
    numeric: Sequence[int] = (),
    row_headers: bool = True,
    css: str = "",
) -> str:
    """An HTML table; cells are HTML already (escape them), headers are text.

    ``numeric``: the columns aligned right (figures); ``row_headers``: the first cell of each
    row is its header (``<th scope="row">``).
    """
    right = set(numeric)

    def cls(i: int) -> str:
        return ' class="num"' if i in right else ""

    head = "".join(f'<th scope="col"{cls(i)}>{e(h)}</th>' for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            tag = "th" if i == 0 and row_headers else "td"
            scope = ' scope="row"' if tag == "th" else ""
            cells.append(f"<{tag}{scope}{cls(i)}>{cell}</{tag}>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def definitions(pairs: Sequence[tuple[str, str]]) -> str:
    """A description list of (term as text, description as HTML)."""
    return "<dl>" + "".join(f"<dt>{e(t)}</dt><dd>{d}</dd>" for t, d in pairs) + "</dl>"
