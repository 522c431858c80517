"""Africa's Talking bulk SMS, as it looks on the wire: ``POST /version1/messaging``.

The request is a form (``username``, ``to``, ``message``, optional ``from``) with an ``apiKey``
header. A request Africa's Talking takes answers **201 even when no recipient got the SMS**: each
recipient carries its own ``statusCode``, chosen here by the number's last three digits:

- ``…403``: 403 InvalidPhoneNumber (refused for good)
- ``…405``: 405 InsufficientBalance (refused for good)
- ``…500``: 500 InternalServerError (worth retrying)
- ``…501``: 501 GatewayError (worth retrying)
- anything else: 101 Success, with a ``messageId`` and, when ``sms_delivery_report_url`` is set,
  a delivery report posted there ``sms_report_delay_seconds`` later.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from app.simulator.config import Endpoint
from app.simulator.credentials import same_secret
from app.simulator.routing import ProviderRoute, WireError, simulator_of

# What one SMS page costs in the simulator; the real price depends on the account.
PAGE_COST_UGX = 30
# One page holds 160 GSM-7 characters; a longer text is split in pages of 153.
SINGLE_PAGE_CHARACTERS = 160
MULTI_PAGE_CHARACTERS = 153

_PHONE_NUMBER = re.compile(r"^\+?\d{9,15}$")


@dataclass(frozen=True)
class Refusal:
    status_code: int
    status: str


# Africa's Talking's own status names for the codes the simulator can be asked for.
REFUSALS_BY_LAST_DIGITS = {
    "403": Refusal(403, "InvalidPhoneNumber"),
    "405": Refusal(405, "InsufficientBalance"),
    "500": Refusal(500, "InternalServerError"),
    "501": Refusal(501, "GatewayError"),
}
INVALID_PHONE_NUMBER = REFUSALS_BY_LAST_DIGITS["403"]


class AfricasTalkingRoute(ProviderRoute):
    @classmethod
    def error_response(cls, status_code: int) -> Response:
        text = "Service Unavailable" if status_code == 503 else "Internal Server Error"
        return PlainTextResponse(text, status_code=status_code)

    @classmethod
    def rate_limited_response(cls) -> Response:
        return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": "1"})


def fail(status_code: int, text: str) -> NoReturn:
    # Africa's Talking answers request-level errors as plain text, not JSON.
    raise WireError(PlainTextResponse(text, status_code=status_code))


def pages(message: str) -> int:
    if len(message) <= SINGLE_PAGE_CHARACTERS:
        return 1
    return math.ceil(len(message) / MULTI_PAGE_CHARACTERS)


def recipient(number: str, cost_ugx: int) -> dict[str, Any]:
    """One entry of ``Recipients``: accepted, or refused with its code."""
    if not _PHONE_NUMBER.match(number):
        refusal: Refusal | None = INVALID_PHONE_NUMBER
    else:
        refusal = REFUSALS_BY_LAST_DIGITS.get(number[-3:])
    if refusal is not None:
        return {
            "statusCode": refusal.status_code,
            "number": number,
            "cost": "0",
            "status": refusal.status,
            "messageId": "None",
        }
    return {
        "statusCode": 101,
        "number": number,
        "cost": f"UGX {cost_ugx:.4f}",
        "status": "Success",
        "messageId": f"ATXid_{secrets.token_hex(16)}",
    }


def summary(recipients: list[dict[str, Any]], cost_ugx: int) -> str:
    sent = sum(1 for r in recipients if r["statusCode"] == 101)
    total = f"UGX {sent * cost_ugx:.4f}" if sent else "0"
    return f"Sent to {sent}/{len(recipients)} Total Cost: {total}"


router = APIRouter(route_class=AfricasTalkingRoute)


@router.post("/version1/messaging", name=Endpoint.AFRICASTALKING_MESSAGING)
async def send_messages(request: Request) -> Response:
    simulator = simulator_of(request)
    api_key = request.headers.get("apiKey", "")
    form = dict(parse_qsl((await request.body()).decode(errors="replace")))
    if not (
        api_key
        and same_secret(api_key, simulator.config.africastalking_api_key)
        and form.get("username", "").strip()
    ):
        fail(401, "The supplied authentication is invalid")
    numbers = [n.strip() for n in form.get("to", "").split(",") if n.strip()]
    message = form.get("message", "")
    if not numbers:
        fail(400, "Request is missing required form field 'to'")
    if not message:
        fail(400, "Request is missing required form field 'message'")

    cost_ugx = PAGE_COST_UGX * pages(message)
    recipients = [recipient(number, cost_ugx) for number in numbers]
    for entry in recipients:
        if entry["statusCode"] == 101:
            simulator.schedule_delivery_report(entry["messageId"], entry["number"])
    return JSONResponse(
        status_code=201,
        content={
            "SMSMessageData": {
                "Message": summary(recipients, cost_ugx),
                "Recipients": recipients,
            }
        },
    )
