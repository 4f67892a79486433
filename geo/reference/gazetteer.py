"""The gazetteer of London organisation names: which authority (or all of London) an organisation stands for.

Pipeline projects carry no location, only their organisation's name, written in whatever form
the council uses ("London Borough of Camden", "Camden Council", "LB Camden", "RBKC", "GLA"...).
:func:`place` turns such a name into a :class:`Placement`. The forms live in
``data/london_organisations.yaml``; :func:`normalise` makes unlisted variants match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from geo.core.settings import DATA_DIR
from geo.reference.boroughs import GSS_CODES

GAZETTEER_FILE = DATA_DIR / "london_organisations.yaml"
LONDON_WIDE = "london"

# Affixes that say what kind of body it is, not which: stripped after cleaning (longest first).
_PREFIXES = (
    "the london borough of ",
    "london borough of ",
    "the royal borough of ",
    "royal borough of ",
    "the borough of ",
    "borough of ",
    "lb of ",
    "lb ",
    "rb ",
    "the ",
)
_SUFFIXES = (
    " london borough council",
    " borough council",
    " city council",
    " london borough",
    " council",
)
# Words that make an unknown name look like a local authority (so: outside London).
_AUTHORITY_WORDS = re.compile(
    r"\b(council|borough|county|district|city|metropolitan|unitary|shire|authority|corporation|parish)\b"
)


@dataclass(frozen=True)
class Placement:
    """Where an organisation's projects go: one authority, all of London, or nowhere (with the reason)."""

    borough_code: str | None
    london_wide: bool
    reason: str | None

    @property
    def placed(self) -> bool:
        """Whether the organisation was recognised as a London authority or a London-wide body."""
        return self.reason is None


def clean(name: str) -> str:
    """Lower case, no accents, "&"/"+" as "and", punctuation as spaces, single spaces."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ").replace("+", " and ")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def normalise(name: str) -> str:
    """The matching key of a name: :func:`clean`, then a leading "the" and generic affixes removed.

    >>> normalise("The London Borough of Barking & Dagenham Council")
    'barking and dagenham'
    """
    text = clean(name)
    changed = True
    while changed and text:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix) and len(text) > len(prefix):
                text = text[len(prefix) :]
                changed = True
        for suffix in _SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)]
                changed = True
    return text


@dataclass(frozen=True)
class Gazetteer:
    """Normalised name -> GSS code or :data:`LONDON_WIDE`; and each target's listed forms."""

    index: dict[str, str]
    forms: dict[str, tuple[str, ...]]

    def lookup(self, organisation: str) -> str | None:
        """The GSS code or :data:`LONDON_WIDE` for a name, or None."""
        return self.index.get(normalise(organisation))


def _add(index: dict[str, str], form: str, target: str, path: Path) -> None:
    key = normalise(form)
    if not key:
        raise ValueError(f"{path}: the form {form!r} of {target} normalises to nothing")
    if index.setdefault(key, target) != target:
        raise ValueError(
            f"{path}: the form {form!r} of {target} matches {index[key]} too (both normalise to {key!r})"
        )


def read_gazetteer(path: Path = GAZETTEER_FILE) -> Gazetteer:
    """Read and check a gazetteer file (every authority present, no form claimed twice)."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    authorities = raw.get("authorities") or {}
    missing = sorted(set(GSS_CODES) - set(authorities))
    unknown = sorted(set(authorities) - set(GSS_CODES))
    if missing or unknown:
        raise ValueError(f"{path}: authorities missing {missing} or unknown {unknown}")
    index: dict[str, str] = {}
    forms: dict[str, tuple[str, ...]] = {}
    for code, entry in authorities.items():
        names = (str(entry["name"]), *(str(f) for f in entry.get("forms") or ()))
        forms[code] = names
        for form in names:
            _add(index, form, code, path)
    wide = tuple(str(f) for f in raw.get("london_wide") or ())
    forms[LONDON_WIDE] = wide
    for form in wide:
        _add(index, form, LONDON_WIDE, path)
    return Gazetteer(index, forms)


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The shipped gazetteer (read once)."""
    return read_gazetteer()


def place(organisation: str | None) -> Placement:
    """Place an organisation by its name.

    Parameters
    ----------
    organisation
        The organisation's name as written in Pipeline, in any of the forms councils use.

    Returns
    -------
    Placement
        ``borough_code`` for one of the 33 authorities; ``london_wide`` for the GLA, TfL,
        London Councils and the other London-wide bodies; otherwise ``reason`` says why it
        is unplaced.

    Examples
    --------
    >>> place("LB Camden").borough_code
    'E09000007'
    >>> place("GLA").london_wide
    True
    >>> place("Leeds City Council").reason
    "'Leeds City Council' is not a London organisation"
    """
    name = (organisation or "").strip()
    if not name:
        return Placement(None, False, "no organisation given")
    target = gazetteer().lookup(name)
    if target == LONDON_WIDE:
        return Placement(None, True, None)
    if target is not None:
        return Placement(target, False, None)
    cleaned = clean(name)
    if _AUTHORITY_WORDS.search(cleaned) and "london" not in cleaned.split():
        return Placement(None, False, f"{name!r} is not a London organisation")
    return Placement(None, False, f"{name!r} not recognised")
