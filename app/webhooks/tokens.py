"""Per-payment MTN callback tokens.

MTN neither signs callbacks nor names the reference id in them, so the ``X-Callback-Url`` sent with
each request-to-pay carries the payment's reference and a token bound to it:
``{MTN_MOMO_CALLBACK_URL}{reference}/{token}``. The token is an HMAC of the reference under a
server secret, so it cannot be guessed and needs no storage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def callback_token(secret: bytes, reference: str) -> str:
    digest = hmac.new(secret, f"mtn-callback:{reference}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def token_is_valid(secret: bytes, reference: str, token: str) -> bool:
    return hmac.compare_digest(callback_token(secret, reference).encode(), token.encode())


def mtn_callback_url(base_url: str, secret: bytes, reference: str) -> str:
    base = base_url if base_url.endswith("/") else base_url + "/"
    return f"{base}{reference}/{callback_token(secret, reference)}"
