"""Checking ``Saleor-Signature``: a JWS with a detached payload (the raw body), RS256 only, by
a key of the installation's stored JWKS.

The algorithm is pinned, never taken from the token's header: an ``HS256`` token "signed" with
the public key or an unsigned ``none`` token is refused like any forgery.
"""

from __future__ import annotations

from typing import Any

import jwt
from jwt import PyJWK, api_jws
from jwt.exceptions import InvalidTokenError, PyJWKError

ALGORITHM = "RS256"
MAX_SIGNATURE_LENGTH = 4096


class BadSignature(Exception):
    pass


class UnknownKey(BadSignature):
    """Signed with a key id the stored JWKS does not hold: Saleor may have rotated its keys."""


def verify_signature(signature: str, body: bytes, jwks: dict[str, Any]) -> None:
    """Raise BadSignature unless ``signature`` is Saleor's RS256 signature of ``body``."""
    if not signature or len(signature) > MAX_SIGNATURE_LENGTH:
        raise BadSignature("missing or oversized signature")
    parts = signature.split(".")
    if len(parts) != 3 or parts[1] != "":
        raise BadSignature("not a detached-payload JWS")
    try:
        header = jwt.get_unverified_header(signature)
    except InvalidTokenError:
        raise BadSignature("unreadable JWS header") from None
    if header.get("alg") != ALGORITHM:
        raise BadSignature(f"algorithm {str(header.get('alg'))[:20]!r} is not {ALGORITHM}")
    key = _rsa_key(jwks, header.get("kid"))
    try:
        api_jws.decode(signature, key=key, algorithms=[ALGORITHM], detached_payload=body)
    except InvalidTokenError:
        raise BadSignature("signature does not match the body") from None


def _rsa_key(jwks: dict[str, Any], kid: object) -> Any:
    if not isinstance(kid, str) or not kid:
        raise BadSignature("no key id")
    for entry in jwks.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("kid") != kid or entry.get("kty") != "RSA":
            continue
        try:
            return PyJWK(entry, algorithm=ALGORITHM).key
        except PyJWKError:
            raise BadSignature("unusable key in the JWKS") from None
    raise UnknownKey(f"no RSA key {kid[:80]!r} in the JWKS")


def has_usable_key(jwks: dict[str, Any]) -> bool:
    """Whether a JWKS holds at least one RSA key with an id (what Saleor signs with)."""
    keys = jwks.get("keys") or []
    return any(isinstance(k, dict) and k.get("kty") == "RSA" and k.get("kid") for k in keys)
