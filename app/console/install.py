"""Mounting the console on the API app (or not: ``CONSOLE_ENABLED=false`` leaves every
``/console/`` path a 404)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.config import Settings
from app.console import login
from app.console.pages import audit, merchants, overview, payments
from app.console.web import EXCEPTION_HANDLERS, PREFIX, ConsoleHeaders


def install_console(app: FastAPI, settings: Settings) -> None:
    if not settings.console_enabled:
        return
    app.add_middleware(ConsoleHeaders)
    for exception, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exception, handler)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(packages=[("app.console", "static")]),
        name="console-static",
    )
    for module in (login, overview, payments, merchants, audit):
        app.include_router(module.router)
