"""Checks on inbound provider callbacks, each a pure function of what arrived.

The webhook router runs them in DESIGN §5's order (IP allowlist, signature, per-payment token) and
answers a failure with its :class:`CallbackRejection`. None of them raises on hostile input: a
callback that cannot be read is simply not verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallbackRejection(StrEnum):
    """Why a callback was refused: the value is logged, ``status_code`` is answered."""

    IP_DENIED = "ip_denied"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_INVALID = "token_invalid"  # noqa: S105  (a reason code, not a token)

    @property
    def status_code(self) -> int:
        # A caller from a refused address gets 403: no credential it could add would help.
        # Everything else is failed authentication.
        return 403 if self is CallbackRejection.IP_DENIED else 401


# --- client address ------------------------------------------------------------------------------

_PORT = re.compile(r"[0-9]{1,5}")


def parse_ip(text: str) -> IPAddress | None:
    """One address as a peer or proxy writes it, or None if it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:443``. An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, what a dual-stack
    listener reports for an IPv4 client) becomes the IPv4 address, so allowlists written in IPv4
    match it.
    """
    host = text.strip()
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        port = host[end + 1 :]
        if port and not (port.startswith(":") and _PORT.fullmatch(port[1:])):
            return None
        host = host[1:end]
    elif host.count(":") == 1:
        # Exactly one colon can only be IPv4 with a port; bare IPv6 always has at least two.
        host, _, port = host.partition(":")
        if not _PORT.fullmatch(port):
            return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in_any(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    # Addresses are normalised to IPv4, but an operator may still list a mapped range such as
    # ::ffff:10.0.0.0/104; test the mapped form against IPv6 networks so that entry works too.
    forms: tuple[IPAddress, ...] = (address,)
    if isinstance(address, ipaddress.IPv4Address):
        forms = (address, ipaddress.IPv6Address(f"::ffff:{address}"))
    return any(form.version == net.version and form in net for form in forms for net in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The address a callback came from, or None when it cannot be known.

    ``peer`` is the direct TCP peer (``request.client.host``). Only when that peer is one of our
    ``trusted_proxies`` is ``X-Forwarded-For`` read, and then from the right: each proxy appends
    the address it received the request from, so the entries right of the first untrusted one
    were written by our proxies and everything left of it may have been written by the client.
    The answer is the right-most entry that is not a trusted proxy; when every entry is one, the
    request started inside our own network and the left-most entry is the answer. Several
    ``X-Forwarded-For`` header lines must be joined with ``,`` in order before calling.

    A malformed entry (``unknown``, a hostname, garbage) gives None. The walk only reaches it
    after passing trusted proxies, so either one of our proxies wrote it or a proxy passed the
    client's header on without appending; the client is unknown either way. None is denied by
    any allowlist (:func:`ip_allowed`), whereas returning the last proxy would wrongly pass an
    allowlist that happens to include our own network. Empty list elements (``a, , b``) carry
    nothing and are skipped, as HTTP list syntax allows.
    """
    address = parse_ip(peer) if peer else None
    if address is None or not trusted_proxies or not _in_any(address, trusted_proxies):
        return address
    for entry in reversed((forwarded_for or "").split(",")):
        if not entry.strip():
            continue
        hop = parse_ip(entry)
        if hop is None:
            return None
        address = hop
        if not _in_any(hop, trusted_proxies):
            break
    return address


def ip_allowed(ip: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    """Whether ``ip`` is in the allowlist; an empty allowlist means the check is off."""
    if not allowed:
        return True
    return ip is not None and _in_any(ip, allowed)


# --- X-Signature ---------------------------------------------------------------------------------

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


# --- Airtel callback hash ------------------------------------------------------------------------

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
