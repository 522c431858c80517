"""What every MTN product (Collection, Disbursement) does the same way: its own credentials and
cached token, the headers of its calls, and reading an answer."""

from __future__ import annotations

from typing import ClassVar

import httpx
from pydantic import SecretStr

from app.providers import outcomes
from app.providers.http import RetryPolicy, response_json, send_with_retries
from app.providers.mtn_momo import answers, wire
from app.providers.tokens import AccessToken, CachedTokenAuth, TokenCache, credentials_fingerprint
from app.vocabulary import Provider


class MtnProduct:
    """One MTN product. MTN issues credentials and tokens per product: a Collection token is
    refused by Disbursement and the other way round, so each product caches its own token, even
    when MTN issued one API user for both."""

    name: Provider = Provider.MTN_MOMO
    product: ClassVar[str]  # "collection" or "disbursement": the token's path and cache key
    token_operation: ClassVar[str]  # the token call's name in metrics ("mtn.token")
    rules: ClassVar[outcomes.OutcomeRules]

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        api_user: str,
        api_key: SecretStr,
        subscription_key: SecretStr,
        target_environment: str,
        currency: str,
        token_cache: TokenCache,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._client = client
        self._api_user = api_user
        self._api_key = api_key
        self._subscription_key = subscription_key
        self._target_environment = target_environment
        self.currency = currency
        self._policy = retry_policy or RetryPolicy()
        fingerprint = credentials_fingerprint(
            str(client.base_url),
            api_user,
            api_key.get_secret_value(),
            subscription_key.get_secret_value(),
        )
        self._auth = CachedTokenAuth(
            cache=token_cache, key=f"mtn_momo:{self.product}:{fingerprint}", fetch=self._fetch_token
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        return {
            "X-Target-Environment": self._target_environment,
            "Ocp-Apim-Subscription-Key": self._subscription_key.get_secret_value(),
        }

    async def _query(self, path: str, *, operation: str) -> httpx.Response:
        """GET with retries; no answer at all is ``ProviderUnavailable``."""
        request = self._client.build_request("GET", path, headers=self._headers())
        sending = send_with_retries(
            self._client,
            request,
            policy=self._policy,
            provider=self.name,
            operation=operation,
            auth=self._auth,
            is_transient=answers.is_transient_query,
        )
        return await self.rules.read_or_unavailable(sending, operation=operation)

    def _require_success(self, response: httpx.Response, *, operation: str) -> None:
        self.rules.require_success(
            response,
            operation=operation,
            describe=answers.describe,
            configuration=answers.is_configuration_error,
        )

    async def _fetch_token(self) -> AccessToken:
        request = self._client.build_request(
            "POST",
            f"/{self.product}/token/",
            headers={"Ocp-Apim-Subscription-Key": self._subscription_key.get_secret_value()},
        )
        reply = await send_with_retries(
            self._client,
            request,
            policy=self._policy,
            provider=self.name,
            operation=self.token_operation,
            auth=httpx.BasicAuth(self._api_user, self._api_key.get_secret_value()),
            is_transient=answers.is_transient_token,
        )
        self.rules.require_token_granted(reply.response)
        payload = response_json(reply.response)
        token = outcomes.parse_answer(wire.MtnToken, payload, operation=self.token_operation)
        return AccessToken.from_response(token.access_token, token.expires_in)
