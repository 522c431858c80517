"""``X-Signature``: a hex HMAC-SHA256 of the raw callback body (the original guide's scheme).

MTN signs nothing itself; the check is for a proxy in front of the gateway that adds the header.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def verify_hex_signature(raw_body: bytes, signature_header: str | None, secret: bytes) -> bool:
    """``X-Signature`` = hex HMAC-SHA256 of the raw body, optionally prefixed ``sha256=``.

    An empty secret verifies nothing: anyone can compute an HMAC under a key everyone knows.
    """
    if signature_header is None or not secret:
        return False
    candidate = signature_header.strip()
    if candidate[:7].lower() == "sha256=":
        candidate = candidate[7:]
    # Checking the shape first also keeps non-ASCII text away from compare_digest, which
    # raises on it.
    if not _HEX_SHA256.fullmatch(candidate):
        return False
    expected = hmac.new(secret, raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), candidate.lower().encode("ascii"))
