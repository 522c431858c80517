"""Signing in to the console from an httpx client, for the console's HTTP-level tests."""

from __future__ import annotations

import re

import httpx

from app.operators.service import create_operator
from app.runtime import Runtime

ADMIN_EMAIL = "admin@shop.example"
VIEWER_EMAIL = "viewer@shop.example"
PASSWORD = "correct horse battery staple"

_HIDDEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response | str) -> str:
    """The CSRF token of the first form on a page."""
    text = page if isinstance(page, str) else page.text
    found = _HIDDEN.search(text)
    assert found is not None, "no form with a CSRF token on this page"
    return found.group(1)


async def make_operator(runtime: Runtime, email: str, role: str) -> None:
    await create_operator(runtime.sessions, email, role=role, password=PASSWORD)


async def sign_in(
    client: httpx.AsyncClient, email: str = ADMIN_EMAIL, password: str = PASSWORD
) -> httpx.Response:
    """Load the login form (its cookie and token) and post it; the session cookie stays in the
    client's jar. Returns the login POST's answer (303 on success)."""
    form = await client.get("/console/login")
    return await client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form), "next": ""},
    )


async def post_form(
    client: httpx.AsyncClient, page_path: str, action: str, fields: dict[str, str]
) -> httpx.Response:
    """Open ``page_path``, take its CSRF token, and post ``fields`` to ``action``."""
    page = await client.get(page_path)
    assert page.status_code == 200, page.text[:500]
    return await client.post(action, data={**fields, "csrf_token": csrf_of(page)})
