"""Airtel Money's settings: ``AIRTEL_MONEY_*``, the original guide's names."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from app.config import ProviderSettings


class AirtelMoneySettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="AIRTEL_MONEY_")

    api_url: str = "https://openapiuat.airtel.africa"
    path_prefix: str = Field(
        default="", description="Prefix before every Airtel path, e.g. /simulate on some UG hosts."
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    country: str = "UG"

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)
