"""Every error is problem+json with a stable code, and nothing internal leaks."""

from __future__ import annotations

import pytest
from fastapi import APIRouter


async def test_unknown_route_is_problem_json(client):
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


async def test_wrong_method_is_problem_json(client):
    response = await client.delete("/v1/payments")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_unexpected_errors_are_500_without_internals(app, client):
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM vault -- password=hunter2")

    app.include_router(router)
    from httpx import ASGITransport, AsyncClient

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "SELECT" not in response.text
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_an_unreachable_database_is_503_not_500(fake_providers):
    from httpx import ASGITransport, AsyncClient

    from tests.conftest import make_settings, running_app

    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    async with running_app(settings, fake_providers) as (app, _):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/v1/payments", headers={"Authorization": "Bearer mgw_x"})
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5"


NUL_REQUESTS = [
    ("GET", "/v1/payments/pay_a%00b", None, 404),
    ("POST", "/v1/payments/pay_a%00b/refresh", None, 404),
    ("GET", "/v1/payments?order_id=a%00b", None, 422),
    ("GET", "/v1/payments?starting_after=a%00b", None, 422),
    ("GET", "/v1/events?payment_id=a%00b", None, 422),
    ("GET", "/v1/events/evt_a%00b", None, 404),
    ("POST", "/v1/events/evt_a%00b/redeliver", None, 404),
    ("PUT", "/api/webhooks/mtn-momo/", b'{"referenceId": "a\\u0000b"}', 404),
    ("PUT", "/api/webhooks/mtn-momo/", b'{"externalId": "a\\u0000b"}', 404),
    ("PUT", "/api/webhooks/mtn-momo/a%00b/token", b"{}", 401),
    ("POST", "/api/webhooks/airtel-money/", b'{"transaction": {"id": "a\\u0000b"}}', 404),
    (
        "POST",
        "/v1/payments",
        b'{"order_id": "O-1", "amount": "1000", "phone_number": "0772123456",'
        b' "metadata": {"k": "a\\u0000b"}}',
        422,
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), NUL_REQUESTS)
async def test_a_nul_character_anywhere_is_a_client_error(client, auth, method, path, body, status):
    # PostgreSQL text cannot hold U+0000: such input must be refused before any query.
    response = await client.request(
        method, path, content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
