"""Settings, read once from the environment (and an optional ``.env`` file).

Names are the original integration guide's, so an existing ``backend.env`` works unchanged.
Each provider's own block (``MTN_MOMO_*``, ``AIRTEL_MONEY_*``) is a ``ProviderSettings`` defined
in its folder. A provider whose credentials are missing is "not configured": requests for it are
refused cleanly, nothing crashes. Secrets are ``SecretStr`` so they never show up in a ``repr``
or a log.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.sources import ENV_FILE_SENTINEL

from app.vocabulary import Provider

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./momo_gateway.db"


def _split_list(value: Any) -> Any:
    """``"a, b,c"`` → ``["a", "b", "c"]``; JSON lists and real lists pass through."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _parse_networks(values: list[str]) -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR") from None
    return networks


def _checked_networks(values: list[str]) -> list[str]:
    _parse_networks(values)  # refuse a bad entry at start-up, not at the first callback
    return values


# "a, b,c" or a JSON list in the environment; NoDecode keeps pydantic-settings from reading the
# value as JSON first.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
NetworkList = Annotated[
    list[str], NoDecode, BeforeValidator(_split_list), AfterValidator(_checked_networks)
]

_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

ProviderSettingsT = TypeVar("ProviderSettingsT", bound="ProviderSettings")


class ProviderSettings(BaseSettings):
    """One provider's block of settings. Each provider's folder subclasses it with its own
    fields and ``env_prefix`` (``MTN_MOMO_`` → ``MTN_MOMO_API_URL`` is ``api_url``); what every
    provider has is here."""

    # hide_input_in_errors: a refused value may be a secret (a short key, a URL with its
    # password); the error names the setting and the rule, never the value.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    currency: str = "UGX"
    callback_url: str | None = None
    webhook_secret: SecretStr | None = None
    allowed_ips: NetworkList = Field(default_factory=list)

    @cached_property
    def allowed_networks(self) -> list[IPNetwork]:
        return _parse_networks(self.allowed_ips)

    @property
    def configured(self) -> bool:
        """Whether the credentials are there: a provider without them takes no payments."""
        return False


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret (a short key, a URL with its
    # password); the error names the setting and the rule, never the value.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # --- storage ---------------------------------------------------------------------------
    database_url: str = Field(
        default=DEFAULT_SQLITE_URL,
        description="SQLAlchemy async URL; PostgreSQL (postgresql+asyncpg://) in production.",
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        le=500,
        description="PostgreSQL connections each process keeps open, and never more: a "
        "request waits for a free one rather than opening another (a new backend costs "
        "PostgreSQL a process and every prepared statement again).",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for tokens and the arq queue; unset = in-process jobs."
    )

    # --- provider HTTP ---------------------------------------------------------------------
    provider_http_backend: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        description="What moves provider requests' bytes: aiohttp (cheaper per request) or "
        "httpx's own httpcore. Requests, retries and timeouts are httpx's either way.",
    )
    provider_max_connections: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Open connections per provider and process: with a slow provider, the "
        "number of request-to-pay calls one process can have in flight.",
    )

    # --- callbacks -----------------------------------------------------------------------------
    trusted_proxies: NetworkList = Field(default_factory=list)
    callback_token_secret: SecretStr | None = None
    callback_verify_deadline_seconds: float = Field(
        default=1.5,
        gt=0,
        description="How long a callback waits for the provider's status before answering "
        "(MTN waits about 2 s); the check then finishes in the background.",
    )

    # --- payments ------------------------------------------------------------------------------
    max_requests_in_flight: int = Field(
        default=0,
        ge=0,
        description="Payment creations one API process serves at once; past it, POST "
        "/v1/payments answers 503 overloaded with Retry-After at once. 0 = no limit.",
    )
    min_amount: int = Field(default=100, ge=1)
    max_amount: int = Field(default=5_000_000, ge=1)
    payment_timeout_seconds: int = Field(default=1800, ge=1)
    network_prefix_overrides: CommaList = Field(
        default_factory=list,
        description="Extra prefix=provider pairs, e.g. 25679=mtn_momo; they win over carrier data.",
    )

    # --- worker --------------------------------------------------------------------------------
    reconcile_interval_seconds: float = Field(default=300, gt=0)
    reconcile_min_age_seconds: float = Field(default=180, ge=0)
    reconcile_rate_per_second: float = Field(
        default=10, gt=0, description="Status checks per second per provider, per worker process."
    )
    event_retry_base_seconds: float = Field(default=30, gt=0)
    event_max_attempts: int = Field(default=12, ge=1)

    worker_metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="The worker's own /metrics port; 0 = none."
    )

    # --- SMS receipts (Africa's Talking) ------------------------------------------------------
    africastalking_username: str | None = Field(
        default=None, description="Africa's Talking app username; `sandbox` for its sandbox."
    )
    africastalking_api_key: SecretStr | None = None
    africastalking_sender_id: str | None = Field(
        default=None, description="Registered sender ID (`from`); unset = Africa's Talking's own."
    )
    africastalking_api_url: str = Field(
        default="https://api.africastalking.com",
        description="https://api.sandbox.africastalking.com for the sandbox.",
    )
    # Delivery reports are unsigned: this secret in their URL tells them apart from forgeries.
    africastalking_callback_token: SecretStr | None = None

    # --- console -------------------------------------------------------------------------------
    console_enabled: bool = Field(
        default=True, description="The operator console at /console/; false = every path 404."
    )
    console_timezone: str = Field(
        default="Africa/Kampala",
        description="IANA zone the console shows times in, unless an operator chose another.",
    )

    # --- Saleor payment app (app.saleor) -----------------------------------------------------
    saleor_allowed_api_urls: CommaList = Field(
        default_factory=list,
        description="Saleor GraphQL API URLs that may install the app, e.g. "
        "https://shop.example.com/graphql/; `*` stands for any characters except `/`, e.g. "
        "https://*.saleor.cloud/graphql/. Empty = no Saleor may install.",
    )
    saleor_app_token_key: SecretStr | None = Field(
        default=None,
        description="Encrypts installed Saleor apps' tokens at rest: a random string of 32+ "
        "characters, required with SALEOR_ALLOWED_API_URLS; changing it orphans installations.",
    )
    saleor_app_url: str | None = Field(
        default=None,
        description="The gateway's public base URL for Saleor's manifest (e.g. "
        "https://pay.example.com); unset = the URL the manifest was requested on.",
    )

    # --- service -------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json, or console for humans")

    # Init values that are not core settings: a provider's block takes those with its prefix
    # (``mtn_momo_api_url=…`` → MTN's ``api_url``), so one Settings(...) still sets everything.
    _provider_values: dict[str, Any] = PrivateAttr(default_factory=dict)
    _provider_blocks: dict[type[ProviderSettings], ProviderSettings] = PrivateAttr(
        default_factory=dict
    )
    _env_file: Any = PrivateAttr(default=ENV_FILE_SENTINEL)

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        own = {k: v for k, v in values.items() if k.startswith("_") or k.lower() in fields}
        super().__init__(**own)
        self._provider_values = {k.lower(): v for k, v in values.items() if k not in own}
        self._env_file = values.get("_env_file", ENV_FILE_SENTINEL)

    def provider_settings(self, settings_type: type[ProviderSettingsT]) -> ProviderSettingsT:
        """One provider's block, read once from the environment (its own prefix) and from the
        values this object was given under that prefix."""
        block = self._provider_blocks.get(settings_type)
        if block is None:
            prefix = str(settings_type.model_config.get("env_prefix") or "").lower()
            given: dict[str, Any] = {
                name[len(prefix) :]: value
                for name, value in self._provider_values.items()
                if prefix and name.startswith(prefix)
            }
            if self._env_file is not ENV_FILE_SENTINEL:
                given["_env_file"] = self._env_file
            block = settings_type(**given)
            self._provider_blocks[settings_type] = block
        assert isinstance(block, settings_type)
        return block

    @field_validator("network_prefix_overrides")
    @classmethod
    def _overrides(cls, value: list[str]) -> list[str]:
        # The provider names are checked against the registry when the gateway starts.
        for item in value:
            prefix, _, provider = item.partition("=")
            if not prefix.isdigit() or not _PROVIDER_NAME.fullmatch(provider):
                raise ValueError(f"{item!r} is not PREFIX=provider, e.g. 25679=mtn_momo")
        return value

    @field_validator("saleor_allowed_api_urls")
    @classmethod
    def _saleor_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.fullmatch(r"https?://[^/\s]+/\S*", url):
                raise ValueError(f"{url!r} is not an http(s) URL such as https://shop/graphql/")
        return value

    @field_validator("saleor_app_token_key")
    @classmethod
    def _saleor_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _saleor_key_with_urls(self) -> Settings:
        if self.saleor_allowed_api_urls and self.saleor_app_token_key is None:
            raise ValueError(
                "SALEOR_APP_TOKEN_KEY is required when SALEOR_ALLOWED_API_URLS is set "
                "(it encrypts the installed app's Saleor token)"
            )
        return self

    @field_validator("console_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA timezone such as Africa/Kampala") from None
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        # Accept the plain URLs operators paste (postgres://, postgresql://) and use asyncpg.
        if isinstance(value, str):
            for plain in ("postgres://", "postgresql://"):
                if value.startswith(plain):
                    return "postgresql+asyncpg://" + value[len(plain) :]
            if not value:
                return DEFAULT_SQLITE_URL
        return value

    # --- derived -------------------------------------------------------------------------------
    @cached_property
    def trusted_proxy_networks(self) -> list[IPNetwork]:
        return _parse_networks(self.trusted_proxies)

    @cached_property
    def prefix_overrides(self) -> dict[str, Provider]:
        pairs = (item.partition("=") for item in self.network_prefix_overrides)
        return {prefix: Provider(provider) for prefix, _, provider in pairs}

    @property
    def sms_configured(self) -> bool:
        """Whether SMS receipts can be sent: without credentials none are queued or sent."""
        return bool(self.africastalking_username) and self.africastalking_api_key is not None

    @property
    def saleor_enabled(self) -> bool:
        """Whether any Saleor may install the app (the /saleor/ routes answer either way)."""
        return bool(self.saleor_allowed_api_urls)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
