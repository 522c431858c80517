"""Nothing from outside is believed: every forged, altered or misaddressed Saleor request is
refused and leaves the database exactly as it was."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from app.saleor.events import SaleorEvent
from app.simulator.saleor import FakeSaleor, global_id
from tests.saleor.conftest import SaleorStack, serving

TABLES = ("payments", "refunds", "merchants", "saleor_installations", "idempotency_records")


async def snapshot(stack: SaleorStack) -> dict[str, Any]:
    """Everything a refused request must not change."""
    state: dict[str, Any] = {}
    async with stack.stack.runtime.engine.connect() as connection:
        for table in TABLES:
            count = text(f"SELECT count(*) FROM {table}")  # noqa: S608 (names from TABLES)
            state[table] = (await connection.execute(count)).scalar()
        rows = await connection.execute(
            text(
                "SELECT saleor_api_url, app_id, app_token_encrypted, app_token_sha256, "
                "jwks_fetched_at, updated_at FROM saleor_installations ORDER BY id"
            )
        )
        state["installations"] = [tuple(row) for row in rows]
    return state


def initialize_body(saleor: FakeSaleor, **overrides: Any) -> bytes:
    transaction_id = global_id("TransactionItem")
    payload = saleor.event_body(
        SaleorEvent.TRANSACTION_INITIALIZE_SESSION,
        idempotencyKey="key-" + transaction_id[:20],
        data={"phone_number": "0772123456"},
        action={"amount": 5000, "currency": "UGX", "actionType": "CHARGE"},
        transaction={"id": transaction_id, "pspReference": ""},
    )
    payload.update(overrides)
    return json.dumps(payload).encode()


async def post(
    stack: SaleorStack,
    body: bytes,
    *,
    event: SaleorEvent = SaleorEvent.TRANSACTION_INITIALIZE_SESSION,
    **header_overrides: str,
) -> httpx.Response:
    headers = httpx.Headers(stack.saleor.headers(event, body))
    for name, value in header_overrides.items():
        headers[name.replace("_", "-")] = value
    return await stack.http.post(
        stack.saleor.target_urls[event.value], content=body, headers=headers
    )


@pytest.fixture
async def installed(saleor_stack: SaleorStack) -> SaleorStack:
    assert (await saleor_stack.install()).status_code == 200
    return saleor_stack


async def assert_refused(
    stack: SaleorStack, response_for: Any, status: int | range = 401
) -> httpx.Response:
    before = await snapshot(stack)
    response = await response_for()
    expected = status if isinstance(status, range) else range(status, status + 1)
    assert response.status_code in expected, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await snapshot(stack) == before
    return response


async def test_the_genuine_request_is_accepted(installed: SaleorStack) -> None:
    # The control for every refusal below: the same request, untouched, makes a payment.
    before = await snapshot(installed)
    response = await post(installed, initialize_body(installed.saleor))
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "CHARGE_ACTION_REQUIRED"
    assert (await snapshot(installed))["payments"] == before["payments"] + 1


async def test_a_body_signed_with_another_key_is_refused(installed: SaleorStack) -> None:
    body = initialize_body(installed.saleor)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = installed.saleor.sign(body, key=stranger)  # same kid as Saleor's own key
    await assert_refused(installed, lambda: post(installed, body, saleor_signature=forged))


async def test_an_hs256_token_made_with_saleors_public_key_is_refused(
    installed: SaleorStack,
) -> None:
    body = initialize_body(installed.saleor)
    public_pem = installed.saleor.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": installed.saleor.kid, "b64": False, "crit": ["b64"]}
    forged = _detached_token(header, body, lambda signing_input: _hmac(public_pem, signing_input))
    await assert_refused(installed, lambda: post(installed, body, saleor_signature=forged))


async def test_an_unsigned_none_token_is_refused(installed: SaleorStack) -> None:
    body = initialize_body(installed.saleor)
    header = {"alg": "none", "kid": installed.saleor.kid, "b64": False, "crit": ["b64"]}
    forged = _detached_token(header, body, lambda signing_input: b"")
    await assert_refused(installed, lambda: post(installed, body, saleor_signature=forged))


async def test_a_modified_body_is_refused(installed: SaleorStack) -> None:
    body = initialize_body(installed.saleor)
    signature = installed.saleor.sign(body)
    altered = body.replace(b'"amount": 5000', b'"amount": 5')
    assert altered != body
    await assert_refused(installed, lambda: post(installed, altered, saleor_signature=signature))


async def test_a_missing_signature_is_refused(installed: SaleorStack) -> None:
    body = initialize_body(installed.saleor)
    await assert_refused(installed, lambda: post(installed, body, saleor_signature=""))


async def test_an_unknown_saleor_url_is_refused(installed: SaleorStack) -> None:
    body = initialize_body(installed.saleor)
    await assert_refused(
        installed, lambda: post(installed, body, saleor_api_url="https://evil.example/graphql/")
    )


async def test_a_body_for_another_app_is_refused(installed: SaleorStack) -> None:
    other_app = base64.b64encode(b"App:2").decode()
    body = initialize_body(installed.saleor, recipient={"id": other_app})
    await assert_refused(installed, lambda: post(installed, body))


async def test_a_signed_body_replayed_to_another_event_url_is_refused(
    installed: SaleorStack,
) -> None:
    body = initialize_body(installed.saleor)
    refund_url = installed.saleor.target_urls[SaleorEvent.TRANSACTION_REFUND_REQUESTED.value]
    headers = installed.saleor.headers(SaleorEvent.TRANSACTION_REFUND_REQUESTED, body)
    await assert_refused(
        installed, lambda: installed.http.post(refund_url, content=body, headers=headers), 400
    )


async def test_an_unknown_key_id_fetches_the_jwks_once_then_is_refused(
    installed: SaleorStack,
) -> None:
    body = initialize_body(installed.saleor)
    fetched_at_install = installed.saleor.jwks_requests
    unknown = installed.saleor.sign(body, kid="rotated-key")
    await assert_refused(installed, lambda: post(installed, body, saleor_signature=unknown))
    assert installed.saleor.jwks_requests == fetched_at_install + 1
    # Again at once: no second fetch (rate limited), still refused.
    await assert_refused(installed, lambda: post(installed, body, saleor_signature=unknown))
    assert installed.saleor.jwks_requests == fetched_at_install + 1


async def test_a_rotated_saleor_key_is_picked_up_by_one_refetch(installed: SaleorStack) -> None:
    installed.saleor.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    installed.saleor.kid = "fake-saleor-2"
    response = await post(installed, initialize_body(installed.saleor))
    assert response.status_code == 200, response.text


async def test_an_install_from_a_url_not_allowed_is_refused(saleor_stack: SaleorStack) -> None:
    intruder = FakeSaleor()
    async with serving(intruder):
        response = await assert_refused(
            saleor_stack,
            lambda: intruder.install(saleor_stack.http, saleor_stack.manifest_url),
            403,
        )
    assert response.json()["code"] == "saleor_not_allowed"
    assert intruder.jwks_requests == 0  # not even asked


async def test_a_replayed_install_is_refused(installed: SaleorStack) -> None:
    register_url = str(installed.stack.gateway.base_url.join("/saleor/api/register"))
    response = await assert_refused(
        installed,
        lambda: installed.http.post(
            register_url,
            json={"auth_token": installed.saleor.app_token},
            headers={"saleor-api-url": installed.saleor.api_url},
        ),
        409,
    )
    assert response.json()["code"] == "already_installed"


async def test_an_install_with_a_token_saleor_does_not_honour_is_refused(
    saleor_stack: SaleorStack,
) -> None:
    register_url = str(saleor_stack.stack.gateway.base_url.join("/saleor/api/register"))
    response = await assert_refused(
        saleor_stack,
        lambda: saleor_stack.http.post(
            register_url,
            json={"auth_token": "a-token-saleor-never-issued"},
            headers={"saleor-api-url": saleor_stack.saleor.api_url},
        ),
        400,
    )
    assert response.json()["code"] == "saleor_install_failed"


async def test_a_reinstall_with_a_new_token_keeps_the_merchant(installed: SaleorStack) -> None:
    before = await snapshot(installed)
    installed.saleor.app_token = "saleor-app-token-reissued"
    response = await installed.install()
    assert response.status_code == 200, response.text
    assert response.json()["created"] is False
    after = await snapshot(installed)
    assert after["merchants"] == before["merchants"]
    assert after["installations"][0][3] != before["installations"][0][3]  # the new token's hash


async def test_the_app_token_is_not_stored_in_clear(installed: SaleorStack) -> None:
    async with installed.stack.runtime.engine.connect() as connection:
        stored = (
            await connection.execute(text("SELECT app_token_encrypted FROM saleor_installations"))
        ).scalar()
    assert installed.saleor.app_token not in stored


def _detached_token(header: dict[str, Any], body: bytes, sign: Any) -> str:
    encoded = jwt.utils.base64url_encode(json.dumps(header).encode())
    signature = sign(encoded + b"." + body)
    return f"{encoded.decode()}..{jwt.utils.base64url_encode(signature).decode()}"


def _hmac(key: bytes, message: bytes) -> bytes:
    import hashlib
    import hmac

    return hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"auth_token": "t"}', {}),  # no saleor-api-url
        (b"not json", {"saleor-api-url": "http://x/graphql/"}),
        (b'["auth_token"]', {"saleor-api-url": "http://x/graphql/"}),
        (b'{"auth_token": 12}', {"saleor-api-url": "http://x/graphql/"}),
        (b'{"auth_token": "' + b"t" * 5000 + b'"}', {"saleor-api-url": "http://x/graphql/"}),
    ],
)
async def test_a_malformed_install_is_a_clear_4xx(
    saleor_stack: SaleorStack, body: bytes, headers: dict[str, str]
) -> None:
    register_url = str(saleor_stack.stack.gateway.base_url.join("/saleor/api/register"))
    await assert_refused(
        saleor_stack,
        lambda: saleor_stack.http.post(
            register_url, content=body, headers={"Content-Type": "application/json", **headers}
        ),
        range(400, 500),
    )


async def test_an_unknown_webhook_path_is_404(installed: SaleorStack) -> None:
    url = str(installed.stack.gateway.base_url.join("/saleor/api/webhooks/order-created"))
    body = initialize_body(installed.saleor)
    response = await installed.http.post(
        url,
        content=body,
        headers=installed.saleor.headers(SaleorEvent.TRANSACTION_INITIALIZE_SESSION, body),
    )
    assert response.status_code == 404
