"""The simulator's knobs, and the credentials it accepts out of the box.

A config is immutable: the control endpoint builds a new one and swaps it in whole, so a request
never sees half of a change. ``DEFAULT_*`` are public on purpose: ``momo-gateway dev`` points the
gateway at the simulator with them, and they are worthless anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MtnProduct = Literal["collection", "disbursement"]

DEFAULT_MTN_API_USER = "5f7c2a9e-3b1d-4e8f-9a6c-0d2b4e6f8a10"
DEFAULT_MTN_API_KEY = "momo-simulator-mtn-api-key"
DEFAULT_MTN_SUBSCRIPTION_KEY = "momo-simulator-mtn-subscription-key"
DEFAULT_MTN_TARGET_ENVIRONMENT = "sandbox"
# MTN issues one subscription key per product, so the Disbursement product (refunds) has its own;
# its API user is separate too, which catches a client that sends one product's values to the other.
DEFAULT_MTN_DISBURSEMENT_API_USER = "7d1e4b8c-6a2f-4c3d-8e5b-9f0a1c2d3e4f"
DEFAULT_MTN_DISBURSEMENT_API_KEY = "momo-simulator-mtn-disbursement-api-key"
DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY = "momo-simulator-mtn-disbursement-subscription-key"
DEFAULT_AIRTEL_CLIENT_ID = "momo-simulator-airtel-client-id"
DEFAULT_AIRTEL_CLIENT_SECRET = "momo-simulator-airtel-client-secret"  # noqa: S105 - public dev value
DEFAULT_AFRICASTALKING_API_KEY = "momo-simulator-africastalking-api-key"


class Endpoint(StrEnum):
    """Provider endpoints, as named in fault scopes and statistics."""

    MTN_TOKEN = "mtn.token"  # noqa: S105 - an endpoint name, not a credential
    MTN_REQUEST_TO_PAY = "mtn.requesttopay"
    MTN_REQUEST_TO_PAY_STATUS = "mtn.requesttopay_status"
    MTN_ACCOUNT_HOLDER = "mtn.accountholder"
    MTN_BALANCE = "mtn.balance"
    MTN_PROVISIONING = "mtn.provisioning"
    MTN_DISBURSEMENT_TOKEN = "mtn.disbursement_token"  # noqa: S105 - an endpoint name
    MTN_REFUND = "mtn.refund"
    MTN_REFUND_STATUS = "mtn.refund_status"
    MTN_DISBURSEMENT_BALANCE = "mtn.disbursement_balance"
    AIRTEL_TOKEN = "airtel.token"  # noqa: S105 - an endpoint name, not a credential
    AIRTEL_PAYMENT = "airtel.payment"
    AIRTEL_ENQUIRY = "airtel.enquiry"
    AIRTEL_REFUND = "airtel.refund"
    AFRICASTALKING_MESSAGING = "africastalking.messaging"


Rate = Annotated[float, Field(ge=0, le=1)]
Seconds = Annotated[float, Field(ge=0)]

# Changing these needs new routes, so they are fixed for the life of an app.
STARTUP_ONLY_FIELDS = frozenset({"airtel_path_prefix"})


class Faults(BaseModel):
    """What goes wrong, and how often, on a provider endpoint.

    One random draw per request picks at most one fault, in this order: an error answer, a 429, a
    hang before anything happens, a hang after the request took effect. The rates add up, so their
    sum must stay at or below 1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_seconds: Seconds = 0
    error_rate: Rate = 0
    error_status: Literal[500, 503] = 503
    rate_limit_rate: Rate = 0
    # The request is dropped before it does anything: nothing is charged.
    timeout_rate: Rate = 0
    # The dangerous one: the charge (or token, ...) is recorded, but the answer never comes.
    timeout_after_processing_rate: Rate = 0
    hang_seconds: Seconds = 60

    @model_validator(mode="after")
    def _rates_fit_one_draw(self) -> Faults:
        total = (
            self.error_rate
            + self.rate_limit_rate
            + self.timeout_rate
            + self.timeout_after_processing_rate
        )
        if total > 1 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; at most 1 can happen per request")
        return self


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- MTN MoMo Collection -------------------------------------------------------------------
    mtn_api_user: str = DEFAULT_MTN_API_USER
    mtn_api_key: str = DEFAULT_MTN_API_KEY
    mtn_subscription_key: str = DEFAULT_MTN_SUBSCRIPTION_KEY
    mtn_target_environment: str = DEFAULT_MTN_TARGET_ENVIRONMENT
    mtn_currencies: frozenset[str] = frozenset({"UGX", "EUR"})
    mtn_token_lifetime_seconds: int = Field(default=3600, ge=1)
    # MTN answers `reason` as a string today; its old swagger (and old clients) used an object.
    mtn_reason_format: Literal["string", "object"] = "string"
    # MTN's docs say PUT in one version and POST in another; receivers must take both.
    mtn_callback_method: Literal["PUT", "POST"] = "PUT"
    mtn_account_currency: str = "UGX"
    mtn_opening_balance: Decimal = Field(default=Decimal(0), ge=0)

    # --- MTN MoMo Disbursement (refunds) -------------------------------------------------------
    mtn_disbursement_api_user: str = DEFAULT_MTN_DISBURSEMENT_API_USER
    mtn_disbursement_api_key: str = DEFAULT_MTN_DISBURSEMENT_API_KEY
    mtn_disbursement_subscription_key: str = DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY
    # What the disbursement account holds in each currency until a refund debits it or the control
    # API sets it; large, so ordinary runs never notice it.
    mtn_disbursement_opening_balance: Decimal = Field(default=Decimal(1_000_000_000), ge=0)
    # A refund the disbursement account cannot cover: MTN's transfer example says NOT_ENOUGH_FUNDS,
    # its error page says INTERNAL_PROCESSING_ERROR "predominantly" means no funds.
    mtn_short_balance_reason: Literal["NOT_ENOUGH_FUNDS", "INTERNAL_PROCESSING_ERROR"] = (
        "NOT_ENOUGH_FUNDS"
    )
    # "failed": 202, then FAILED with that reason; "refused": HTTP 500 with it as the code, at once.
    mtn_short_balance_answer: Literal["failed", "refused"] = "failed"

    # --- Airtel Money --------------------------------------------------------------------------
    airtel_client_id: str = DEFAULT_AIRTEL_CLIENT_ID
    airtel_client_secret: str = DEFAULT_AIRTEL_CLIENT_SECRET
    airtel_token_lifetime_seconds: int = Field(default=180, ge=1)
    airtel_country: str = "UG"
    airtel_currency: str = "UGX"
    airtel_path_prefix: str = ""
    # Airtel takes no per-request callback URL: it posts to the one registered in its portal.
    airtel_callback_url: str | None = None
    airtel_callback_secret: str | None = None

    # --- Africa's Talking SMS ------------------------------------------------------------------
    africastalking_api_key: str = DEFAULT_AFRICASTALKING_API_KEY
    # Africa's Talking posts delivery reports to the one URL set in its dashboard.
    sms_delivery_report_url: str | None = None
    sms_report_delay_seconds: Seconds = 0.5

    # --- How payments resolve ----------------------------------------------------------------
    approval_delay_seconds: Seconds = 1.5
    # MTN's 2018 sandbox notes: "pending first, success if re-queried after 30 s".
    ongoing_delay_seconds: Seconds = 30
    # How long an accepted MTN refund stays PENDING; None follows approval_delay_seconds.
    refund_delay_seconds: Seconds | None = None

    # --- Callbacks -----------------------------------------------------------------------------
    callbacks_enabled: bool = True
    callback_delay_seconds: Seconds = 0
    callback_timeout_seconds: float = Field(default=5, gt=0)
    # MTN's callback page says "sent once, no retry" in one version: that is the default.
    callback_retries: int = Field(default=0, ge=0, le=50)
    callback_retry_delay_seconds: Seconds = 1

    # --- Faults --------------------------------------------------------------------------------
    seed: int | None = None
    faults: Faults = Faults()
    # An endpoint listed here uses its own faults instead of the global ones.
    endpoint_faults: dict[Endpoint, Faults] = Field(default_factory=dict)

    @field_validator("mtn_currencies")
    @classmethod
    def _upper_currencies(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(code.upper() for code in value)

    @field_validator("airtel_path_prefix")
    @classmethod
    def _normalise_prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            value = "/" + value
        return value

    def faults_for(self, endpoint: Endpoint) -> Faults:
        return self.endpoint_faults.get(endpoint, self.faults)

    def mtn_credentials(self, product: MtnProduct) -> tuple[str, str, str]:
        """The configured API user, API key and subscription key of one MTN product."""
        if product == "disbursement":
            return (
                self.mtn_disbursement_api_user,
                self.mtn_disbursement_api_key,
                self.mtn_disbursement_subscription_key,
            )
        return self.mtn_api_user, self.mtn_api_key, self.mtn_subscription_key

    @property
    def refund_delay(self) -> float:
        if self.refund_delay_seconds is None:
            return self.approval_delay_seconds
        return self.refund_delay_seconds

    def patched(self, patch: Mapping[str, Any]) -> SimulatorConfig:
        """A copy with ``patch`` applied.

        Top-level fields are replaced; ``faults`` is merged field by field; ``endpoint_faults`` is
        merged per endpoint, where ``null`` removes that endpoint's override.
        """
        for name in STARTUP_ONLY_FIELDS & patch.keys():
            if patch[name] != getattr(self, name):
                raise ValueError(f"{name} is fixed when the simulator starts")
        merged = self.model_dump()
        for name, value in patch.items():
            if name == "faults" and isinstance(value, Mapping):
                merged["faults"] = {**merged["faults"], **value}
            elif name == "endpoint_faults" and isinstance(value, Mapping):
                overrides = dict(merged["endpoint_faults"])
                for endpoint, faults in value.items():
                    key = Endpoint(endpoint)
                    if faults is None:
                        overrides.pop(key, None)
                    elif isinstance(faults, Mapping):
                        overrides[key] = {**overrides.get(key, {}), **faults}
                    else:
                        overrides[key] = faults
                merged["endpoint_faults"] = overrides
            else:
                merged[name] = value
        return SimulatorConfig.model_validate(merged)
