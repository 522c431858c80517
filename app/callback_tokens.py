"""Per-payment callback URLs and their tokens.

A provider that neither signs its callbacks nor names the reference in them (MTN) is given a
callback URL per payment that carries the payment's reference and a token bound to it:
``{callback base}{reference}/{token}``. The token is an HMAC of the reference under a server
secret, so it cannot be guessed and needs no storage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def callback_token(secret: bytes, reference: str) -> str:
    # The "mtn-callback:" domain is what every token issued so far was made with: keep it, or
    # the callbacks of payments still pending would be refused.
    digest = hmac.new(secret, f"mtn-callback:{reference}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def token_is_valid(secret: bytes, reference: str, token: str) -> bool:
    return hmac.compare_digest(callback_token(secret, reference).encode(), token.encode())


def per_payment_url(base_url: str, secret: bytes, reference: str) -> str:
    base = base_url if base_url.endswith("/") else base_url + "/"
    return f"{base}{reference}/{callback_token(secret, reference)}"
