"""The web app's pages under ``/app/`` (HTML; the data comes from the API, called by the page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import Conn
from geo.projects import model as project_model
from geo.reference.boroughs import borough_names
from geo.reference.model import load_model
from geo.wayleaves import statuses as wayleave_statuses
from maps import pages

router = APIRouter(tags=["web app"], include_in_schema=False)


async def page(
    request: Request, conn: Conn, template: str, current: str, title: str, **context: Any
) -> HTMLResponse:
    """``template`` as a page: the borough names for its scripts, the links under the app's root path."""
    names = await borough_names(conn)
    html = pages.render(
        template,
        prefix=request.scope.get("root_path", ""),
        current=current,
        title=title,
        borough_names=names,
        **context,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/app", response_class=RedirectResponse)
async def app_root(request: Request) -> RedirectResponse:
    """``/app`` is ``/app/``."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/app/", status_code=308)


@router.get("/app/", response_class=HTMLResponse)
async def home(request: Request, conn: Conn) -> HTMLResponse:
    """The home page: every page, who it is for, and what each role may do."""
    return await page(request, conn, "home.html", "/app/", "Home")


@router.get("/app/coverage", response_class=HTMLResponse)
async def coverage_page(request: Request, conn: Conn) -> HTMLResponse:
    """Coverage: request a report (boroughs or a drawn area), follow it, read it; the key's reports."""
    return await page(request, conn, "coverage.html", "/app/coverage", "Coverage")


@router.get("/app/projects", response_class=HTMLResponse)
async def projects_page(request: Request, conn: Conn) -> HTMLResponse:
    """Pipeline projects: on a map and in a table, filtered; the unplaced ones with their reasons (admins)."""
    return await page(
        request, conn, "projects.html", "/app/projects", "Pipeline projects",
        statuses=project_model.STATUSES, phases=project_model.PHASES,
    )  # fmt: skip


@router.get("/app/uploads", response_class=HTMLResponse)
async def uploads_page(request: Request, conn: Conn) -> HTMLResponse:
    """Uploads: send a borough's file, watch it checked, read the dry run's preview, apply it; earlier uploads."""
    return await page(
        request, conn, "uploads.html", "/app/uploads", "Upload assets",
        asset_kinds={code: kind["label"] for code, kind in load_model().kinds.items()},
        asset_fields=[
            {"name": f.name, "description": f.description, "kinds": list(f.kinds)}
            for f in load_model().attribute_fields()
        ],
    )  # fmt: skip


@router.get("/app/wayleaves", response_class=HTMLResponse)
async def wayleaves_page(request: Request, conn: Conn) -> HTMLResponse:
    """Wayleaves: the board by status, filters, the status changes the key may make, history and KPIs."""
    groups = {
        "main": wayleave_statuses.MAIN_ROUTE,
        "code": wayleave_statuses.CODE_ROUTE,
        "other": tuple(
            s for s in wayleave_statuses.STATUSES
            if s not in (*wayleave_statuses.MAIN_ROUTE, *wayleave_statuses.CODE_ROUTE)
        ),
    }  # fmt: skip
    return await page(
        request, conn, "wayleaves.html", "/app/wayleaves", "Wayleaves",
        statuses=[
            {"code": s, "label": s.replace("_", " ").capitalize(), "group": g}
            for g, members in groups.items() for s in members
        ],
    )  # fmt: skip
