"""``momo-gateway mtn-sandbox-user``: an MTN MoMo sandbox API user and key, ready to paste.

MTN's sandbox hands out Collection credentials through its provisioning API only: create an API
user under a UUID of your choosing, bound to the host its callbacks may go to, then generate its
API key, which is shown once. This does both and prints the ``.env`` lines the gateway reads.

    SandboxProvisioningError      the provisioning API refused, or did not answer
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import sys
import uuid
from dataclasses import dataclass, field

import httpx

SANDBOX_TARGET_ENVIRONMENT = "sandbox"
# MTN's sandbox takes no other currency (momoapi-node#76: "For sandbox API use EUR").
SANDBOX_CURRENCY = "EUR"
MTN_CALLBACK_PATH = "/api/webhooks/mtn-momo/"

_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MAX_PROVIDER_MESSAGE = 300


class SandboxProvisioningError(Exception):
    """What the provisioning API said, fit to print: it never holds the subscription key."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class SandboxUser:
    api_user: str
    # Shown once by MTN; kept out of repr so a logged or printed object does not leak it.
    api_key: str = field(repr=False)
    callback_host: str
    target_environment: str = SANDBOX_TARGET_ENVIRONMENT


def check_callback_host(host: str) -> str:
    """The bare host name MTN wants as ``providerCallbackHost``, or ValueError.

    MTN compares it with the host of every ``X-Callback-Url`` and refuses IP addresses there,
    so a URL, a port or an address here only fails later, at the first request-to-pay.
    """
    candidate = host.strip().rstrip(".")
    if not candidate:
        raise ValueError("the callback host is empty")
    if "://" in candidate or "/" in candidate:
        raise ValueError(
            f"{host!r} is a URL: give the host name only, e.g. pay.example.com "
            "(MTN checks every callback URL's host against it)"
        )
    bare = candidate[1:-1] if candidate.startswith("[") and candidate.endswith("]") else candidate
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        raise ValueError(f"{host!r} is an IP address: MTN only calls back to host names")
    if ":" in candidate:
        raise ValueError(f"{host!r} has a port: give the host name only")
    if len(candidate) > 253 or not all(_LABEL.match(label) for label in candidate.split(".")):
        raise ValueError(f"{host!r} is not a valid host name")
    return candidate.lower()


def _provider_message(response: httpx.Response) -> str:
    """MTN's own words: ``{"code", "message"}`` for API errors, ``{"statusCode", "message"}``
    from its API gateway (a refused subscription key), or whatever text came back."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        code = body.get("code")
        text = f"{code}: {body['message']}" if code else str(body["message"])
    else:
        text = response.text.strip() or response.reason_phrase
    return text[:_MAX_PROVIDER_MESSAGE]


def _refusal(step: str, response: httpx.Response, api_user: str) -> SandboxProvisioningError:
    status = response.status_code
    said = _provider_message(response)
    if status == 401:
        hint = (
            "the subscription key was refused: use the primary or secondary key of your "
            "Collection subscription on momodeveloper.mtn.com"
        )
    elif status == 409:
        hint = f"API user {api_user} already exists: run the command again for a new one"
    elif status == 404:
        hint = "no such API user, or this URL has no provisioning API (it is sandbox-only)"
    else:
        hint = f"{step} failed"
    return SandboxProvisioningError(f"{hint} (HTTP {status}: {said})", status_code=status)


async def _provision(
    client: httpx.AsyncClient, base_url: str, subscription_key: str, callback_host: str
) -> SandboxUser:
    api_user = str(uuid.uuid4())
    subscription = {"Ocp-Apim-Subscription-Key": subscription_key}
    try:
        created = await client.post(
            f"{base_url}/v1_0/apiuser",
            headers={**subscription, "X-Reference-Id": api_user},
            json={"providerCallbackHost": callback_host},
        )
        if created.status_code != 201:
            raise _refusal("creating the API user", created, api_user)
        issued = await client.post(
            f"{base_url}/v1_0/apiuser/{api_user}/apikey", headers=subscription
        )
        if issued.status_code != 201:
            raise _refusal("generating the API key", issued, api_user)
        try:
            api_key = issued.json()["apiKey"]
        except (ValueError, KeyError, TypeError):
            api_key = None
        if not isinstance(api_key, str) or not api_key:
            raise SandboxProvisioningError(
                f"the API key answer had no apiKey (HTTP {issued.status_code})",
                status_code=issued.status_code,
            )
    except httpx.HTTPError as exc:
        raise SandboxProvisioningError(
            f"could not reach {base_url}: {type(exc).__name__}: {exc}"
        ) from None
    return SandboxUser(
        api_user=api_user,
        api_key=api_key,
        callback_host=callback_host,
        target_environment=await _target_environment(client, base_url, subscription, api_user),
    )


async def _target_environment(
    client: httpx.AsyncClient, base_url: str, subscription: dict[str, str], api_user: str
) -> str:
    # By now the key exists and cannot be fetched again: failing to read the user back must not
    # lose it, so anything unexpected here falls back to the sandbox, where provisioning lives.
    try:
        response = await client.get(f"{base_url}/v1_0/apiuser/{api_user}", headers=subscription)
        environment = response.json().get("targetEnvironment") if response.is_success else None
    except (httpx.HTTPError, ValueError, AttributeError):
        environment = None
    return (
        environment if isinstance(environment, str) and environment else SANDBOX_TARGET_ENVIRONMENT
    )


async def create_mtn_sandbox_user(
    *,
    base_url: str,
    subscription_key: str,
    callback_host: str,
    client: httpx.AsyncClient | None = None,
) -> SandboxUser:
    """Create an API user bound to ``callback_host`` and generate its key.

    Raises ValueError for a callback host that is not a bare host name (before any request),
    and SandboxProvisioningError when MTN refuses or cannot be reached.
    """
    host = check_callback_host(callback_host)
    if not subscription_key:
        raise ValueError("the subscription key is empty")
    base = base_url.rstrip("/")
    if client is not None:
        return await _provision(client, base, subscription_key, host)
    async with httpx.AsyncClient(timeout=_TIMEOUT) as own_client:
        return await _provision(own_client, base, subscription_key, host)


def env_lines(user: SandboxUser, base_url: str) -> str:
    """The settings for this user, one ``NAME=value`` a line, to append to ``.env``.

    The subscription key is left out on purpose: the operator already has it, and a secret
    printed once more is a secret in one more terminal scrollback.
    """
    sandbox = user.target_environment == SANDBOX_TARGET_ENVIRONMENT
    # MTN's callback page: "Use http and not https" in the sandbox; only https in production.
    scheme = "http" if sandbox else "https"
    values = {
        "MTN_MOMO_API_URL": base_url.rstrip("/"),
        "MTN_MOMO_API_USER": user.api_user,
        "MTN_MOMO_API_KEY": user.api_key,
        "MTN_MOMO_TARGET_ENV": user.target_environment,
    }
    if sandbox:
        values["MTN_MOMO_CURRENCY"] = SANDBOX_CURRENCY
    values["MTN_MOMO_CALLBACK_URL"] = f"{scheme}://{user.callback_host}{MTN_CALLBACK_PATH}"
    return "".join(f"{name}={value}\n" for name, value in values.items())


# --- the command ---------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.providers.mtn_momo.settings import MtnMomoSettings

    api_url: str | None = args.api_url
    subscription_key: str | None = args.subscription_key
    if api_url is None or subscription_key is None:
        # Read only when a flag is missing, so a bad unrelated setting cannot block the command.
        try:
            mtn = MtnMomoSettings()
        except ValidationError as exc:
            print(f"error: invalid settings: {exc}", file=sys.stderr)
            return 2
        api_url = api_url or mtn.api_url
        if subscription_key is None and mtn.subscription_key is not None:
            subscription_key = mtn.subscription_key.get_secret_value()
    if not subscription_key:
        print(
            "error: set MTN_MOMO_SUBSCRIPTION_KEY (your Collection subscription's primary key) "
            "or pass --subscription-key",
            file=sys.stderr,
        )
        return 2
    try:
        user = asyncio.run(
            create_mtn_sandbox_user(
                base_url=api_url,
                subscription_key=subscription_key,
                callback_host=args.callback_host,
            )
        )
    except (ValueError, SandboxProvisioningError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(env_lines(user, api_url))
    print(
        f"API user {user.api_user} created for callbacks to {user.callback_host}. Keep the key "
        "now: MTN cannot show it again (run this command again for a new user).\n"
        "MTN_MOMO_SUBSCRIPTION_KEY stays the key you used here. The callback URL assumes the "
        "gateway answers on that host's default port; edit its port or path if not (MTN "
        "matches the host only).",
        file=sys.stderr,
    )
    return 0


def add_sandbox_user_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``mtn-sandbox-user`` on the CLI's subcommands."""
    command = subparsers.add_parser(
        "mtn-sandbox-user",
        help="create an MTN MoMo sandbox API user and key; print the settings to paste",
        description=(
            "Create an API user and key through MTN's sandbox provisioning API and print the "
            "MTN_MOMO_* lines for .env. The subscription key is read from "
            "MTN_MOMO_SUBSCRIPTION_KEY (environment or .env) unless given."
        ),
    )
    command.add_argument(
        "--callback-host",
        required=True,
        help="host name MTN may call back to (no scheme, port or path), e.g. pay.example.com",
    )
    command.add_argument(
        "--api-url",
        default=None,
        help="provisioning base URL (default: MTN_MOMO_API_URL, i.e. the MTN sandbox)",
    )
    command.add_argument(
        "--subscription-key",
        default=None,
        help="Collection subscription key (default: MTN_MOMO_SUBSCRIPTION_KEY; prefer the "
        "variable, a flag stays in shell history)",
    )
    command.set_defaults(func=_run)
