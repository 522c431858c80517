"""What every console page shares: templates and their filters, who is signed in, the CSRF
check, the refusals (as HTML pages), and the security headers.

Pages depend on ``Viewer`` (anyone signed in) or ``Admin`` (an enabled admin), read forms with
``checked_form`` (which refuses a POST without this session's CSRF token with 403) and answer
with ``render``. Every time on a page is in the operator's timezone; every amount reads
``UGX 50,000``; a phone number is masked unless an admin asked to reveal it.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.console.sessions import SignedIn, signed_in
from app.money import currency_exponent, major_units
from app.operators.models import Operator
from app.operators.service import ADMIN
from app.phone import mask
from app.runtime import Runtime
from app.webhooks.verification import client_ip

SESSION_COOKIE: Final = "momo_console"
LOGIN_CSRF_COOKIE: Final = "momo_console_login"
PREFIX: Final = "/console"

_SECURITY_HEADERS: Final = (
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


# --- formatting ------------------------------------------------------------------------------
def money(minor: int | None, currency: str = "UGX") -> str:
    """``50000, "UGX"`` → ``UGX 50,000``; two-decimal currencies keep their decimals."""
    if minor is None:
        return "—"
    amount: Decimal = major_units(minor, currency)
    places = currency_exponent(currency)
    return f"{currency} {amount:,.{places}f}"


def masked_phone(msisdn: str | None) -> str:
    return mask(msisdn) if msisdn else "—"


def local_time(at: datetime | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """``4 Dec 2026, 09:15`` in the operator's timezone (its abbreviation after it)."""
    if at is None:
        return "—"
    local = at.astimezone(zone)
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{local.day} {local.strftime('%b %Y')}, {clock} {local.tzname()}"


templates = Environment(
    loader=PackageLoader("app.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["money"] = money
templates.filters["masked_phone"] = masked_phone


# --- who is asking ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Console:
    """The signed-in operator and what a page needs to answer them."""

    runtime: Runtime
    signed: SignedIn
    zone: ZoneInfo
    address: str

    @property
    def operator(self) -> Operator:
        return self.signed.operator

    @property
    def is_admin(self) -> bool:
        return self.operator.role == ADMIN

    @property
    def csrf_token(self) -> str:
        return self.signed.session.csrf_token

    def time(self, at: datetime | None, *, seconds: bool = False) -> str:
        return local_time(at, self.zone, seconds=seconds)


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page, then back."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class ConsoleRefused(Exception):
    """A request the console answers with an error page (403 for a viewer or a bad CSRF
    token, 404 for something that does not exist, 409/422 for an action that cannot be done)."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


def client_address(request: Request) -> str:
    runtime: Runtime = request.app.state.runtime
    peer = request.client.host if request.client else None
    found = client_ip(
        peer, request.headers.get("x-forwarded-for"), runtime.settings.trusted_proxy_networks
    )
    return str(found) if found is not None else (peer or "unknown")


def served_over_https(request: Request) -> bool:
    """https to us, or to a trusted proxy that says so (``X-Forwarded-Proto``)."""
    if request.url.scheme == "https":
        return True
    if request.headers.get("x-forwarded-proto", "").lower() != "https" or request.client is None:
        return False
    runtime: Runtime = request.app.state.runtime
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(peer in network for network in runtime.settings.trusted_proxy_networks)


def operator_zone(operator: Operator, runtime: Runtime) -> ZoneInfo:
    return ZoneInfo(operator.timezone or runtime.settings.console_timezone)


async def _viewer(request: Request) -> Console:
    runtime: Runtime = request.app.state.runtime
    signed = await signed_in(runtime.sessions, request.cookies.get(SESSION_COOKIE))
    if signed is None:
        raise LoginRequired(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
    return Console(
        runtime=runtime,
        signed=signed,
        zone=operator_zone(signed.operator, runtime),
        address=client_address(request),
    )


async def _admin(console: Annotated[Console, Depends(_viewer)]) -> Console:
    if not console.is_admin:
        raise ConsoleRefused(
            403,
            "Not allowed",
            "Only an admin can do this; viewers see everything but act on nothing.",
        )
    return console


Viewer = Annotated[Console, Depends(_viewer)]
Admin = Annotated[Console, Depends(_admin)]


async def checked_form(request: Request, console: Console) -> Mapping[str, str]:
    """The form's fields, after checking its CSRF token against the session's (403 if not)."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    sent = fields.pop("csrf_token", "")
    if not hmac.compare_digest(sent.encode(), console.csrf_token.encode()):
        raise ConsoleRefused(
            403,
            "Form expired",
            "This form is missing its security token or it has expired. Reload the page and "
            "try again.",
        )
    return fields


# --- answering -------------------------------------------------------------------------------
def render(
    request: Request,
    template: str,
    *,
    console: Console | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    page = templates.get_template(template).render(
        request=request, console=console, path=request.url.path, **context
    )
    return HTMLResponse(page, status_code=status_code, headers=dict(headers or {}))


def see_other(path: str, *, notice: str | None = None) -> RedirectResponse:
    """After a POST, to the page that shows its result (``notice`` is shown once there)."""
    if notice:
        path += ("&" if "?" in path else "?") + "notice=" + quote(notice[:300])
    return RedirectResponse(path, status_code=303)


def safe_next(path: str | None) -> str:
    """A place inside the console to return to after login, never another site."""
    if not path or not path.startswith(PREFIX + "/") or path.startswith("//") or "\\" in path:
        return PREFIX + "/"
    return path


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    response = RedirectResponse(
        f"{PREFIX}/login?next={quote(safe_next(exc.next_path))}", status_code=303
    )
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefused)
    return render(
        request,
        "error.html",
        status_code=exc.status_code,
        title=exc.title,
        message=exc.message,
    )


EXCEPTION_HANDLERS: Final[
    Mapping[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]
] = {LoginRequired: _login_required, ConsoleRefused: _refused}


class ConsoleHeaders:
    """Security headers on every console response, and no caching of its pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                if not str(scope.get("path", "")).startswith(PREFIX + "/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
