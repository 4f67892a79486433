"""Lazy exports: a package's public names imported from their modules when first used (PEP 562).

A package whose modules load heavy libraries (scipy, pandas, GDAL) re-exports their names this way,
so that importing the package itself stays cheap.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package_name: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package_name``: each public name imported from its home.

    ``homes`` maps a public name to the module of the package that defines it, e.g.
    ``{"submit": "submission"}`` for ``geo.uploads.submission.submit``. A name, once imported,
    is kept in the package's namespace, so the next lookup does not come here. Use it as
    ``__getattr__ = lazy_exports(__name__, _HOMES)``.
    """

    def __getattr__(name: str) -> Any:
        """Import a public name from its module on first use."""
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package_name}.{home}"), name)
        setattr(sys.modules[package_name], name, value)
        return value

    return __getattr__
