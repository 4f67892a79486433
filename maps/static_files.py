"""Folium's JavaScript and CSS, served by the app itself from ``maps/static/vendor``.

``scripts/fetch-static-assets`` fetches the pinned npm packages there (``make setup`` runs it);
:data:`LOCAL` maps each resource name folium uses onto one of their files. Change both together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

from branca.element import Element, Figure
from folium.elements import JSCSSMixin

from geo.core.errors import Unavailable

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
STATIC_URL = "/static"

#: folium resource name -> path under ``/static`` (None: deliberately not loaded).
LOCAL: dict[str, str | None] = {
    "leaflet": "vendor/leaflet-1.9.3/dist/leaflet.js",
    "leaflet_css": "vendor/leaflet-1.9.3/dist/leaflet.css",
    "vectorGrid": "vendor/leaflet.vectorgrid-1.3.0/dist/Leaflet.VectorGrid.bundled.min.js",
    "awesome_markers": "vendor/leaflet.awesome-markers-2.0.5/dist/leaflet.awesome-markers.min.js",
    "awesome_markers_css": "vendor/leaflet.awesome-markers-2.0.5/dist/leaflet.awesome-markers.css",
    "awesome_markers_font_css": "vendor/fortawesome-fontawesome-free-6.2.0/css/all.min.css",
    # The page's own script and styles (maps/web_map.py).
    "connectivity_map": "connectivity-map.js",
    "connectivity_map_css": "connectivity-map.css",
    # Folium lists these for every map; the page uses none of them.
    "jquery": None,
    "bootstrap": None,
    "bootstrap_css": None,
    "glyphicons_css": None,  # Bootstrap 3 icons: use folium.Icon(prefix="fa")
    "awesome_rotate_css": None,  # lives in folium's git repository, not in its wheel
}


E = TypeVar("E", bound=Element)


class UnmappedResource(LookupError):
    """A folium element wants a JavaScript or CSS file that is not served locally."""


class MissingStaticFiles(Unavailable, FileNotFoundError):
    """The vendored files are not there: ``scripts/fetch-static-assets`` has not run."""


def local_url(name: str, prefix: str = "") -> str | None:
    """The local URL of folium resource ``name``, None if dropped; raise if it is unknown."""
    if name not in LOCAL:
        raise UnmappedResource(
            f"folium resource {name!r} has no local copy: add its npm package to "
            "scripts/fetch-static-assets and its file to maps.static_files.LOCAL"
        )
    path = LOCAL[name]
    return None if path is None else f"{prefix}{STATIC_URL}/{path}"


def localize(root: E, prefix: str = "") -> E:
    """Point every JS/CSS link of ``root`` and its descendants at the app's own copies.

    Call it after every child is added. Each element gets its own lists: folium's
    ``add_js_link`` would change the class-level defaults, and with them every map in
    the process. Raises :class:`UnmappedResource` for a resource with no local copy, so a
    new plugin can never quietly pull a file from a CDN.
    """
    stack: list[Element] = [root]
    while stack:
        element = stack.pop()
        if isinstance(element, JSCSSMixin):
            for attr in ("default_js", "default_css"):
                links = [(name, local_url(name, prefix)) for name, _ in getattr(element, attr)]
                setattr(element, attr, [(name, url) for name, url in links if url is not None])
        stack.extend(element._children.values())
    return root


_VIEWPORT = re.compile(r'<meta name="viewport"[^>]*>')


def english(html: str) -> str:
    """``html`` with ``lang="en-GB"`` on its ``<html>`` tag (WCAG 3.1.1)."""
    return html.replace("<html>", '<html lang="en-GB">', 1)


def render_page(figure: Figure, prefix: str = "") -> str:
    """``figure`` as a page: local files only, English, and zoomable by its reader.

    Folium's map header forbids zooming (``user-scalable=no``, against WCAG 1.4.4) and branca's
    page has no ``lang``.
    """
    html = english(localize(figure, prefix).render())
    return _VIEWPORT.sub('<meta name="viewport" content="width=device-width, initial-scale=1">', html)


def check_static_files() -> None:
    """Raise :class:`MissingStaticFiles` unless every mapped file is on disk."""
    missing = [path for path in LOCAL.values() if path and not (STATIC_DIR / path).is_file()]
    if missing:
        raise MissingStaticFiles(
            f"the web map's static files are missing ({', '.join(missing)}); run scripts/fetch-static-assets"
        )
