"""Reading an Airtel callback body: ``{"transaction": {"id", "message", "status_code",
"airtel_money_id"}, "hash"?}``. ``transaction.id`` is our own provider reference."""

from __future__ import annotations

import json

from app.identifiers import identifier_or_none
from app.vocabulary import CallbackHint, MalformedCallback

_MAX_ID = 64


def parse_airtel_callback(raw_body: bytes) -> CallbackHint:
    try:
        body = json.loads(raw_body)
    except (ValueError, RecursionError):
        raise MalformedCallback("Airtel callback is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("transaction"), dict):
        raise MalformedCallback("Airtel callback must be an object with a transaction object")
    transaction = body["transaction"]
    status = transaction.get("status_code")
    return CallbackHint(
        reference=identifier_or_none(transaction.get("id")),
        claimed_status=status if isinstance(status, str) and len(status) <= _MAX_ID else None,
    )
