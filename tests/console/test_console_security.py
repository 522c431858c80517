"""The console's door: login, session limits, CSRF, lockout, roles, headers, and switching it
off. HTTP-level (httpx in-process); the browser tests drive the same pages in Chromium."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text, update

from app.console.models import ConsoleSession
from app.console.sessions import ABSOLUTE_LIMIT, IDLE_LIMIT, locked_until, record_failed_login
from app.db import utcnow
from app.operators.service import disable_operator
from tests.conftest import count_rows, make_settings, running_app
from tests.console.helpers import (
    ADMIN_EMAIL,
    PASSWORD,
    VIEWER_EMAIL,
    csrf_of,
    make_operator,
    post_form,
    sign_in,
)


@pytest.fixture
async def operators(runtime):
    await make_operator(runtime, ADMIN_EMAIL, "admin")
    await make_operator(runtime, VIEWER_EMAIL, "viewer")


async def test_a_page_without_a_session_sends_to_login_and_back(client, operators):
    answer = await client.get("/console/account?tab=zone")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/account%3Ftab%3Dzone"
    form = await client.get(answer.headers["location"])
    assert 'name="next" value="/console/account?tab=zone"' in form.text
    signed = await client.post(
        "/console/login",
        data={
            "email": ADMIN_EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_of(form),
            "next": "/console/account?tab=zone",
        },
    )
    assert (signed.status_code, signed.headers["location"]) == (
        303,
        "/console/account?tab=zone",
    )


async def test_login_sets_a_strict_http_only_cookie_and_audits_it(client, runtime, operators):
    answer = await sign_in(client)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "momo_console=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    account = await client.get("/console/account")
    assert account.status_code == 200
    assert ADMIN_EMAIL in account.text
    assert await count_rows(runtime, "operator_actions", "action = 'console.login'") == 1
    assert await count_rows(runtime, "console_sessions") == 1
    # The table holds the token's hash, never the cookie's value.
    token = client.cookies.get("momo_console")
    async with runtime.engine.connect() as connection:
        ids = (await connection.execute(text("SELECT id FROM console_sessions"))).scalars().all()
    assert token not in ids


async def test_cookie_is_secure_behind_a_trusted_proxy_saying_https(clean_db, fake_providers):
    settings = make_settings(clean_db, trusted_proxies="127.0.0.1/32")
    async with running_app(settings, fake_providers) as (application, http):
        await make_operator(application.state.runtime, ADMIN_EMAIL, "admin")
        form = await http.get("/console/login", headers={"x-forwarded-proto": "https"})
        assert "Secure" in form.headers["set-cookie"]


@pytest.mark.parametrize("password", ["wrong password!!", ""])
async def test_a_wrong_password_is_refused_and_audited(client, runtime, operators, password):
    answer = await sign_in(client, password=password)
    assert answer.status_code == 401
    assert "do not match" in answer.text
    assert "momo_console=" not in answer.headers.get("set-cookie", "")
    failed = await count_rows(
        runtime, "operator_actions", "action = 'console.login_failed' AND actor = :a", a=ADMIN_EMAIL
    )
    assert failed == 1


async def test_five_failures_in_fifteen_minutes_lock_the_account_even_for_the_right_password(
    client, runtime, operators
):
    for _ in range(5):
        assert (await sign_in(client, password="not the password")).status_code == 401
    locked = await sign_in(client)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text
    assert "momo_console=" not in locked.headers.get("set-cookie", "")
    assert await count_rows(runtime, "operator_actions", "action = 'console.login_locked'") == 1
    # Another account is not locked by these failures.
    await make_operator(runtime, "second@shop.example", "admin")
    assert (await sign_in(client, email="second@shop.example")).status_code == 303
    # Fifteen minutes after the fifth failure the lock is over (the audit log cannot be
    # rewritten, so the rule is read at a later clock).
    assert await locked_until(runtime.sessions, ADMIN_EMAIL) is not None
    later = utcnow() + timedelta(minutes=15, seconds=5)
    assert await locked_until(runtime.sessions, ADMIN_EMAIL, now=later) is None


async def test_four_failures_do_not_lock_and_the_fifth_does(runtime, operators):
    for _ in range(4):
        await record_failed_login(runtime.sessions, ADMIN_EMAIL, "10.0.0.1")
    assert await locked_until(runtime.sessions, ADMIN_EMAIL) is None
    await record_failed_login(runtime.sessions, ADMIN_EMAIL, "10.0.0.1")
    assert await locked_until(runtime.sessions, ADMIN_EMAIL) is not None


async def test_a_post_without_its_csrf_token_is_refused(client, runtime, operators):
    await sign_in(client)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        refused = await client.post("/console/logout", data=data)
        assert refused.status_code == 403, data
        assert "security token" in refused.text
    assert await count_rows(runtime, "console_sessions") == 1  # still signed in
    signed_out = await post_form(client, "/console/account", "/console/logout", {})
    assert signed_out.status_code == 303
    assert await count_rows(runtime, "console_sessions") == 0
    assert (await client.get("/console/account")).status_code == 303


async def test_a_login_post_without_the_form_token_is_refused(client, operators):
    refused = await client.post(
        "/console/login", data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": "x"}
    )
    assert refused.status_code == 403


async def test_a_session_idle_for_thirty_minutes_ends(client, runtime, operators):
    await sign_in(client)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(ConsoleSession).values(last_seen_at=utcnow() - IDLE_LIMIT - timedelta(seconds=5))
        )
    assert (await client.get("/console/account")).status_code == 303
    assert await count_rows(runtime, "console_sessions") == 0


async def test_a_session_ends_twelve_hours_after_login_however_busy(client, runtime, operators):
    await sign_in(client)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(ConsoleSession).values(
                created_at=utcnow() - ABSOLUTE_LIMIT - timedelta(seconds=5), last_seen_at=utcnow()
            )
        )
    assert (await client.get("/console/account")).status_code == 303


async def test_a_disabled_operator_is_signed_out_at_once(client, runtime, operators):
    await sign_in(client)
    assert (await client.get("/console/account")).status_code == 200
    await disable_operator(runtime.sessions, ADMIN_EMAIL)
    assert (await client.get("/console/account")).status_code == 303
    assert (await sign_in(client)).status_code == 401


async def test_login_never_returns_to_another_site(client, operators):
    for target in ("https://evil.example/", "//evil.example/console/", "/console\\@evil"):
        client.cookies.clear()
        form = await client.get("/console/login")
        answer = await client.post(
            "/console/login",
            data={
                "email": ADMIN_EMAIL,
                "password": PASSWORD,
                "csrf_token": csrf_of(form),
                "next": target,
            },
        )
        assert answer.headers["location"] == "/console/", target


async def test_every_console_answer_has_the_security_headers(client, operators):
    for path in ("/console/login", "/console/account", "/console/static/console.css"):
        if path == "/console/account":
            await sign_in(client)
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    api = await client.get("/healthz")
    assert "x-frame-options" not in api.headers


async def test_a_viewer_changes_their_own_timezone_and_it_is_audited(client, runtime, operators):
    await sign_in(client, email=VIEWER_EMAIL)
    saved = await post_form(client, "/console/account", "/console/account", {"timezone": "UTC"})
    assert saved.status_code == 303
    page = await client.get("/console/account")
    assert '<option value="UTC" selected>' in page.text
    bad = await post_form(client, "/console/account", "/console/account", {"timezone": "Mars/Base"})
    assert bad.status_code == 422
    assert await count_rows(runtime, "operator_actions", "action = 'operator.set_timezone'") == 1


async def test_console_disabled_is_a_404_everywhere(clean_db, fake_providers):
    settings = make_settings(clean_db, console_enabled=False)
    async with running_app(settings, fake_providers) as (_, http):
        for path in ("/console/", "/console/login", "/console/static/console.css"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.post("/console/login", data={})).status_code == 404
