"""The OGC API's resources as HTML pages for a person with a browser (``f=html`` or ``Accept: text/html``).

Each page is rendered from the very document the JSON answer carries (the landing page's links,
a collection's metadata, a page of items from the same query, the caller's queryables, jobs), so
a page shows what the JSON shows the same caller and nothing else. The routes of
:mod:`api.routes.features` and :mod:`api.routes.processes` choose the format with
:data:`OgcFormat` (or :data:`ItemsOrHtml` on the items) and hand the document here.

Templates are ``maps/pages/templates/ogc_*.html`` (Jinja autoescape: every value is text); the
small map is ``maps/static/app/ogc.js``, which reads the page's features from a JSON island and
builds its tooltips as text.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.params import FORMAT_HELP, _accepted, base_url, items_format
from geo.access.principals import Principal
from geo.core.errors import InvalidParameter
from geo.layers import exports
from geo.layers.collections import Collection
from maps import pages

HTML = "text/html"
#: ``responses=`` of a route that also answers HTML (OpenAPI).
HTML_RESPONSE = {"content": {HTML: {"schema": {"type": "string"}}}}
_JSON_TYPES = ("application/json", "application/geo+json", "application/schema+json")
#: The paths (under the base URL) that answer HTML too: their links on a page lead to their page.
_HTML_PATHS = re.compile(
    r"/|/conformance|/collections(?:/[^/]+(?:/items(?:/[^/]+)?|/queryables)?)?|/processes(?:/[^/]+)?|/jobs(?:/[^/]+)?"
)
#: Properties that name a feature, best first (the map's tooltip).
_LABELS = ("name", "title", "site_name", "source_id", "code")


def ogc_format(
    request: Request,
    response: Response,
    f: Annotated[
        str | None,
        Query(description="Output format: json (the default) or html (a page for a browser; also by Accept)"),
    ] = None,
) -> str:
    """``json`` or ``html``: ``f`` if given (400 for another), else ``Accept`` (``text/html`` before JSON), else json.

    The answer says it depends on ``Accept`` (``Vary``), so a cache never gives a browser's page to a script.
    """
    response.headers["Vary"] = "Accept"
    if f is not None:
        name = f.lower()
        if name in ("json", "geojson", "html"):
            return "html" if name == "html" else "json"
        raise InvalidParameter(f"f: {f[:40]!r} is not a format of this endpoint; it answers json or html")
    return "html" if _accepts_html(request) else "json"


def _accepts_html(request: Request) -> bool:
    """Whether the request's ``Accept`` prefers a page to JSON."""
    media_types = {HTML: "html", **dict.fromkeys(_JSON_TYPES, "json")}
    return _accepted(request.headers.get("accept", ""), media_types) == "html"


#: ``f`` (or ``Accept``) of an OGC resource: json (the default) or html.
OgcFormat = Annotated[str, Depends(ogc_format)]


def items_or_html(
    request: Request,
    f: Annotated[
        str | None,
        Query(description=FORMAT_HELP + " Or html: the page as a table and a map."),
    ] = None,
) -> str:
    """The items' format (:func:`api.params.items_format`), or ``html`` (``f=html``, or ``Accept`` preferring it)."""
    if f is not None and f.lower() == "html":
        return "html"
    if f is not None and exports.ALIASES.get(f.lower(), f.lower()) not in exports.FORMATS:
        raise InvalidParameter(
            f"f: {f[:40]!r} is not a format of this endpoint; it answers {', '.join(exports.FORMATS)} or html"
        )
    if f is None:
        media_types = {fmt.media_type: name for name, fmt in exports.FORMATS.items()}
        media_types.update({"application/json": exports.GEOJSON.name, HTML: "html"})
        if _accepted(request.headers.get("accept", ""), media_types) == "html":
            return "html"
    return items_format(request, f)


#: ``f`` (or ``Accept``) of a collection's items: json (GeoJSON), csv, gpkg, fgb, parquet or html.
ItemsOrHtml = Annotated[str, Depends(items_or_html)]


def with_format(href: str, f: str) -> str:
    """``href`` with its ``f`` parameter set to ``f`` (the other parameters kept, in order)."""
    parts = urlsplit(href)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "f"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("f", f)])))


def _alternate(href: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "type": type_, "title": title}


def who_sees(principal: Principal | None) -> str | None:
    """A sentence on whose view the page shows (None when every caller sees the same)."""
    if principal is None:
        return None
    if principal.role is None:
        return (
            "Shown as anyone may see it, without an API key (a browser sends none; "
            "the API with Authorization: Bearer shows what a key may see)."
        )
    where = f" of borough {principal.borough_code}" if principal.borough_code else ""
    return f"Shown as the {principal.role} key{where} that asked may see it."


def cell(value: Any) -> str:
    """A property's value as the text of a table cell."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "–"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class Pages:
    """The HTML pages of one request: ``base`` is the service's base URL (as the JSON links have it)."""

    def __init__(self, request: Request, base: str) -> None:
        self.request = request
        self.base = base

    def browse(self, href: str) -> str:
        """Where a link leads a person: the HTML page of an OGC resource that has one, else ``href``."""
        if href.startswith(self.base):
            path = urlsplit(href[len(self.base) :]).path or "/"
            if _HTML_PATHS.fullmatch(path):
                return with_format(href, "html")
        return href

    def json(self, type_: str = "application/json", title: str = "JSON") -> dict[str, str]:
        """This request's URL as JSON (``f=json``): the page's ``rel=alternate``."""
        return _alternate(with_format(str(self.request.url), "json"), type_, title)

    def render(
        self,
        template: str,
        title: str,
        crumbs: list[tuple[str, str | None]],
        *,
        alternates: list[dict[str, str]] | None = None,
        principal: Principal | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """``template`` as a page: breadcrumbs, the other formats (``rel=alternate``), links to the map and docs."""
        html = pages.render(
            template,
            prefix=self.request.scope.get("root_path", ""),
            title=title,
            base=self.base,
            crumbs=[("API", f"{self.base}/?f=html"), *crumbs] if crumbs else [],
            alternates=[self.json()] if alternates is None else alternates,
            who=who_sees(principal),
            borough_names=context.pop("borough_names", {}),
            browse=self.browse,
            **context,
        )
        headers = {"Cache-Control": "no-store", "Vary": "Accept"}
        return HTMLResponse(html, status_code=status_code, headers=headers)

    # The pages ------------------------------------------------------------------------------------
    def landing(self, doc: dict[str, Any]) -> HTMLResponse:
        """The landing page: every link of the JSON one."""
        return self.render("ogc_landing.html", "OGC API", [], doc=doc)

    def conformance(self, doc: dict[str, Any]) -> HTMLResponse:
        """The conformance classes, each with the standard it belongs to."""
        return self.render("ogc_conformance.html", "Conformance classes", [("Conformance", None)], doc=doc)

    def collections(self, doc: dict[str, Any]) -> HTMLResponse:
        """Every collection: title, description, extent, links to its page and its features."""
        return self.render("ogc_collections.html", "Collections", [("Collections", None)], doc=doc)

    def collection(self, doc: dict[str, Any]) -> HTMLResponse:
        """One collection's metadata and its links (features, downloads, queryables, tiles)."""
        crumbs = [("Collections", f"{self.base}/collections?f=html"), (doc["title"], None)]
        return self.render("ogc_collection.html", doc["title"], crumbs, doc=doc)

    def queryables(self, coll: Collection, doc: dict[str, Any], principal: Principal) -> HTMLResponse:
        """What a filter may name, for this caller: names, types, allowed values."""
        crumbs = [*self._collection_crumbs(coll), ("Queryables", None)]
        return self.render(
            "ogc_queryables.html", f"{coll.title}: queryables", crumbs,
            alternates=[self.json("application/schema+json", "JSON Schema")],
            principal=principal, collection=coll, doc=doc,
        )  # fmt: skip

    def items(
        self,
        coll: Collection,
        features: list[dict[str, Any]],
        properties: tuple[str, ...],
        links: list[dict[str, str]],
        matched: int | None,
        previous: str | None,
        borough_names: dict[str, str],
    ) -> HTMLResponse:
        """A page of items: a table (the map's text alternative), a small map, filters, previous and next."""
        query = dict(self.request.query_params)
        self_href = next(x["href"] for x in links if x["rel"] == "self")
        next_href = next((x["href"] for x in links if x["rel"] == "next"), None)
        items = f"{self.base}/collections/{coll.id}/items"
        first = f"{items}?{urlencode(_without(query, 'after'))}" if "after" in query else None
        files = [_alternate(x["href"], x["type"], x["title"]) for x in links if x["rel"] == "alternate"]
        return self.render(
            "ogc_items.html", f"{coll.title}: features", [*self._collection_crumbs(coll), ("Features", None)],
            alternates=[_alternate(with_format(self_href, "json"), exports.GEOJSON.media_type, "GeoJSON"),
                        *(a for a in files if a["type"] != HTML)],
            collection=coll, properties=properties, matched=matched, query=query,
            rows=[{"id": str(f["id"]), "href": f"{items}/{quote(str(f['id']))}?f=html",
                   "cells": [cell(f["properties"].get(p)) for p in properties]} for f in features],
            next_href=with_format(next_href, "html") if next_href else None,
            previous_href=with_format(previous, "html") if previous else None,
            first_href=with_format(first, "html") if first else None,
            map_data={"type": "FeatureCollection", "features": features},
            label=label_property(coll), item_base=f"{items}/", borough_names=borough_names,
        )  # fmt: skip

    def item(self, coll: Collection, feature: dict[str, Any]) -> HTMLResponse:
        """One feature: its properties and a map of it."""
        name = feature["properties"].get(label_property(coll) or "")
        crumbs = [
            *self._collection_crumbs(coll),
            ("Features", f"{self.base}/collections/{coll.id}/items?f=html"),
            (str(feature["id"]), None),
        ]
        return self.render(
            "ogc_item.html", f"{coll.title}: {name or feature['id']}", crumbs,
            alternates=[self.json(exports.GEOJSON.media_type, "GeoJSON")],
            collection=coll, feature=feature, name=name,
            values=[(p, cell(feature["properties"].get(p))) for p in coll.properties],
            map_data={"type": "FeatureCollection", "features": [feature]},
            label=label_property(coll), item_base=None,
        )  # fmt: skip

    def processes(self, doc: dict[str, Any]) -> HTMLResponse:
        """The processes offered."""
        return self.render("ogc_processes.html", "Processes", [("Processes", None)], doc=doc)

    def process(self, doc: dict[str, Any]) -> HTMLResponse:
        """A process: what it does, its inputs and outputs, how to run it."""
        crumbs = [("Processes", f"{self.base}/processes?f=html"), (doc["title"], None)]
        inputs = [
            {"id": name, "title": spec.get("title", name), "description": spec.get("description", ""),
             "type": _schema_type(spec.get("schema", {})), "required": spec.get("minOccurs", 0) > 0}
            for name, spec in doc.get("inputs", {}).items()
        ]  # fmt: skip
        return self.render("ogc_process.html", doc["title"], crumbs, doc=doc, inputs=inputs)

    def jobs(self, doc: dict[str, Any] | None, principal: Principal) -> HTMLResponse:
        """The caller's jobs; without a key, a page saying a key is needed (401)."""
        return self.render(
            "ogc_jobs.html", "Jobs", [("Jobs", None)], principal=principal, doc=doc,
            status_code=200 if doc is not None else 401,
        )  # fmt: skip

    def job(self, doc: dict[str, Any] | None, principal: Principal) -> HTMLResponse:
        """A job's status, progress and links; without a key, a page saying a key is needed (401)."""
        crumbs = [("Jobs", f"{self.base}/jobs?f=html"), (doc["jobID"] if doc else "A job", None)]
        return self.render(
            "ogc_job.html", f"Job {doc['jobID']}" if doc else "A job", crumbs, principal=principal, doc=doc,
            status_code=200 if doc is not None else 401,
        )  # fmt: skip

    def error(self, status: int, title: str, detail: str, errors: list[dict[str, Any]]) -> HTMLResponse:
        """An error as a page: what and where, as the problem document says it (the same status)."""
        return self.render(
            "ogc_error.html", title, [(title, None)], status_code=status,
            alternates=[self.json("application/problem+json", "The problem as JSON")],
            status=status, detail=detail, errors=errors,
        )  # fmt: skip

    def _collection_crumbs(self, coll: Collection) -> list[tuple[str, str | None]]:
        return [
            ("Collections", f"{self.base}/collections?f=html"),
            (coll.title, f"{self.base}/collections/{coll.id}?f=html"),
        ]


def wants_html(request: Request) -> bool:
    """Whether a browser asked for a page: a GET of a resource that has one, with ``f=html`` or ``Accept`` preferring it."""
    path = request.url.path[len(request.scope.get("root_path", "")) :] or "/"
    if request.method not in ("GET", "HEAD") or not _HTML_PATHS.fullmatch(path):
        return False
    f = request.query_params.get("f")
    return f.lower() == "html" if f is not None else _accepts_html(request)


def error_page(request: Request, problem: dict[str, Any]) -> HTMLResponse | None:
    """The problem document as a page when a browser asked for one (:func:`wants_html`), else None."""
    if not wants_html(request):
        return None
    return Pages(request, base_url(request)).error(
        problem["status"], problem["title"], problem["detail"], problem.get("errors", [])
    )


def _without(query: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in query.items() if k not in names and k != "f"}


def _schema_type(schema: dict[str, Any]) -> str:
    """A JSON Schema's type in a few words (``integer``, ``array of string``, ``one of a, b``)."""
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema or "oneOf" in schema:
        kinds = [_schema_type(s) for s in schema.get("anyOf", schema.get("oneOf", []))]
        return " or ".join(dict.fromkeys(k for k in kinds if k != "null")) or "any"
    kind = schema.get("type", "object" if "properties" in schema else "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    return str(kind)


def label_property(coll: Collection) -> str | None:
    """The property that names a feature of ``coll`` (for the map's tooltips), if it has one."""
    return next((p for p in _LABELS if p in coll.properties), None)
