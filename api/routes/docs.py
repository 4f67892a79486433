"""``GET /docs``: the interactive API page, with the app's own Swagger UI files (no CDN)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from maps.static_files import STATIC_URL, english

router = APIRouter(include_in_schema=False)
SWAGGER = "vendor/swagger-ui-dist-5.35.0"


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``; its script and styles come from ``/static``."""
    prefix = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{prefix}/openapi.json",
        title="connectivity: API",
        swagger_js_url=f"{prefix}{STATIC_URL}/{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{prefix}{STATIC_URL}/{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{prefix}{STATIC_URL}/{SWAGGER}/favicon-32x32.png",
    )
    return HTMLResponse(english(bytes(page.body).decode()))
