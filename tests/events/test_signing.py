from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.events.signing import generate_webhook_secret, sign, signature_headers, verify

EVENT = {
    "id": "evt_01",
    "type": "payment.succeeded",
    "created_at": "2025-01-01T00:00:00Z",
    "data": {"id": "pay_01", "status": "successful", "amount": "50000", "currency": "UGX"},
}
BODY = json.dumps(EVENT, separators=(",", ":")).encode()


def test_generated_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_webhook_secret(), generate_webhook_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_standard_webhooks_test_vector() -> None:
    # The example from the Standard Webhooks specification.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers() -> None:
    secret = generate_webhook_secret()
    headers = signature_headers(secret, "evt_01", 1700000000, BODY)
    assert headers == {
        "webhook-id": "evt_01",
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign(secret, "evt_01", 1700000000, BODY),
    }


def test_delivery_verifies_with_the_standardwebhooks_library() -> None:
    secret = generate_webhook_secret()
    headers = signature_headers(secret, "evt_01", int(time.time()), BODY)
    assert Webhook(secret).verify(BODY, headers) == EVENT


def test_non_ascii_body_verifies_with_the_standardwebhooks_library() -> None:
    secret = generate_webhook_secret()
    body = json.dumps({"description": "Order for Café Kampala — 50 000 UGX"}, ensure_ascii=False)
    headers = signature_headers(secret, "evt_02", int(time.time()), body.encode())
    assert Webhook(secret).verify(body.encode(), headers) == json.loads(body)


def test_tampered_body_fails_the_standardwebhooks_library() -> None:
    secret = generate_webhook_secret()
    headers = signature_headers(secret, "evt_01", int(time.time()), BODY)
    tampered = BODY.replace(b'"50000"', b'"500000"')
    assert tampered != BODY
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


def test_other_secret_fails_the_standardwebhooks_library() -> None:
    headers = signature_headers(generate_webhook_secret(), "evt_01", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_webhook_secret()).verify(BODY, headers)


def test_changed_id_fails_the_standardwebhooks_library() -> None:
    secret = generate_webhook_secret()
    headers = signature_headers(secret, "evt_01", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt_02"})


def test_library_signature_verifies_with_ours() -> None:
    secret = generate_webhook_secret()
    timestamp = 1700000000
    signature = Webhook(secret).sign(
        "evt_01", datetime.fromtimestamp(timestamp, UTC), BODY.decode()
    )
    headers = {
        "Webhook-Id": "evt_01",
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature,
    }
    assert verify(secret, BODY, headers, now=timestamp + 10)


def test_verify_refuses_tampering_and_staleness() -> None:
    secret = generate_webhook_secret()
    timestamp = 1700000000
    headers = signature_headers(secret, "evt_01", timestamp, BODY)
    assert verify(secret, BODY, headers, now=timestamp + 300)
    assert verify(secret, BODY, headers, now=timestamp - 300)
    assert not verify(secret, BODY, headers, now=timestamp + 301)
    assert not verify(secret, BODY, headers, now=timestamp - 301)
    assert not verify(secret, BODY + b" ", headers, now=timestamp)
    assert not verify(generate_webhook_secret(), BODY, headers, now=timestamp)


def test_verify_accepts_any_of_several_signatures() -> None:
    old, new = generate_webhook_secret(), generate_webhook_secret()
    timestamp = 1700000000
    both = f"{sign(old, 'evt_01', timestamp, BODY)} {sign(new, 'evt_01', timestamp, BODY)}"
    headers = {
        "webhook-id": "evt_01",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": both,
    }
    assert verify(old, BODY, headers, now=timestamp)
    assert verify(new, BODY, headers, now=timestamp)
    assert not verify(generate_webhook_secret(), BODY, headers, now=timestamp)


def test_verify_skips_unreadable_signatures_before_a_good_one() -> None:
    secret = generate_webhook_secret()
    headers = signature_headers(secret, "evt_01", 1700000000, BODY)
    listed = f"v1,not*base64 v2,abc= junk {headers['webhook-signature']}"
    assert verify(secret, BODY, {**headers, "webhook-signature": listed}, now=1700000000)


@pytest.mark.parametrize(
    "changes",
    [
        {"webhook-id": ""},
        {"webhook-timestamp": "soon"},
        {"webhook-timestamp": "-1700000000"},
        {"webhook-timestamp": "1" * 5000},
        {"webhook-timestamp": "\u0661\u0667" + "\u0660" * 8},  # Arabic-Indic digits
        {"webhook-signature": ""},
        {"webhook-signature": "v1,not*base64"},
        {"webhook-signature": "no-comma"},
    ],
)
def test_verify_refuses_malformed_headers(changes: dict[str, str]) -> None:
    secret = generate_webhook_secret()
    headers = {**signature_headers(secret, "evt_01", 1700000000, BODY), **changes}
    assert not verify(secret, BODY, headers, now=1700000000)


def test_verify_ignores_other_signature_versions() -> None:
    secret = generate_webhook_secret()
    headers = signature_headers(secret, "evt_01", 1700000000, BODY)
    v2 = "v2," + headers["webhook-signature"].removeprefix("v1,")
    assert not verify(secret, BODY, {**headers, "webhook-signature": v2}, now=1700000000)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not*base64", "whsec_abc"])
def test_sign_refuses_a_malformed_secret(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        sign(secret, "evt_01", 1700000000, BODY)
