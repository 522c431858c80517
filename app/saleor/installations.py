"""Installing the app into a Saleor instance, and finding the installation a webhook names.

Registration follows Saleor's app SDK: the Saleor URL must be allowed here, its token must work
(``{ app { id } }``), and its public keys are fetched and stored, so a webhook is later checked
against what was stored, never against keys fetched from wherever a request points.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import new_id, utcnow
from app.errors import AppError
from app.merchants.models import Merchant
from app.merchants.service import create_merchant
from app.saleor.client import SaleorCallFailed, SaleorClient
from app.saleor.models import SaleorInstallation
from app.saleor.signature import has_usable_key
from app.saleor.tokens import TokenBox, token_fingerprint

logger = logging.getLogger(__name__)

# An unknown key id makes us fetch Saleor's keys again, at most this often per installation
# and process: a stream of forged signatures cannot turn into a stream of requests to Saleor.
JWKS_REFETCH_INTERVAL = timedelta(minutes=5)
MAX_TOKEN_LENGTH = 1024


def allowed_url_patterns(patterns: list[str]) -> list[re.Pattern[str]]:
    """``*`` matches anything but ``/``, everything else matches itself."""
    compiled = []
    for pattern in patterns:
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        compiled.append(re.compile(regex))
    return compiled


@dataclass(frozen=True)
class Installed:
    installation: SaleorInstallation
    created: bool  # False: an existing installation took a new token (a reinstall)


class Installations:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: SaleorClient,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._allowed = allowed_url_patterns(settings.saleor_allowed_api_urls)
        key = settings.saleor_app_token_key
        self._tokens = TokenBox(key.get_secret_value()) if key is not None else None
        self._last_refetch: dict[str, float] = {}

    def is_allowed(self, saleor_api_url: str) -> bool:
        return any(pattern.fullmatch(saleor_api_url) for pattern in self._allowed)

    # --- installing --------------------------------------------------------------------------
    async def register(self, saleor_api_url: str, token: str) -> Installed:
        """Install (or reinstall) for ``saleor_api_url``. Raises AppError, changing nothing,
        for a URL not allowed, the same token again, or a token Saleor does not honour."""
        if self._tokens is None or not self.is_allowed(saleor_api_url):
            raise AppError(
                403,
                "saleor_not_allowed",
                "This Saleor instance may not install the app (SALEOR_ALLOWED_API_URLS).",
            )
        existing = await self.for_api_url(saleor_api_url)
        fingerprint = token_fingerprint(token)
        if existing is not None and existing.app_token_sha256 == fingerprint:
            raise AppError(
                409, "already_installed", "The app is already installed with this token."
            )
        try:
            app_id = await self._client.app_id(saleor_api_url, token)
            jwks = await self._client.jwks(saleor_api_url)
        except SaleorCallFailed as exc:
            raise AppError(
                400, "saleor_install_failed", f"Could not confirm the installation: {exc}."
            ) from None
        if not has_usable_key(jwks):
            raise AppError(400, "saleor_install_failed", "Saleor's JWKS holds no RSA key.")
        sealed = self._tokens.seal(token)
        now = utcnow()
        values: dict[str, Any] = {
            "app_id": app_id,
            "app_token_encrypted": sealed,
            "app_token_sha256": fingerprint,
            "jwks": jwks,
            "jwks_fetched_at": now,
            "updated_at": now,
        }
        try:
            if existing is not None:
                installation = await self._reinstall(existing, values)
                return Installed(installation, created=False)
            return Installed(await self._install(saleor_api_url, values), created=True)
        except IntegrityError:
            # Two installs for one URL at once: the other one won.
            raise AppError(409, "already_installed", "An installation is in progress.") from None

    async def _install(self, saleor_api_url: str, values: dict[str, Any]) -> SaleorInstallation:
        installation = SaleorInstallation(id=new_id("sal"), saleor_api_url=saleor_api_url, **values)

        async def link(session: AsyncSession, merchant: Merchant) -> None:
            installation.merchant_id = merchant.id
            installation.installed_at = values["updated_at"]
            session.add(installation)

        host = urlsplit(saleor_api_url).hostname or "Saleor"
        # The merchant's callback URL is never posted to: its events go to Saleor as reports.
        await create_merchant(
            self._sessions, name=f"Saleor {host}"[:200], callback_url=saleor_api_url, also=link
        )
        logger.info(
            "Saleor app installed",
            extra={"merchant_id": installation.merchant_id, "saleor_installation": installation.id},
        )
        return installation

    async def _reinstall(
        self, existing: SaleorInstallation, values: dict[str, Any]
    ) -> SaleorInstallation:
        async with self._sessions.begin() as session:
            await session.execute(
                update(SaleorInstallation)
                .where(SaleorInstallation.id == existing.id)
                .values(**values)
            )
        logger.info(
            "Saleor app reinstalled",
            extra={"merchant_id": existing.merchant_id, "saleor_installation": existing.id},
        )
        reloaded = await self.for_api_url(existing.saleor_api_url)
        assert reloaded is not None
        return reloaded

    # --- reading -----------------------------------------------------------------------------
    async def for_api_url(self, saleor_api_url: str) -> SaleorInstallation | None:
        if not saleor_api_url or len(saleor_api_url) > 2048:
            return None
        async with self._sessions() as session:
            return await session.scalar(
                select(SaleorInstallation).where(
                    SaleorInstallation.saleor_api_url == saleor_api_url
                )
            )

    def token(self, installation: SaleorInstallation) -> str:
        """The app's token in clear, to call Saleor with. Raises UndecryptableToken."""
        if self._tokens is None:
            raise RuntimeError("SALEOR_APP_TOKEN_KEY is not set")
        return self._tokens.open(installation.app_token_encrypted)

    async def refetched_jwks(self, installation: SaleorInstallation) -> dict[str, Any] | None:
        """Saleor's keys fetched again after a signature named an unknown key id, stored when
        they changed. None: fetched too recently, unreachable, or unchanged."""
        now = time.monotonic()
        last = self._last_refetch.get(installation.id)
        if last is not None and now - last < JWKS_REFETCH_INTERVAL.total_seconds():
            return None
        self._last_refetch[installation.id] = now
        try:
            jwks = await self._client.jwks(installation.saleor_api_url)
        except SaleorCallFailed as exc:
            logger.warning("Saleor JWKS refetch failed: %s", exc)
            return None
        if jwks == installation.jwks or not has_usable_key(jwks):
            return None
        async with self._sessions.begin() as session:
            await session.execute(
                update(SaleorInstallation)
                .where(SaleorInstallation.id == installation.id)
                .values(jwks=jwks, jwks_fetched_at=utcnow())
            )
        logger.info("Saleor JWKS updated", extra={"saleor_installation": installation.id})
        return jwks


async def installation_for_merchant(
    session: AsyncSession, merchant_id: str
) -> SaleorInstallation | None:
    return await session.scalar(
        select(SaleorInstallation).where(SaleorInstallation.merchant_id == merchant_id)
    )
