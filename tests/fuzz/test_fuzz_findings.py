"""Defects the fuzzers found, each kept as an exact regression test.

1. A NUL character in an id, a query parameter or a callback reference reached PostgreSQL,
   which cannot store U+0000 in text: asyncpg refused the query and the app answered 503
   service_unavailable ("retry shortly"), though retrying could never help. No row can have
   such an id, so the answer is a 4xx.
2. Every unexpected error went through Starlette's last-resort handler, which answers and then
   re-raises: uvicorn logged a crash and reset the keep-alive connection, so the client's next
   request on it failed with ECONNRESET.
"""

from __future__ import annotations

import httpx
import pytest

from app.vocabulary import Provider
from tests.fuzz.live import LiveGateway

NUL_REQUESTS = [
    ("GET", "/v1/payments/pay_a%00b", None),
    ("POST", "/v1/payments/pay_a%00b/refresh", None),
    ("GET", "/v1/payments?order_id=a%00b", None),
    ("GET", "/v1/payments?starting_after=a%00b", None),
    ("GET", "/v1/events?payment_id=a%00b", None),
    ("GET", "/v1/events/evt_a%00b", None),
    ("POST", "/v1/events/evt_a%00b/redeliver", None),
    ("PUT", "/api/webhooks/mtn-momo/", b'{"referenceId": "a\\u0000b", "status": "SUCCESSFUL"}'),
    ("PUT", "/api/webhooks/mtn-momo/", b'{"externalId": "a\\u0000b", "status": "SUCCESSFUL"}'),
    ("PUT", "/api/webhooks/mtn-momo/a%00b/token", b"{}"),
    ("POST", "/api/webhooks/airtel-money/", b'{"transaction": {"id": "a\\u0000b"}}'),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS, ids=lambda v: str(v)[:40])
def test_nul_characters_are_refused_as_client_errors(
    live_gateway: LiveGateway, method: str, path: str, body: bytes | None
):
    response = httpx.request(
        method,
        f"{live_gateway.url}{path}",
        content=body,
        headers={**live_gateway.auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"]


def test_a_server_error_keeps_the_connection(live_gateway: LiveGateway):
    created = httpx.post(
        f"{live_gateway.url}/v1/payments",
        json={"order_id": "BOOM-1", "amount": "1000", "phone_number": "0772123456"},
        headers=live_gateway.auth,
        timeout=30,
    )
    assert created.status_code in (201, 409), created.text
    payment = httpx.get(
        f"{live_gateway.url}/v1/payments",
        params={"order_id": "BOOM-1"},
        headers=live_gateway.auth,
        timeout=30,
    ).json()["data"][0]
    mtn = live_gateway.providers[Provider.MTN_MOMO]
    original = mtn.get_status

    async def explode(reference: str) -> object:
        raise RuntimeError("an error nobody planned for")

    mtn.get_status = explode  # type: ignore[method-assign]
    try:
        with httpx.Client(
            base_url=live_gateway.url, headers=live_gateway.auth, timeout=30
        ) as client:
            failed = client.post(f"/v1/payments/{payment['id']}/refresh")
            assert failed.status_code == 500
            assert failed.headers["content-type"].startswith("application/problem+json")
            assert failed.json()["code"] == "internal_error"
            assert "nobody planned" not in failed.text
            # The same keep-alive connection still works.
            assert client.get("/healthz").status_code == 200
    finally:
        mtn.get_status = original  # type: ignore[method-assign]
