"""Airtel's callback authentication: the body's ``hash``, a base64 HMAC-SHA256 of the
``transaction`` member under the private key shown in Airtel's portal.

Airtel does not say over which bytes the hash is made, so it is accepted over the member as
received or over its compact re-encoding; the caller logs which one matched. Nothing here raises
on hostile input: a callback that cannot be read is simply not verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _skip_whitespace(text: str, position: int) -> int:
    match = _JSON_WHITESPACE.match(text, position)
    return match.end() if match else position


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # With two "transaction" members the hash could be checked against one while the payment
    # service reads the other (json.loads keeps the last); a body like that is refused outright.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return obj


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_object_without_duplicates)


def _member_span(text: str, key: str) -> tuple[int, int] | None:
    """Start and end, in ``text``, of the value of the top-level member ``key``.

    Walks the members of the top-level object using the standard parser to step over each key
    and value, so strings, escapes (``"transacti\\u006fn"`` is the same key) and nesting are
    handled exactly as when the body was parsed, and a ``"transaction"`` key nested deeper is
    never mistaken for the top-level one. ``text`` has already been parsed once, so anything
    unexpected here is answered with None rather than trusted.
    """
    position = _skip_whitespace(text, 0)
    if not text.startswith("{", position):
        return None
    position = _skip_whitespace(text, position + 1)
    try:
        while not text.startswith("}", position):
            name, position = _STRICT_JSON.raw_decode(text, position)
            if not isinstance(name, str):
                return None
            position = _skip_whitespace(text, position)
            if not text.startswith(":", position):
                return None
            start = _skip_whitespace(text, position + 1)
            _, end = _STRICT_JSON.raw_decode(text, start)
            if name == key:
                return start, end
            position = _skip_whitespace(text, end)
            if text.startswith(",", position):
                position = _skip_whitespace(text, position + 1)
            elif not text.startswith("}", position):
                return None
    except (ValueError, RecursionError):
        return None
    return None


# Re-encodings tried after the raw bytes, in this order: (variant name, sort_keys, ensure_ascii).
# Java and JavaScript serialisers keep non-ASCII characters as they are; Python's default escapes
# them, so both are tried.
_REENCODINGS = (
    ("compact_transaction", False, False),
    ("compact_ascii_transaction", False, True),
    ("sorted_transaction", True, False),
    ("sorted_ascii_transaction", True, True),
)


def _airtel_hash_candidates(text: str, transaction: Any) -> Iterator[tuple[str, bytes]]:
    span = _member_span(text, "transaction")
    if span is not None:
        # The body was decoded from strict UTF-8, so re-encoding a slice of it gives back exactly
        # the bytes that were received.
        yield "raw_transaction", text[span[0] : span[1]].encode("utf-8")
    for name, sort_keys, ensure_ascii in _REENCODINGS:
        try:
            encoded = json.dumps(
                transaction, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii
            ).encode("utf-8")
        except (ValueError, RecursionError):  # e.g. a lone surrogate from a "\ud800" escape
            continue
        yield name, encoded


def _decode_airtel_hash(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error is one; so is non-ASCII text
        return None


def verify_airtel_hash(raw_body: bytes, secret: bytes) -> str | None:
    """Which reading of Airtel's callback ``hash`` matched, or None.

    With callback authentication on, Airtel adds ``"hash": base64(HMAC-SHA256(private key, X))``
    to the body but does not say which bytes X are. Accepted, in this order: the ``transaction``
    member exactly as received (``raw_transaction``), then its compact JSON re-encoding with
    non-ASCII kept or escaped (``compact_transaction``, ``compact_ascii_transaction``), then the
    same with sorted keys (``sorted_transaction``, ``sorted_ascii_transaction``). The caller
    logs the name, so the first live callback settles which reading Airtel uses.

    Only the ``transaction`` member is ever covered: a body that is not a JSON object with one
    such member and a well-formed ``hash`` is None, as is any body with a repeated key.
    """
    if not secret:
        return None
    try:
        text = raw_body.decode("utf-8")
        body = _STRICT_JSON.decode(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    if not isinstance(body, dict) or "transaction" not in body:
        return None
    expected = _decode_airtel_hash(body.get("hash"))
    if expected is None:
        return None
    for name, message in _airtel_hash_candidates(text, body["transaction"]):
        if hmac.compare_digest(hmac.new(secret, message, hashlib.sha256).digest(), expected):
            return name
    return None
