"""Reading an MTN callback body.

MTN PUTs (or POSTs) something "similar to the status response" and, in production, without
the referenceId, so the reference normally comes from our per-payment callback URL. The original
integration guide's bodies (``referenceId``, ``externalId``) are read too.
"""

from __future__ import annotations

import json
from typing import Any

from app.identifiers import identifier_or_none
from app.vocabulary import CallbackHint, MalformedCallback

_MAX_ID = 64


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID:
        return value
    return None


def _identifier(body: dict[str, Any], key: str) -> str | None:
    return identifier_or_none(body.get(key))


def parse_mtn_callback(raw_body: bytes) -> CallbackHint:
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):
        raise MalformedCallback("MTN callback is not valid JSON") from None
    if not isinstance(body, dict):
        raise MalformedCallback("MTN callback must be a JSON object")
    return CallbackHint(
        reference=_identifier(body, "referenceId"),
        order_id=_identifier(body, "externalId"),
        claimed_status=_text(body, "status"),
    )
