"""``/docs`` (Swagger UI) and ``/redoc``, with every asset served by the app itself.

FastAPI's own pages load their JavaScript, CSS, favicon (and ReDoc's fonts) from CDNs, so they
render blank with no internet. The same pages here point at copies shipped in the
``fastapi-offline`` package and mounted at ``DOCS_STATIC_PATH``; nothing on either page names
another host.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
DOCS_STATIC_PATH = "/docs-static"

# Swagger UI's default validator is validator.swagger.io: the spec would be sent off the machine
# for a badge. The document is checked in the test suite instead.
_SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}


def install_api_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` as FastAPI would, offline.

    Build ``app`` with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not also
    registered. The pages stay out of the OpenAPI document, like FastAPI's own.
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    app.mount(
        DOCS_STATIC_PATH,
        StaticFiles(packages=[("fastapi_offline", "static")]),
        name="docs-static",
    )
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    swagger_ui_parameters = {**_SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})}

    def prefix(request: Request) -> str:
        # Behind a proxy that mounts the gateway under a path, links must carry that path.
        root_path: str = request.scope.get("root_path", "")
        return root_path.rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC_PATH}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=swagger_ui_parameters,
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC_PATH}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)
    if oauth2_redirect_url:

        async def swagger_ui_redirect(request: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, include_in_schema=False)
