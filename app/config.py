"""Settings, read once from the environment (and an optional ``.env`` file).

Names are the original integration guide's, so an existing ``backend.env`` works unchanged.
A provider whose credentials are missing is "not configured": requests for it are refused
cleanly, nothing crashes. Secrets are ``SecretStr`` so they never show up in a ``repr`` or a log.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.payments.domain import Provider

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


CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
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
        description="PostgreSQL connections each process keeps open (and half as many more "
        "under bursts); size it to the requests a process has in flight at once.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for tokens and the arq queue; unset = in-process jobs."
    )

    # --- MTN MoMo (Collection) ---------------------------------------------------------------
    mtn_momo_api_url: str = "https://sandbox.momodeveloper.mtn.com"
    mtn_momo_api_user: str | None = None
    mtn_momo_api_key: SecretStr | None = None
    mtn_momo_subscription_key: SecretStr | None = None
    mtn_momo_target_env: str = "sandbox"
    mtn_momo_currency: str = "UGX"
    mtn_momo_callback_url: str | None = None
    mtn_momo_webhook_secret: SecretStr | None = None
    mtn_momo_allowed_ips: CommaList = Field(default_factory=list)

    # --- Airtel Money --------------------------------------------------------------------------
    airtel_money_api_url: str = "https://openapiuat.airtel.africa"
    airtel_money_path_prefix: str = Field(
        default="", description="Prefix before every Airtel path, e.g. /simulate on some UG hosts."
    )
    airtel_money_client_id: str | None = None
    airtel_money_client_secret: SecretStr | None = None
    airtel_money_country: str = "UG"
    airtel_money_currency: str = "UGX"
    airtel_money_callback_url: str | None = None
    airtel_money_webhook_secret: SecretStr | None = None
    airtel_money_allowed_ips: CommaList = Field(default_factory=list)

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
    trusted_proxies: CommaList = Field(default_factory=list)
    callback_token_secret: SecretStr | None = None
    callback_verify_deadline_seconds: float = Field(
        default=1.5,
        gt=0,
        description="How long a callback waits for the provider's status before answering "
        "(MTN waits about 2 s); the check then finishes in the background.",
    )

    # --- payments ------------------------------------------------------------------------------
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

    # --- service -------------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json, or console for humans")

    @field_validator(
        "mtn_momo_allowed_ips",
        "airtel_money_allowed_ips",
        "trusted_proxies",
        "network_prefix_overrides",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("mtn_momo_allowed_ips", "airtel_money_allowed_ips", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        _parse_networks(value)  # refuse a bad entry at start-up, not at the first callback
        return value

    @field_validator("network_prefix_overrides")
    @classmethod
    def _overrides(cls, value: list[str]) -> list[str]:
        for item in value:
            prefix, _, provider = item.partition("=")
            if not prefix.isdigit() or provider not in {p.value for p in Provider}:
                raise ValueError(f"{item!r} is not PREFIX=mtn_momo|airtel_money")
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
    def mtn_allowed_networks(self) -> list[IPNetwork]:
        return _parse_networks(self.mtn_momo_allowed_ips)

    @cached_property
    def airtel_allowed_networks(self) -> list[IPNetwork]:
        return _parse_networks(self.airtel_money_allowed_ips)

    @cached_property
    def trusted_proxy_networks(self) -> list[IPNetwork]:
        return _parse_networks(self.trusted_proxies)

    @cached_property
    def prefix_overrides(self) -> dict[str, Provider]:
        pairs = (item.partition("=") for item in self.network_prefix_overrides)
        return {prefix: Provider(provider) for prefix, _, provider in pairs}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def mtn_configured(self) -> bool:
        return bool(
            self.mtn_momo_api_user and self.mtn_momo_api_key and self.mtn_momo_subscription_key
        )

    @property
    def airtel_configured(self) -> bool:
        return bool(self.airtel_money_client_id and self.airtel_money_client_secret)

    def provider_configured(self, provider: Provider) -> bool:
        if provider is Provider.MTN_MOMO:
            return self.mtn_configured
        return self.airtel_configured

    @property
    def mtn_sandbox(self) -> bool:
        return self.mtn_momo_target_env == "sandbox"
