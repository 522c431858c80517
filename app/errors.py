"""Errors as RFC 9457 problem+json, with a stable ``code`` the client can branch on.

    AppError(status, code, detail)   raised by services and routes; rendered as-is
    ├── NotFound                      404 not_found (also for another merchant's objects)
    ├── Unauthorized                  401 unauthorized
    ├── MerchantDisabled              401 merchant_disabled (a known key of a disabled merchant)
    ├── Conflict                      409 <code>
    └── Unprocessable                 422 <code>, optional per-field errors

Everything else (framework errors, unexpected exceptions) is mapped here too, so no stack trace,
SQL or secret ever reaches a response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, get_args

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core.core_schema import ErrorType
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


class MerchantDisabled(AppError):
    def __init__(
        self, detail: str = "This merchant is disabled; contact the gateway's operators."
    ) -> None:
        super().__init__(401, "merchant_disabled", detail, headers={"WWW-Authenticate": "Bearer"})


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
    return problem(
        422,
        "validation_error",
        "The request is not valid.",
        errors=field_errors(errors, exc.body),
    )


# pydantic-core names, in ``loc``, the union branch or wrapped validator that refused a value:
# "str", "int", "constrained-str", a model's class name, or a bracketed name with arguments
# ("function-after[check(), str]", "literal['a']", "json-or-python[...]", "[key]").
_VALIDATOR_NAMES = frozenset(
    {
        "str", "int", "float", "bool", "bytes", "none", "decimal", "complex", "date", "time",
        "datetime", "timedelta", "uuid", "url", "multi-host-url", "any", "callable",
        "generator", "is-instance", "is-subclass", "constrained-str", "constrained-int",
        "constrained-float", "constrained-bytes", "constrained-decimal",
    }
)  # fmt: skip
# pydantic's types for errors a schema's own validators raise (ValueError, assert); anything
# not in pydantic's list is a PydanticCustomError: a message the schema wrote for its field.
_OWN_ERROR_TYPES = frozenset({"value_error", "assertion_error"})
_PYDANTIC_ERROR_TYPES = frozenset(get_args(ErrorType)) - _OWN_ERROR_TYPES
_PARAMETER_SOURCES = frozenset({"query", "path", "header", "cookie"})


def _is_validator_name(part: object) -> bool:
    return isinstance(part, str) and (part in _VALIDATOR_NAMES or "[" in part)


def _real_path(path: Sequence[Any], body: Any, *, missing: bool) -> list[Any]:
    """The items of ``path`` that are places in ``body``; the others are validator names.

    A missing field is not in the body, so the last item of a ``missing`` error is kept.
    """
    value, parts = body, []
    for index, part in enumerate(path):
        in_object = isinstance(value, dict) and isinstance(part, str) and part in value
        in_array = isinstance(value, list) and type(part) is int and 0 <= part < len(value)
        if in_object or in_array:
            value = value[part]
        elif missing and index == len(path) - 1 and not _is_validator_name(part):
            value = None
        else:
            continue
        parts.append(part)
    return parts


def field_name(error: Mapping[str, Any], body: Any = None) -> str:
    """The dotted path the client sent (``amount``, ``metadata.cart``, ``items.0``, ``limit``)
    for a pydantic error, without the ``body`` prefix or pydantic's validator names."""
    loc = tuple(error.get("loc", ()))
    source, path = (loc[0], loc[1:]) if loc else ("body", ())
    if source in _PARAMETER_SOURCES and path:
        # A parameter is flat: its name, then at most list indices.
        parts = [path[0], *(part for part in path[1:] if type(part) is int)]
    elif isinstance(body, dict | list):
        parts = _real_path(path, body, missing=error.get("type") == "missing")
    else:  # no parsed body to compare with: drop what reads as a validator's name
        parts = [part for part in path if not _is_validator_name(part)]
    return ".".join(str(part) for part in parts) or "body"


def _message(error: Mapping[str, Any]) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if error.get("type") in _OWN_ERROR_TYPES and cause is not None:
        return str(cause)  # the validator's own words, without pydantic's "Value error, "
    return str(error.get("msg"))


def _one_message(errors: list[Mapping[str, Any]]) -> str:
    """One message for a field pydantic refused several times (once per union branch).

    A message the schema wrote for the field wins over pydantic's generic ones; generic
    "Input should be …" messages read as one sentence.
    """
    own = [error for error in errors if error.get("type") not in _PYDANTIC_ERROR_TYPES]
    messages = list(dict.fromkeys(_message(error) for error in own or errors))
    if len(messages) == 1:
        return messages[0]
    expected = "Input should be "
    if all(message.startswith(expected) for message in messages):
        return expected + " or ".join(message.removeprefix(expected) for message in messages)
    return "; ".join(messages)


def field_errors(errors: Sequence[Mapping[str, Any]], body: Any = None) -> list[dict[str, str]]:
    """pydantic's errors as ``[{field, message}]``: one entry per field, in the order met."""
    by_field: dict[str, list[Mapping[str, Any]]] = {}
    for error in errors:
        by_field.setdefault(field_name(error, body), []).append(error)
    return [{"field": field, "message": _one_message(found)} for field, found in by_field.items()]


_HTTP_CODES = {
    # FastAPI's answer to a body json.loads refused with something other than a decode error
    # (an integer of more than 4,300 digits): still a body that is not usable JSON.
    400: ("malformed_json", "The request body is not valid JSON."),
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
