"""Airtel Money's callback body in the OpenAPI document: its schema and examples."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

AIRTEL_CALLBACK_SCHEMA: Schema = {
    "title": "AirtelCallback",
    "description": (
        "Airtel's callback to the URL registered in its portal. `transaction.id` is the "
        "gateway's own reference. With callback authentication on, `hash` is "
        "base64(HMAC-SHA256(AIRTEL_MONEY_WEBHOOK_SECRET, transaction)). The gateway re-reads "
        "the status from Airtel before anything changes."
    ),
    "type": "object",
    "required": ["transaction"],
    "properties": {
        "transaction": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                "message": {"type": "string"},
                "status_code": {"type": "string", "enum": ["TS", "TF"]},
                "airtel_money_id": {"type": "string"},
            },
        },
        "hash": {"type": "string"},
    },
    "additionalProperties": True,
}
AIRTEL_CALLBACK_EXAMPLES: Schema = {
    "successful": {
        "summary": "Paid",
        "value": {
            "transaction": {
                "id": "8f1c2a4e6b1d4d559a532f7f3c1e9b10",
                "message": (
                    "Paid UGX 50000 to MERCHANT Charge UGX 0, Trans ID MP240113.0930.A12345."
                ),
                "status_code": "TS",
                "airtel_money_id": "MP240113.0930.A12345",
            }
        },
    },
    "failed": {
        "summary": "Refused",
        "value": {
            "transaction": {
                "id": "8f1c2a4e6b1d4d559a532f7f3c1e9b10",
                "message": "Insufficient funds",
                "status_code": "TF",
                "airtel_money_id": "",
            }
        },
    },
}
