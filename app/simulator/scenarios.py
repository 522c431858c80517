"""Which outcome a payer's number selects: one rule for MTN and Airtel.

A number selects the scenario with code ``NNN`` when

* it is one of MTN's sandbox test numbers, ``46733123NNN`` (MTN's own table, 450-463); or
* its last six digits are ``000NNN``: ``256772000451`` for MTN, ``752000451`` for Airtel (which
  takes 9 digits, no country code).

Every other number pays, after the approval delay. The ``000`` keeps ordinary test numbers on the
happy path: 0772 123 456, the example number in the README and the tests, ends in 456, and a
benchmark drawing random numbers would otherwise fail one payment in seventy.

"Refused" means the create call itself fails and nothing is recorded (a status query answers
404). MTN refuses at request time exactly what its docs list as request-time errors (500 + ``code``
for NOT_ALLOWED, NOT_ALLOWED_TARGET_ENVIRONMENT, INVALID_CALLBACK_URL_HOST, INVALID_CURRENCY,
INTERNAL_PROCESSING_ERROR; 503 for SERVICE_UNAVAILABLE); everything else ends in the final status.
Airtel business refusals come back as HTTP 200 with ``"success": false`` (as its duplicate-id
answer does), validation refusals as HTTP 400.

====  ===========================  ===========================================
code  MTN sandbox name             MTN request-to-pay
====  ===========================  ===========================================
450   PayerFailed                  FAILED, INTERNAL_PROCESSING_ERROR
451   PayerRejected                FAILED, APPROVAL_REJECTED
452   PayerExpired                 FAILED, EXPIRED
453   PayerOngoing                 PENDING, SUCCESSFUL after the ongoing delay
454   PayerDelayed                 PENDING forever
455   PayerNotFound                FAILED, PAYER_NOT_FOUND
456   PayeeNotAllowedToReceive     FAILED, PAYEE_NOT_ALLOWED_TO_RECEIVE
457   NotAllowed                   refused: 500 NOT_ALLOWED
458   NotAllowedTargetEnvironment  refused: 500 NOT_ALLOWED_TARGET_ENVIRONMENT
459   InvalidCallbackUrlHost       refused: 500 INVALID_CALLBACK_URL_HOST
460   InvalidCurrency              refused: 500 INVALID_CURRENCY
461   InternalProcessingError      refused: 500 INTERNAL_PROCESSING_ERROR
462   ServiceUnavailable           refused: 503 SERVICE_UNAVAILABLE
463   CouldNotPerformTransaction   FAILED, COULD_NOT_PERFORM_TRANSACTION
470   (simulator) no funds         FAILED, NOT_ENOUGH_FUNDS
471   (simulator) over limit       FAILED, PAYER_LIMIT_REACHED
498   (simulator) ambiguous        PENDING forever
499   (simulator) never approves   PENDING forever
====  ===========================  ===========================================

====  =======================================================
code  Airtel push / enquiry
====  =======================================================
450   TF, no specific code (response_code DP00800001001)
451   TF, DP00800001008 Refused
452   TE, DP00800001029 Transaction Expired
453   TIP, TS after the ongoing delay
454   TIP forever
455   refused: HTTP 400 ESB000033 (subscriber not registered)
456   TF, DP00800001010 not permitted to payee
457   refused: HTTP 200 DP00800001009 Do not honor
458   refused: HTTP 400 ROUTER007 country route denied
459   refused: HTTP 400 ESB000039 vendor not configured
460   refused: HTTP 400 ESB000035 Invalid Currency Code
461   refused: HTTP 500 ESB000001
462   refused: HTTP 503 ESB000001
463   TF, DP00800001024 Transaction Timed Out
470   TF, DP00800001007 Not enough balance
471   TF, DP00800001003 Exceeds withdrawal limit
498   TA forever (DP00800001000)
499   TIP forever
====  =======================================================

The account-holder check (``/accountholder/msisdn/{n}/active``) answers ``false`` for 455 and
``true`` otherwise, so a pre-check and a request-to-pay agree about who exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AirtelFinalStatus = Literal["TS", "TF", "TE"]
AirtelPendingStatus = Literal["TIP", "TA"]


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """How an accepted payment ends, in each provider's words."""

    successful: bool
    mtn_reason: str | None = None
    airtel_status: AirtelFinalStatus = "TS"
    airtel_response_code: str = "DP00800001001"
    airtel_message: str = "success"


@dataclass(frozen=True, kw_only=True)
class MtnRefusal:
    http_status: int
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class AirtelRefusal:
    http_status: int
    result_code: str
    response_code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Scenario:
    code: int | None
    name: str
    resolution: Resolution | None = None  # None: never resolves by itself
    settles_after: Literal["approval", "ongoing", "never"] = "approval"
    airtel_pending_status: AirtelPendingStatus = "TIP"
    mtn_refusal: MtnRefusal | None = None
    airtel_refusal: AirtelRefusal | None = None


PAID = Resolution(successful=True)


def _failed(
    mtn_reason: str,
    airtel_response_code: str,
    airtel_message: str,
    airtel_status: AirtelFinalStatus = "TF",
) -> Resolution:
    return Resolution(
        successful=False,
        mtn_reason=mtn_reason,
        airtel_status=airtel_status,
        airtel_response_code=airtel_response_code,
        airtel_message=airtel_message,
    )


def _refused(code: int, name: str, mtn: MtnRefusal, airtel: AirtelRefusal) -> Scenario:
    return Scenario(code=code, name=name, mtn_refusal=mtn, airtel_refusal=airtel)


SUCCESS = Scenario(code=None, name="Success", resolution=PAID)

_SCENARIOS = [
    Scenario(
        code=450,
        name="PayerFailed",
        resolution=_failed("INTERNAL_PROCESSING_ERROR", "DP00800001001", "Transaction failed"),
    ),
    Scenario(
        code=451,
        name="PayerRejected",
        resolution=_failed("APPROVAL_REJECTED", "DP00800001008", "Refused"),
    ),
    Scenario(
        code=452,
        name="PayerExpired",
        resolution=_failed("EXPIRED", "DP00800001029", "Transaction Expired", "TE"),
    ),
    Scenario(code=453, name="PayerOngoing", resolution=PAID, settles_after="ongoing"),
    Scenario(code=454, name="PayerDelayed", settles_after="never"),
    Scenario(
        code=455,
        name="PayerNotFound",
        resolution=_failed("PAYER_NOT_FOUND", "DP00800001010", "Subscriber not found"),
        airtel_refusal=AirtelRefusal(
            http_status=400,
            result_code="ESB000033",
            response_code="ESB000033",
            message="Invalid MSISDN: subscriber is not registered",
        ),
    ),
    Scenario(
        code=456,
        name="PayeeNotAllowedToReceive",
        resolution=_failed(
            "PAYEE_NOT_ALLOWED_TO_RECEIVE", "DP00800001010", "Transaction not permitted to Payee"
        ),
    ),
    _refused(
        457,
        "NotAllowed",
        MtnRefusal(
            http_status=500,
            code="NOT_ALLOWED",
            message="Authorization failed. User does not have permission.",
        ),
        AirtelRefusal(
            http_status=200,
            result_code="ESB000011",
            response_code="DP00800001009",
            message="Do not honor",
        ),
    ),
    _refused(
        458,
        "NotAllowedTargetEnvironment",
        MtnRefusal(
            http_status=500,
            code="NOT_ALLOWED_TARGET_ENVIRONMENT",
            message="Access to target environment is forbidden.",
        ),
        AirtelRefusal(
            http_status=400,
            result_code="ROUTER007",
            response_code="ROUTER007",
            message="Country route denied",
        ),
    ),
    _refused(
        459,
        "InvalidCallbackUrlHost",
        MtnRefusal(
            http_status=500,
            code="INVALID_CALLBACK_URL_HOST",
            message="Callback URL with invalid host used.",
        ),
        AirtelRefusal(
            http_status=400,
            result_code="ESB000039",
            response_code="ESB000039",
            message="Vendor is not configured to do transaction in the country",
        ),
    ),
    _refused(
        460,
        "InvalidCurrency",
        MtnRefusal(http_status=500, code="INVALID_CURRENCY", message="Currency not supported."),
        AirtelRefusal(
            http_status=400,
            result_code="ESB000035",
            response_code="ESB000035",
            message="Invalid Currency Code",
        ),
    ),
    _refused(
        461,
        "InternalProcessingError",
        MtnRefusal(
            http_status=500,
            code="INTERNAL_PROCESSING_ERROR",
            message="An internal error occurred while processing.",
        ),
        AirtelRefusal(
            http_status=500,
            result_code="ESB000001",
            response_code="ESB000001",
            message="Something went wrong",
        ),
    ),
    _refused(
        462,
        "ServiceUnavailable",
        MtnRefusal(
            http_status=503,
            code="SERVICE_UNAVAILABLE",
            message="Service unavailable, try again later.",
        ),
        AirtelRefusal(
            http_status=503,
            result_code="ESB000001",
            response_code="ESB000001",
            message="Service Unavailable",
        ),
    ),
    Scenario(
        code=463,
        name="CouldNotPerformTransaction",
        resolution=_failed(
            "COULD_NOT_PERFORM_TRANSACTION", "DP00800001024", "Transaction Timed Out"
        ),
    ),
    Scenario(
        code=470,
        name="NotEnoughFunds",
        resolution=_failed("NOT_ENOUGH_FUNDS", "DP00800001007", "Not enough balance"),
    ),
    Scenario(
        code=471,
        name="PayerLimitReached",
        resolution=_failed(
            "PAYER_LIMIT_REACHED", "DP00800001003", "Exceeds withdrawal amount limit"
        ),
    ),
    Scenario(code=498, name="Ambiguous", settles_after="never", airtel_pending_status="TA"),
    Scenario(code=499, name="NeverApproves", settles_after="never"),
]

SCENARIOS: dict[int, Scenario] = {s.code: s for s in _SCENARIOS if s.code is not None}

_MTN_SANDBOX_NUMBER = re.compile(r"^46733123(\d{3})$")
_SCENARIO_SUFFIX = re.compile(r"000(\d{3})$")


def scenario_for(msisdn: str) -> Scenario:
    match = _MTN_SANDBOX_NUMBER.match(msisdn) or _SCENARIO_SUFFIX.search(msisdn)
    if match is None:
        return SUCCESS
    return SCENARIOS.get(int(match.group(1)), SUCCESS)


def holder_is_active(msisdn: str) -> bool:
    return scenario_for(msisdn).code != 455
