"""The web app's pages under ``/app/``: server-rendered Jinja2 templates, small scripts, no CDN.

Every page extends ``templates/base.html``: the header with the app's name (never the GOV.UK
name, crown or font: GOV.UK Frontend's components are used through
``govuk-frontend.arial.min.css``), the navigation, and the sign-in. A person signs in with an API
key that stays in the tab's ``sessionStorage`` (``static/app/app.js``, shared with ``/map``); the
pages fetch what the key may see from the API, so the server's redaction is the pages' too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
GOVUK = "vendor/govuk-frontend-6.6.0/dist/govuk"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Page:
    """A page of the app, as the navigation and the home page list it."""

    path: str
    title: str
    summary: str
    audience: str


#: The pages, in navigation order (``/map`` is the GLA map, outside ``/app/``).
PAGES: tuple[Page, ...] = (
    Page("/map", "Map", "Assets, wayleaves and Pipeline projects on a map of London.", "Everyone"),
    Page(
        "/app/uploads",
        "Uploads",
        "Send a borough's asset file, preview what it would change, fix its errors and apply it.",
        "Borough GIS and asset officers",
    ),
    Page(
        "/app/wayleaves",
        "Wayleaves",
        "Every site's wayleave by status: days in status, due dates, overdue flags, status changes and KPIs.",
        "Boroughs, operators and the GLA",
    ),
    Page(
        "/app/coverage",
        "Coverage",
        "Request a coverage report for boroughs or an area you draw, and read its gaps and priorities.",
        "The GLA and operators",
    ),
    Page(
        "/app/projects",
        "Pipeline projects",
        "Council digital projects by place, with filters; the ones not placed, with the reason.",
        "The GLA and boroughs",
    ),
    Page(
        "/docs", "API", "Every endpoint, its parameters and its answers, to try in the browser.", "Developers"
    ),
)

#: What each role may do, as the sign-in says it (the server enforces it on every request).
ROLE_ABILITIES: dict[str, str] = {
    "admin": (
        "sees and changes everything: every borough's assets, uploads and wayleaves, every report, "
        "and the contacts and owners that are personal data (each read is recorded)"
    ),
    "borough": (
        "uploads and applies asset files for its borough, creates wayleaves on its sites and moves "
        "them on, sees their contacts, and requests coverage reports"
    ),
    "operator": (
        "sees its own operator's wayleaves and may set their operator reference, and requests and "
        "reads its own coverage reports"
    ),
    "": "sees the public layers and Pipeline projects without their owners",
}


def render(template: str, *, prefix: str = "", current: str = "", **context: Any) -> str:
    """``template`` rendered with the navigation, the sign-in texts and ``context``.

    ``prefix`` is the app's root path (every link and asset URL starts with it); ``current`` the
    path of the page, marked in the navigation.
    """
    return _env.get_template(template).render(
        prefix=prefix,
        current=current,
        pages=PAGES,
        static=f"{prefix}/static",
        govuk=f"{prefix}/static/{GOVUK}",
        role_abilities=ROLE_ABILITIES,
        **context,
    )
