"""Errors as RFC 9457 problem+json, with a stable ``code`` the client can branch on.

    AppError(status, code, detail)   raised by services and routes; rendered as-is
    ├── NotFound                      404 not_found (also for another merchant's objects)
    ├── Unauthorized                  401 unauthorized
    ├── Conflict                      409 <code>
    └── Unprocessable                 422 <code>, optional per-field errors

Everything else (framework errors, unexpected exceptions) is mapped here too, so no stack trace,
SQL or secret ever reaches a response.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://momo-gateway.dev/problems/"


class AppError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.extra = extra or {}
        self.headers = headers


class NotFound(AppError):
    def __init__(self, detail: str = "No such object.") -> None:
        super().__init__(404, "not_found", detail)


class Unauthorized(AppError):
    def __init__(self, detail: str) -> None:
        super().__init__(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


class Conflict(AppError):
    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(409, code, detail, extra=extra)


class Unprocessable(AppError):
    def __init__(
        self, code: str, detail: str, *, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(422, code, detail, errors=errors)


def field_error(code: str, field: str, message: str) -> Unprocessable:
    return Unprocessable(code, message, errors=[{"field": field, "message": message}])


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def problem_for(exc: AppError) -> JSONResponse:
    return problem(
        exc.status, exc.code, exc.detail, errors=exc.errors, extra=exc.extra, headers=exc.headers
    )


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_for(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem(400, "malformed_json", "The request body is not valid JSON.")
    fields = [
        {"field": _field_name(tuple(error.get("loc", ()))), "message": str(error.get("msg"))}
        for error in errors
    ]
    return problem(422, "validation_error", "The request is not valid.", errors=fields)


_HTTP_CODES = {
    404: ("not_found", "No such route."),
    405: ("method_not_allowed", "This method is not allowed on this route."),
    413: ("payload_too_large", "The request body is too large."),
}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    if exc.status_code == 404 and exc.detail not in (None, "Not Found"):
        detail = str(exc.detail)
    return problem(exc.status_code, code, detail, headers=getattr(exc, "headers", None))


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


def database_unavailable(exc: BaseException) -> bool:
    """Connection trouble (server down, connections exhausted, a dropped link), as opposed to a
    bad query: the first is worth retrying (503), the second is our bug (500)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, InterfaceError | OperationalError):
        return True  # connection-level by definition (SQLite: locked, cannot open)
    seen: BaseException | None = exc
    for _ in range(6):  # the driver's error hides a few causes deep
        if seen is None:
            return False
        if isinstance(seen, _CONNECTION_ERRORS):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    if database_unavailable(exc):
        logger.error("database unavailable: %s", type(exc).__name__)
        return problem(
            503,
            "service_unavailable",
            "A dependency is unavailable; nothing was lost. Retry shortly.",
            headers={"Retry-After": "5"},
        )
    logger.error("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Something went wrong on our side.")


class UnexpectedErrors:
    """Answers any exception the routes let through as problem+json, and keeps the connection.

    Starlette's own last-resort handler answers too but then re-raises, so the server logs a
    crash and drops the keep-alive connection; here the error is logged once and that is all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # too late to answer: let the server close the connection
            await unexpected_error_response(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrors)
