"""MTN MoMo Collection, as it looks on the wire: token, request-to-pay, status, holder, balance.

The checks every MTN product shares (subscription key, bearer token, target environment, callback
host, message texts) live here too; ``app.simulator.mtn_disbursement`` reuses them for refunds.

Checks run in the order MTN's gateway seems to apply them: Azure API Management first (the
subscription key, then the bearer token), then headers, then the body, then the business rules,
which MTN reports as 500 with a ``code``.

MTN also refuses callback URLs whose host is an IP address; the simulator does not, so a receiver
on 127.0.0.1 works.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal
from typing import Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.simulator.config import Endpoint, MtnProduct, SimulatorConfig
from app.simulator.credentials import IssuedToken, same_secret
from app.simulator.ledger import Payment, PaymentStatus
from app.simulator.routing import ProviderRoute, WireError, simulator_of
from app.simulator.scenarios import holder_is_active, scenario_for
from app.simulator.state import Simulator
from app.simulator.wire import mtn_status_body

UUID_PATTERN = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)
# MTN's Disbursement docs ask for a version 4 UUID in so many words.
UUID4_PATTERN = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)
# From MTN's PHP SDK README.
AMOUNT_PATTERN = r"^([0]|([1-9][0-9]{0,17}))([.][0-9]{0,3}[0-9])?$"
_FORBIDDEN_MESSAGE_CHARACTERS = ("'", "&")


def mtn_error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"code": code, "message": message})


def fail(status_code: int, code: str, message: str) -> NoReturn:
    raise WireError(mtn_error(status_code, code, message))


class MtnRoute(ProviderRoute):
    provider = "mtn_momo"
    create_endpoints = frozenset({Endpoint.MTN_REQUEST_TO_PAY})
    refund_endpoints = frozenset({Endpoint.MTN_REFUND})

    @classmethod
    def error_response(cls, status_code: int) -> Response:
        if status_code == 503:
            return mtn_error(503, "SERVICE_UNAVAILABLE", "Service unavailable, try again later.")
        return mtn_error(
            status_code, "INTERNAL_PROCESSING_ERROR", "An internal error occurred while processing."
        )

    @classmethod
    def rate_limited_response(cls) -> Response:
        # Azure API Management's wording; MTN documents no 429 body of its own.
        return JSONResponse(
            status_code=429,
            content={
                "statusCode": 429,
                "message": "Rate limit is exceeded. Try again in 1 seconds.",
            },
            headers={"Retry-After": "1"},
        )

    @classmethod
    async def create_reference(cls, endpoint: Endpoint, request: Request) -> str | None:
        return request.headers.get("X-Reference-Id")


# --- checks shared by every MTN endpoint --------------------------------------------------------


def require_subscription_key(request: Request, *accepted: str) -> None:
    """The Azure API Management check: one of the ``accepted`` product keys, or 401."""
    key = request.headers.get("Ocp-Apim-Subscription-Key")
    if not key:
        message = (
            "Access denied due to missing subscription key. "
            "Make sure to include subscription key when making requests to an API."
        )
    elif not any(same_secret(key, expected) for expected in accepted):
        message = (
            "Access denied due to invalid subscription key. "
            "Make sure to provide a valid key for an active subscription."
        )
    else:
        return
    raise WireError(JSONResponse(status_code=401, content={"statusCode": 401, "message": message}))


def require_bearer(
    request: Request, simulator: Simulator, product: MtnProduct = "collection"
) -> IssuedToken:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    issued = (
        simulator.credentials.check("mtn_momo", token.strip(), product)
        if scheme == "Bearer"
        else None
    )
    if issued is None:
        raise WireError(
            JSONResponse(
                status_code=401,
                content={
                    "statusCode": 401,
                    "message": "Unauthorized. Access token is missing or invalid.",
                },
            )
        )
    return issued


def require_target_environment(request: Request, config: SimulatorConfig) -> None:
    environment = request.headers.get("X-Target-Environment")
    if not environment:
        fail(400, "VALIDATION_ERROR", "X-Target-Environment header is required.")
    if environment != config.mtn_target_environment:
        fail(500, "NOT_ALLOWED_TARGET_ENVIRONMENT", "Access to target environment is forbidden.")


def require_product_access(
    request: Request, simulator: Simulator, product: MtnProduct
) -> IssuedToken:
    config = simulator.config
    require_subscription_key(request, config.mtn_credentials(product)[2])
    issued = require_bearer(request, simulator, product)
    require_target_environment(request, config)
    return issued


def require_collection_access(request: Request, simulator: Simulator) -> IssuedToken:
    return require_product_access(request, simulator, "collection")


def require_callback_host(simulator: Simulator, issued: IssuedToken, url: str | None) -> None:
    """MTN checks the callback host against the one the API user was provisioned with."""
    if url is None or issued.api_user is None:
        return
    user = simulator.credentials.user(issued.api_user)
    host = urlsplit(url).hostname or ""
    if user is not None and host.lower() != user.provider_callback_host.lower():
        fail(500, "INVALID_CALLBACK_URL_HOST", "Callback URL with invalid host used.")


# --- wire models ---------------------------------------------------------------------------------


class MtnParty(BaseModel):
    model_config = ConfigDict(strict=True, populate_by_name=True)

    party_id_type: Literal["MSISDN", "EMAIL", "PARTY_CODE"] = Field(alias="partyIdType")
    party_id: str = Field(alias="partyId", min_length=1, max_length=64)


class MtnMoneyRequest(BaseModel):
    """The fields a request-to-pay and a refund share, with MTN's rules for them."""

    model_config = ConfigDict(strict=True, populate_by_name=True)

    amount: str = Field(pattern=AMOUNT_PATTERN)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    external_id: str | None = Field(default=None, alias="externalId", max_length=128)
    payer_message: str | None = Field(default=None, alias="payerMessage", max_length=160)
    payee_note: str | None = Field(default=None, alias="payeeNote", max_length=160)

    @field_validator("payer_message", "payee_note")
    @classmethod
    def _no_rejected_characters(cls, value: str | None) -> str | None:
        # MTN answers 400 for an apostrophe and for '&' in these fields.
        if value is not None and any(c in value for c in _FORBIDDEN_MESSAGE_CHARACTERS):
            raise ValueError("must not contain ' or &")
        return value


class MtnRequestToPay(MtnMoneyRequest):
    payer: MtnParty


BodyT = TypeVar("BodyT", bound=BaseModel)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse_body(model: type[BodyT], raw: bytes) -> BodyT:
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as error:
        fail(400, "VALIDATION_ERROR", _describe(error))


def parse_request_to_pay(raw: bytes) -> MtnRequestToPay:
    body = parse_body(MtnRequestToPay, raw)
    if body.payer.party_id_type == "MSISDN" and not body.payer.party_id.isdigit():
        fail(400, "VALIDATION_ERROR", "payer.partyId: an MSISDN is digits with the country code")
    return body


def parse_callback_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(400, "VALIDATION_ERROR", "X-Callback-Url must be an absolute http(s) URL.")
    return value


# --- routes --------------------------------------------------------------------------------------

router = APIRouter(route_class=MtnRoute)


@router.post("/collection/token/", name=Endpoint.MTN_TOKEN)
async def create_access_token(request: Request) -> Response:
    return await issue_token(request, "collection")


async def issue_token(request: Request, product: MtnProduct) -> Response:
    """``POST /{product}/token/``: the product's configured pair, or a provisioned sandbox user."""
    simulator = simulator_of(request)
    config = simulator.config
    expected_user, expected_key, subscription_key = config.mtn_credentials(product)
    require_subscription_key(request, subscription_key)
    if await request.body():
        # MTN lists "a body in an API that does not support one, e.g. /token" as a 400.
        return JSONResponse(status_code=400, content={"error": "Request body is not supported"})
    api_user, api_key = _basic_credentials(request)
    known_pair = same_secret(api_user, expected_user) and same_secret(api_key, expected_key)
    if not (known_pair or simulator.credentials.provisioned_key_matches(api_user, api_key)):
        return JSONResponse(status_code=401, content={"error": "login_failed"})
    lifetime = config.mtn_token_lifetime_seconds
    token = simulator.credentials.issue("mtn_momo", lifetime, api_user=api_user, product=product)
    return JSONResponse(
        content={"access_token": token, "token_type": "access_token", "expires_in": lifetime}
    )


def _basic_credentials(request: Request) -> tuple[str, str]:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, key = decoded.partition(":")
    return user, key


@router.post("/collection/v1_0/requesttopay", name=Endpoint.MTN_REQUEST_TO_PAY)
async def request_to_pay(request: Request) -> Response:
    simulator = simulator_of(request)
    config = simulator.config
    issued = require_collection_access(request, simulator)
    reference = request.headers.get("X-Reference-Id", "")
    if not UUID_PATTERN.match(reference):
        fail(400, "VALIDATION_ERROR", "X-Reference-Id must be a UUID.")
    callback_url = parse_callback_url(request.headers.get("X-Callback-Url"))
    body = parse_request_to_pay(await request.body())

    if simulator.ledger.get(("mtn_momo", reference)) is not None:
        return duplicate_reference()
    if body.currency not in config.mtn_currencies:
        fail(500, "INVALID_CURRENCY", "Currency not supported.")
    require_callback_host(simulator, issued, callback_url)
    scenario = scenario_for(body.payer.party_id)
    if scenario.mtn_refusal is not None:
        refusal = scenario.mtn_refusal
        fail(refusal.http_status, refusal.code, refusal.message)

    payment = Payment(
        provider="mtn_momo",
        reference=reference,
        amount=body.amount,
        currency=body.currency,
        msisdn=body.payer.party_id,
        party_id_type=body.payer.party_id_type,
        scenario=scenario,
        external_id=body.external_id,
        payer_message=body.payer_message,
        payee_note=body.payee_note,
        callback_url=callback_url,
    )
    if not simulator.accept(payment):
        return duplicate_reference()  # a concurrent request with this reference won
    return Response(status_code=202)


def duplicate_reference() -> Response:
    return mtn_error(
        409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation of resource failed."
    )


@router.get("/collection/v1_0/requesttopay/{reference}", name=Endpoint.MTN_REQUEST_TO_PAY_STATUS)
async def request_to_pay_status(reference: str, request: Request) -> Response:
    simulator = simulator_of(request)
    require_collection_access(request, simulator)
    payment = simulator.ledger.get(("mtn_momo", reference))
    if payment is None:
        return not_found()
    return JSONResponse(content=mtn_status_body(payment, simulator.config.mtn_reason_format))


@router.get(
    "/collection/v1_0/accountholder/{id_type}/{holder_id}/active", name=Endpoint.MTN_ACCOUNT_HOLDER
)
async def account_holder_active(id_type: str, holder_id: str, request: Request) -> Response:
    simulator = simulator_of(request)
    require_collection_access(request, simulator)
    if id_type not in ("msisdn", "email", "party_code"):
        fail(400, "VALIDATION_ERROR", "accountHolderIdType must be msisdn, email or party_code.")
    active = holder_is_active(holder_id) if id_type == "msisdn" else True
    return JSONResponse(content={"result": active})


@router.get("/collection/v1_0/account/balance", name=Endpoint.MTN_BALANCE)
async def account_balance(request: Request) -> Response:
    simulator = simulator_of(request)
    require_collection_access(request, simulator)
    return _balance(simulator, simulator.config.mtn_account_currency)


@router.get("/collection/v1_0/account/balance/{currency}", name=Endpoint.MTN_BALANCE)
async def account_balance_in(currency: str, request: Request) -> Response:
    simulator = simulator_of(request)
    require_collection_access(request, simulator)
    return _balance(simulator, currency.upper())


def not_found() -> Response:
    return mtn_error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")


def _balance(simulator: Simulator, currency: str) -> Response:
    config = simulator.config
    balance = config.mtn_opening_balance if currency == config.mtn_account_currency else Decimal(0)
    for payment in simulator.ledger.payments("mtn_momo"):
        if payment.status is PaymentStatus.SUCCESSFUL and payment.currency == currency:
            balance += Decimal(payment.amount)
    return JSONResponse(content={"availableBalance": str(balance), "currency": currency})
