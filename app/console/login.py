"""Signing in and out, the console's front door, and the operator's own settings."""

from __future__ import annotations

import secrets
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.console.sessions import (
    IDLE_LIMIT,
    end_session,
    locked_until,
    record_failed_login,
    signed_in,
    start_session,
)
from app.console.web import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    ConsoleRefused,
    Viewer,
    checked_form,
    client_address,
    render,
    safe_next,
    see_other,
    served_over_https,
)
from app.db import utcnow
from app.operators.audit import record_action
from app.operators.models import Operator
from app.operators.service import InvalidEmail, authenticate, normalise_email
from app.runtime import Runtime

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _login_page(
    request: Request, *, next_path: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    # Double-submit token: the form's hidden field must match this cookie (no session yet).
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        login_csrf=token,
        next_path=next_path,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request),
        max_age=3600,
    )
    return response


@router.get("/", response_class=HTMLResponse)
async def front_door(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/overview", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    runtime: Runtime = request.app.state.runtime
    if await signed_in(runtime.sessions, request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_path=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    runtime: Runtime = request.app.state.runtime
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf_token.encode(), expected.encode()):
        raise ConsoleRefused(
            403, "Form expired", "The login form expired. Reload the page and sign in again."
        )
    address = client_address(request)
    next_path = safe_next(next)
    try:
        account = normalise_email(email)
    except InvalidEmail:
        account = email.strip().lower()[:254]
    until = await locked_until(runtime.sessions, account)
    if until is not None:
        await record_failed_login(runtime.sessions, account, address, locked=True)
        minutes = max(1, int((until - utcnow()).total_seconds() // 60) + 1)
        return _login_page(
            request,
            next_path=next_path,
            status_code=429,
            error=f"Too many failed logins for this account. Try again in {minutes} minutes.",
        )
    operator = await authenticate(runtime.sessions, email, password)
    if operator is None:
        await record_failed_login(runtime.sessions, account, address)
        return _login_page(
            request,
            next_path=next_path,
            status_code=401,
            error="That email and password do not match an enabled operator.",
        )
    token, _ = await start_session(runtime.sessions, operator, address)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request),
        max_age=int(IDLE_LIMIT.total_seconds()) * 24,  # the server's limits are what count
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request, console: Viewer) -> Response:
    await checked_form(request, console)
    await end_session(console.runtime.sessions, console.signed, console.address)
    response = RedirectResponse(f"{PREFIX}/login?notice=signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, console: Viewer, notice: str | None = None) -> Response:
    return render(
        request,
        "account.html",
        console=console,
        timezones=sorted(available_timezones()),
        default_zone=console.runtime.settings.console_timezone,
        notice=notice,
    )


@router.post("/account")
async def change_account(request: Request, console: Viewer) -> Response:
    fields = await checked_form(request, console)
    zone = fields.get("timezone", "").strip()
    if zone and zone not in available_timezones():
        raise ConsoleRefused(422, "Unknown timezone", f"{zone[:64]!r} is not a timezone name.")
    async with console.runtime.sessions.begin() as session:
        stored = await session.get(Operator, console.operator.id, with_for_update=True)
        if stored is None:
            raise ConsoleRefused(404, "Not found", "This operator no longer exists.")
        before = stored.timezone
        stored.timezone = zone or None
        await record_action(
            session,
            operator=stored,
            actor=stored.email,
            action="operator.set_timezone",
            target_type="operator",
            target_id=stored.id,
            source=console.address,
            detail={"from": before, "to": stored.timezone},
        )
    return see_other(f"{PREFIX}/account", notice="Timezone saved.")
