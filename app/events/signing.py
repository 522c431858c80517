"""Standard Webhooks signatures on the events delivered to storefronts.

Following https://www.standardwebhooks.com/ exactly means a storefront can verify deliveries with
any Standard Webhooks library instead of code written for this gateway:
``webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`` where ``key`` is
the base64-decoded part of the ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105  (the marker before a secret, not one)
# The spec asks for 24 to 64 random bytes; 32 is the full strength of HMAC-SHA256.
_SECRET_BYTES = 32
# The spec's suggested window; it bounds how long a captured delivery can be replayed.
DEFAULT_TOLERANCE_SECONDS = 5 * 60


def generate_webhook_secret() -> str:
    """A new merchant signing secret, ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _signing_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("webhook secret must be whsec_ followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one delivery: ``v1,<base64 HMAC-SHA256>``.

    ``body`` must be the exact bytes sent; re-serialising the event after signing breaks it.
    Raises ValueError if ``secret`` is not a ``whsec_`` secret.
    """
    digest = _digest(_signing_key(secret), msg_id, timestamp, body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secret: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """The three headers a delivery carries: ``webhook-id``, ``-timestamp``, ``-signature``.

    With ``previous_secret`` (a rotation's grace period), ``webhook-signature`` carries two
    space-separated signatures, the new secret's first, as Standard Webhooks allows: a
    storefront that holds either secret accepts the delivery.
    """
    signature = sign(secret, msg_id, timestamp, body)
    if previous_secret is not None and previous_secret != secret:
        signature += " " + sign(previous_secret, msg_id, timestamp, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: int | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a storefront does on receipt: True if one ``v1`` signature matches and is fresh.

    ``webhook-signature`` may list several space-separated signatures (a storefront rotating
    secrets receives both). Malformed headers give False, never an exception.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    # Bounded length: int() refuses numbers over 4300 digits, and no real timestamp is that long.
    if not msg_id or not (raw_timestamp.isascii() and raw_timestamp.isdigit()):
        return False
    if len(raw_timestamp) > 12:
        return False
    timestamp = int(raw_timestamp)
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(_signing_key(secret), msg_id, timestamp, body)
    for versioned in signatures.split():
        version, _, encoded = versioned.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(candidate, expected):
            return True
    return False
