"""``momo-gateway dev`` prints a demo admin for the console, and that login works, before and
after a restart."""

from __future__ import annotations

import httpx

from tests.console.helpers import csrf_of
from tests.e2e.stack import dev_running


async def sign_in(api_url: str, email: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api_url) as http:
        form = await http.get("/console/login")
        signed = await http.post(
            "/console/login",
            data={"email": email, "password": password, "csrf_token": csrf_of(form)},
        )
        assert signed.status_code == 303, signed.text[:300]
        return await http.get("/console/account")


async def test_the_demo_admin_logs_in_before_and_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)

    async with dev_running() as first:
        page = await sign_in(first["api_url"], first["console_email"], first["console_password"])
        assert page.status_code == 200
        assert first["console_email"] in page.text
        assert "admin" in page.text

    async with dev_running() as second:
        assert second["console_password"] == first["console_password"]
        page = await sign_in(second["api_url"], second["console_email"], second["console_password"])
        assert page.status_code == 200
