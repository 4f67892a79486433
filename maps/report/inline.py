"""What report.html carries inside it: Leaflet, the report's own script and styles, and its policy.

The file is read from disk as much as served, so nothing may come from elsewhere: Leaflet's
JavaScript and CSS (the copies ``scripts/fetch-static-assets`` put in ``maps/static/vendor``,
with the CSS's images as ``data:`` URIs) and the page's own ``coverage-report.js`` and ``.css``
go into the document. Its ``<meta>`` Content-Security-Policy allows exactly those scripts (by
their SHA-256) and ``data:`` images, and nothing to fetch: opened from disk the browser
enforces that the report loads nothing. Served by the API it gets the app's header policy as
well, whose nonce :class:`api.middleware.SecurityHeaders` adds to each ``<script>``; a script
must pass both, and does (a hash covers the content, a nonce the tag).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

from maps.static_files import STATIC_DIR, VENDOR_DIR, MissingStaticFiles

LEAFLET_DIR = VENDOR_DIR / "leaflet-1.9.3" / "dist"
LEAFLET_JS = LEAFLET_DIR / "leaflet.js"
LEAFLET_CSS = LEAFLET_DIR / "leaflet.css"
REPORT_JS = STATIC_DIR / "coverage-report.js"
REPORT_CSS = STATIC_DIR / "coverage-report.css"

#: Edits to Leaflet's JavaScript as inlined, each expected exactly once (a new Leaflet that no
#: longer matches fails loudly): no source map to look for, no link out of the file (the
#: attribution's prefix is the page's own plain "Leaflet"; the licence notice stays).
LEAFLET_JS_EDITS = (
    ("\n//# sourceMappingURL=leaflet.js.map", ""),
    ("interactive maps. https://leafletjs.com", "interactive maps. leafletjs.com"),
    ('<a href="https://leafletjs.com" title=', "<a title="),
)
_CSS_COMMENT = re.compile(r"/\*(?!\s*@preserve).*?\*/", re.S)
_CSS_IMAGE = re.compile(r"url\(images/([\w.-]+\.png)\)")
#: What may never appear inside an inlined script or style: it would end the element early, or
#: be taken for a script tag (and given a nonce) by the middleware.
_FORBIDDEN = re.compile(r"</?(script|style)", re.I)


def _read(path: Path) -> str:
    if not path.is_file():
        raise MissingStaticFiles(f"{path} is missing; run scripts/fetch-static-assets")
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


def _checked(name: str, text: str) -> str:
    if _FORBIDDEN.search(text):
        raise ValueError(f"{name} holds a <script> or <style> tag: it cannot be inlined as it is")
    return text


@functools.lru_cache(maxsize=4)
def _leaflet_js(mtime: float) -> str:
    text = _read(LEAFLET_JS)
    for old, new in LEAFLET_JS_EDITS:
        if text.count(old) != 1:
            raise ValueError(f"leaflet.js changed: {old!r} is not there once; review LEAFLET_JS_EDITS")
        text = text.replace(old, new)
    return _checked("leaflet.js", text)


@functools.lru_cache(maxsize=4)
def _leaflet_css(mtime: float) -> str:
    def data_uri(match: re.Match[str]) -> str:
        image = (LEAFLET_DIR / "images" / match.group(1)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(image).decode()})"

    # Comments go (one names a URL); the images come in as data: URIs.
    return _checked("leaflet.css", _CSS_IMAGE.sub(data_uri, _CSS_COMMENT.sub("", _read(LEAFLET_CSS))))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return -1.0


def leaflet_js() -> str:
    """Leaflet's JavaScript as the report inlines it (read once per change of the file)."""
    return _leaflet_js(_mtime(LEAFLET_JS))


def leaflet_css() -> str:
    """Leaflet's CSS as the report inlines it, its images as ``data:`` URIs."""
    return _leaflet_css(_mtime(LEAFLET_CSS))


def report_js() -> str:
    """The report's own script (``maps/static/coverage-report.js``)."""
    return _checked("coverage-report.js", _read(REPORT_JS))


def report_css() -> str:
    """The report's own styles, screen and print (``maps/static/coverage-report.css``)."""
    return _checked("coverage-report.css", _read(REPORT_CSS))


def script_hash(code: str) -> str:
    """The CSP source that allows an inline script with exactly this text: ``'sha256-…'``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode() + "'"


def meta_policy(scripts: list[str]) -> str:
    """The report's own Content-Security-Policy (a ``<meta>``): its scripts, inline styles, data: images.

    ``default-src 'none'``: no fetch, frame, font, worker or connection, from anywhere. (A
    ``<meta>`` policy cannot say ``frame-ancestors``; the API's header does.)
    """
    hashes = " ".join(script_hash(s) for s in scripts)
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


def json_for_script(text: str) -> str:
    """JSON text safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` as such."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
