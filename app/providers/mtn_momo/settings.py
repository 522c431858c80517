"""MTN MoMo's settings: ``MTN_MOMO_*``, the original guide's names."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from app.config import ProviderSettings


class MtnMomoSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="MTN_MOMO_")

    api_url: str = "https://sandbox.momodeveloper.mtn.com"
    api_user: str | None = None
    api_key: SecretStr | None = None
    subscription_key: SecretStr | None = None  # the Collection product's
    target_env: str = "sandbox"
    # Refunds go through MTN's Disbursement product: its own API user, key and subscription key
    # (the same values as the collection ones where MTN issued one user for both).
    disbursement_api_user: str | None = None
    disbursement_api_key: SecretStr | None = None
    disbursement_subscription_key: SecretStr | None = None

    @property
    def configured(self) -> bool:
        return bool(self.api_user and self.api_key and self.subscription_key)

    @property
    def refunds_configured(self) -> bool:
        return bool(
            self.disbursement_api_user
            and self.disbursement_api_key
            and self.disbursement_subscription_key
        )

    @property
    def sandbox(self) -> bool:
        return self.target_env == "sandbox"
