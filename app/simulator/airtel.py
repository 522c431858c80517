"""Airtel Money Open API (Uganda), as it looks on the wire: token, USSD push, enquiry (refunds:
``app.simulator.airtel_refunds``).

Shapes follow Airtel's Uganda Postman export. Business answers come back as HTTP 200 with
``status.success`` telling the truth (as the documented duplicate-id answer does); malformed
requests as HTTP 400 with the same ``status`` envelope. An enquiry for an id Airtel never took
answers **HTTP 404** with ``response_code`` DP00800001025 and ``result_code`` ESB000045, so a
client keyed on either the HTTP status or the code reads "not found".
"""

from __future__ import annotations

import json
from typing import Any, NoReturn, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from app.simulator.config import Endpoint, SimulatorConfig
from app.simulator.credentials import same_secret
from app.simulator.ledger import Payment
from app.simulator.routing import ProviderRoute, WireError, simulator_of
from app.simulator.scenarios import scenario_for
from app.simulator.state import Simulator
from app.simulator.wire import airtel_enquiry_body, airtel_envelope


def status_only(
    http_status: int, *, result_code: str, response_code: str, message: str, code: str | None = None
) -> JSONResponse:
    envelope = airtel_envelope(
        code=code or str(http_status),
        message=message,
        result_code=result_code,
        response_code=response_code,
        success=False,
    )
    return JSONResponse(status_code=http_status, content={"status": envelope})


def fail(http_status: int, result_code: str, message: str) -> NoReturn:
    raise WireError(
        status_only(
            http_status, result_code=result_code, response_code=result_code, message=message
        )
    )


class AirtelRoute(ProviderRoute):
    provider = "airtel_money"
    create_endpoints = frozenset({Endpoint.AIRTEL_PAYMENT})
    refund_endpoints = frozenset({Endpoint.AIRTEL_REFUND})

    @classmethod
    def error_response(cls, status_code: int) -> Response:
        message = "Service Unavailable" if status_code == 503 else "Something went wrong"
        return status_only(
            status_code, result_code="ESB000001", response_code="ESB000001", message=message
        )

    @classmethod
    def rate_limited_response(cls) -> Response:
        # Airtel's gateway advertises x-ratelimit-limit-minute; the body is the gateway's own.
        return JSONResponse(
            status_code=429,
            content={"message": "API rate limit exceeded"},
            headers={"Retry-After": "1", "X-RateLimit-Limit-Minute": "10"},
        )

    @classmethod
    async def create_reference(cls, endpoint: Endpoint, request: Request) -> str | None:
        # A push names its own transaction.id; a refund names the collection's airtel_money_id.
        field = "airtel_money_id" if endpoint is Endpoint.AIRTEL_REFUND else "id"
        try:
            body = json.loads(await request.body())
            reference = body["transaction"][field]
        except (ValueError, KeyError, TypeError):
            return None
        return str(reference) if isinstance(reference, str | int) else None


# --- checks shared by the payment endpoints -----------------------------------------------------


def require_bearer(request: Request, simulator: Simulator) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and simulator.credentials.check("airtel_money", token.strip()):
        return
    description = "The access token is invalid or has expired"
    raise WireError(
        JSONResponse(
            status_code=401,
            content={"error_description": description, "error": "invalid_token"},
            headers={
                "WWW-Authenticate": (
                    'Bearer realm="service" error="invalid_token" '
                    f'error_description="{description}"'
                )
            },
        )
    )


def require_locale_headers(request: Request, config: SimulatorConfig) -> None:
    country = request.headers.get("X-Country", "").strip()
    currency = request.headers.get("X-Currency", "").strip()
    if not country:
        fail(400, "ROUTER003", "Mandatory request header missing: X-Country")
    if not currency:
        fail(400, "ROUTER003", "Mandatory request header missing: X-Currency")
    if country != config.airtel_country:
        fail(400, "ROUTER006", f"Invalid country: {country}")
    if currency != config.airtel_currency:
        fail(400, "ROUTER112", f"Invalid currency: {currency}")


# --- wire models ---------------------------------------------------------------------------------


class AirtelSubscriber(BaseModel):
    model_config = ConfigDict(strict=True)

    country: str
    currency: str
    msisdn: str | StrictInt


class AirtelTransaction(BaseModel):
    model_config = ConfigDict(strict=True)

    amount: StrictInt | StrictFloat
    country: str
    currency: str
    id: str = Field(min_length=1, max_length=64)


class AirtelPayment(BaseModel):
    model_config = ConfigDict(strict=True)

    reference: str = Field(min_length=1, max_length=64)
    subscriber: AirtelSubscriber
    transaction: AirtelTransaction


BodyT = TypeVar("BodyT", bound=BaseModel)


def parse_body(model: type[BodyT], raw: bytes) -> BodyT:
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        fail(400, "ESB000008", f"Field validation: {where}: {first['msg']}")


def national_msisdn(value: str | int) -> str:
    """Airtel wants the 9-digit national number: "Do not send country code in msisdn"."""
    msisdn = str(value).strip()
    if not (msisdn.isdigit() and len(msisdn) == 9):
        fail(
            400,
            "ESB000033",
            "Invalid MSISDN Length. MSISDN Length should be 9 and should be without country code",
        )
    return msisdn


def _amount_text(amount: int | float) -> str | None:
    """The amount as a whole number of shillings, or None when it is not one."""
    if amount <= 0 or (isinstance(amount, float) and not amount.is_integer()):
        return None
    return str(int(amount))


# --- routes --------------------------------------------------------------------------------------

router = APIRouter(route_class=AirtelRoute)


@router.post("/auth/oauth2/token", name=Endpoint.AIRTEL_TOKEN)
async def create_access_token(request: Request) -> Response:
    simulator = simulator_of(request)
    config = simulator.config
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse(
            status_code=400,
            content={"error_description": "Invalid request body", "error": "invalid_request"},
        )
    if body.get("grant_type") != "client_credentials":
        return JSONResponse(
            status_code=400,
            content={
                "error_description": "Unsupported grant type",
                "error": "unsupported_grant_type",
            },
        )
    client_id, client_secret = body.get("client_id"), body.get("client_secret")
    if not (
        isinstance(client_id, str)
        and isinstance(client_secret, str)
        and same_secret(client_id, config.airtel_client_id)
        and same_secret(client_secret, config.airtel_client_secret)
    ):
        return JSONResponse(
            status_code=400,
            content={
                "error_description": "Invalid client authentication",
                "error": "invalid_client",
            },
        )
    lifetime = config.airtel_token_lifetime_seconds
    token = simulator.credentials.issue("airtel_money", lifetime)
    # Airtel sends expires_in as a string.
    return JSONResponse(
        content={"access_token": token, "expires_in": str(lifetime), "token_type": "bearer"}
    )


@router.post("/merchant/v1/payments/", name=Endpoint.AIRTEL_PAYMENT)
async def ussd_push(request: Request) -> Response:
    simulator = simulator_of(request)
    config = simulator.config
    require_bearer(request, simulator)
    require_locale_headers(request, config)
    body = parse_body(AirtelPayment, await request.body())
    msisdn = national_msisdn(body.subscriber.msisdn)
    for part in (body.subscriber, body.transaction):
        if part.country != config.airtel_country:
            fail(400, "ESB000034", "Invalid Country Name")
        if part.currency != config.airtel_currency:
            fail(400, "ESB000035", "Invalid Currency Code")

    transaction_id = body.transaction.id
    if simulator.ledger.get(("airtel_money", transaction_id)) is not None:
        return _duplicate_transaction()
    amount = _amount_text(body.transaction.amount)
    if amount is None:
        return status_only(
            200,
            code="400",
            result_code="ESB000011",
            response_code="DP00800001004",
            message="Invalid Amount",
        )
    scenario = scenario_for(msisdn)
    if scenario.airtel_refusal is not None:
        refusal = scenario.airtel_refusal
        return status_only(
            refusal.http_status,
            code="400" if refusal.http_status == 200 else None,
            result_code=refusal.result_code,
            response_code=refusal.response_code,
            message=refusal.message,
        )

    payment = Payment(
        provider="airtel_money",
        reference=transaction_id,
        amount=amount,
        currency=body.transaction.currency,
        msisdn=msisdn,
        scenario=scenario,
        external_id=body.reference,
    )
    if not simulator.accept(payment):
        return _duplicate_transaction()
    return JSONResponse(
        content={
            "data": {"transaction": {"id": transaction_id, "status": "SUCCESS"}},
            "status": airtel_envelope(
                code="200",
                message="SUCCESS",
                result_code="ESB000010",
                response_code="DP00800001006",
                success=True,
            ),
        }
    )


def _duplicate_transaction() -> Response:
    # Verbatim from Airtel's Uganda Postman export, HTTP 200 included.
    return JSONResponse(
        content={
            "status": {
                "response_code": "DP00800001000",
                "code": "500",
                "success": False,
                "result_code": "ESB000041",
                "message": "External Transaction ID already exists.",
            }
        }
    )


@router.get("/standard/v1/payments/{transaction_id}", name=Endpoint.AIRTEL_ENQUIRY)
async def transaction_enquiry(transaction_id: str, request: Request) -> Response:
    simulator = simulator_of(request)
    require_bearer(request, simulator)
    require_locale_headers(request, simulator.config)
    payment = simulator.ledger.get(("airtel_money", transaction_id))
    if payment is None:
        return status_only(
            404,
            result_code="ESB000045",
            response_code="DP00800001025",
            message="No Transaction Found With Provided Transaction Id.",
        )
    return JSONResponse(content=airtel_enquiry_body(payment))
