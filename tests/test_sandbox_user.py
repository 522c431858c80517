"""``momo-gateway mtn-sandbox-user`` against the simulator's provisioning API, over real HTTP.

The proof that matters is the last step an operator takes: the printed lines, pasted into the
settings, get an MTN token and a request-to-pay accepted with the printed callback URL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import uuid

import httpx
import pytest

from app.config import Settings
from app.providers.mtn_momo import MtnMomoSettings
from app.providers.mtn_momo.sandbox_user import (
    SandboxProvisioningError,
    SandboxUser,
    add_sandbox_user_command,
    check_callback_host,
    create_mtn_sandbox_user,
    env_lines,
)
from app.simulator.config import DEFAULT_MTN_SUBSCRIPTION_KEY, SimulatorConfig
from app.simulator.server import running_simulator

# No callbacks: the registered host is not a server anyone runs in this test.
QUIET = SimulatorConfig(callbacks_enabled=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="momo-gateway")
    add_sandbox_user_command(parser.add_subparsers(dest="command", required=True))
    return parser


def parse_env_lines(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


async def token_for(
    http: httpx.AsyncClient, base_url: str, settings: MtnMomoSettings
) -> httpx.Response:
    assert settings.api_user is not None
    assert settings.api_key is not None
    assert settings.subscription_key is not None
    return await http.post(
        f"{base_url}/collection/token/",
        headers={
            "Ocp-Apim-Subscription-Key": settings.subscription_key.get_secret_value(),
            "Authorization": basic(settings.api_user, settings.api_key.get_secret_value()),
        },
    )


async def test_command_prints_settings_that_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MTN_MOMO_API_URL", raising=False)
    async with running_simulator(QUIET) as base_url:
        args = build_parser().parse_args(
            [
                "mtn-sandbox-user",
                "--callback-host",
                "shop.example.ug",
                "--api-url",
                base_url,
                "--subscription-key",
                DEFAULT_MTN_SUBSCRIPTION_KEY,
            ]
        )
        # The command runs its own event loop (asyncio.run), so it runs beside this one.
        exit_code = await asyncio.to_thread(args.func, args)
        printed = capsys.readouterr()
        lines = parse_env_lines(printed.out)
        settings = Settings(
            _env_file=None,
            **{name.lower(): value for name, value in lines.items()},
            mtn_momo_subscription_key=DEFAULT_MTN_SUBSCRIPTION_KEY,
        ).provider_settings(MtnMomoSettings)

        async with httpx.AsyncClient() as http:
            token = await token_for(http, base_url, settings)
            accepted = await http.post(
                f"{base_url}/collection/v1_0/requesttopay",
                headers={
                    "Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY,
                    "Authorization": f"Bearer {token.json()['access_token']}",
                    "X-Target-Environment": settings.target_env,
                    "X-Reference-Id": str(uuid.uuid4()),
                    "X-Callback-Url": f"{settings.callback_url}ref/token",
                },
                json={
                    "amount": "100",
                    "currency": settings.currency,
                    "externalId": "ORD-1001",
                    "payer": {"partyIdType": "MSISDN", "partyId": "46733123453"},
                    "payerMessage": "Order ORD-1001",
                    "payeeNote": "Order ORD-1001",
                },
            )

    assert exit_code == 0
    assert set(lines) == {
        "MTN_MOMO_API_URL",
        "MTN_MOMO_API_USER",
        "MTN_MOMO_API_KEY",
        "MTN_MOMO_TARGET_ENV",
        "MTN_MOMO_CURRENCY",
        "MTN_MOMO_CALLBACK_URL",
    }
    assert settings.api_url == base_url
    assert settings.target_env == "sandbox"
    assert settings.currency == "EUR"
    # MTN's sandbox calls back over plain http.
    assert settings.callback_url == "http://shop.example.ug/api/webhooks/mtn-momo/"
    assert settings.configured
    assert token.status_code == 200, token.text
    assert accepted.status_code == 202, accepted.text
    assert DEFAULT_MTN_SUBSCRIPTION_KEY not in printed.out + printed.err
    assert "cannot show it again" in printed.err


async def test_create_user_registers_the_callback_host() -> None:
    async with running_simulator(QUIET) as base_url:
        user = await create_mtn_sandbox_user(
            base_url=base_url + "/",
            subscription_key=DEFAULT_MTN_SUBSCRIPTION_KEY,
            callback_host="Pay.Example.COM",
        )
        async with httpx.AsyncClient() as http:
            read_back = await http.get(
                f"{base_url}/v1_0/apiuser/{user.api_user}",
                headers={"Ocp-Apim-Subscription-Key": DEFAULT_MTN_SUBSCRIPTION_KEY},
            )

    assert uuid.UUID(user.api_user).version == 4
    assert user.api_key
    assert user.api_key not in repr(user)
    assert user.callback_host == "pay.example.com"
    assert user.target_environment == "sandbox"
    assert read_back.json() == {
        "providerCallbackHost": "pay.example.com",
        "targetEnvironment": "sandbox",
    }


async def test_a_refused_subscription_key_is_a_clear_error_without_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong_key = "0123456789abcdef0123456789abcdef"
    async with running_simulator(QUIET) as base_url:
        with pytest.raises(SandboxProvisioningError) as refused:
            await create_mtn_sandbox_user(
                base_url=base_url, subscription_key=wrong_key, callback_host="shop.example.ug"
            )
        args = build_parser().parse_args(
            [
                "mtn-sandbox-user",
                "--callback-host",
                "shop.example.ug",
                "--api-url",
                base_url,
                "--subscription-key",
                wrong_key,
            ]
        )
        exit_code = await asyncio.to_thread(args.func, args)

    printed = capsys.readouterr()
    assert refused.value.status_code == 401
    assert "subscription key was refused" in str(refused.value)
    assert "invalid subscription key" in str(refused.value)  # the provider's own words
    assert wrong_key not in str(refused.value)
    assert exit_code == 2
    assert printed.out == ""
    assert "subscription key was refused" in printed.err
    assert wrong_key not in printed.err


async def test_an_unreachable_api_is_a_clear_error() -> None:
    async with running_simulator(QUIET) as base_url:
        pass  # stopped: the port is closed now

    with pytest.raises(SandboxProvisioningError, match="could not reach"):
        await create_mtn_sandbox_user(
            base_url=base_url,
            subscription_key=DEFAULT_MTN_SUBSCRIPTION_KEY,
            callback_host="shop.example.ug",
        )


async def test_a_duplicate_user_is_reported_as_409() -> None:
    # MTN answers 409 for a reused X-Reference-Id; uuid4 makes that a provider-side fault, but
    # the message must still say what happened.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            409,
            json={
                "code": "RESOURCE_ALREADY_EXIST",
                "message": "Duplicated reference id. Creation of resource failed.",
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(SandboxProvisioningError) as refused:
            await create_mtn_sandbox_user(
                base_url="https://sandbox.example",
                subscription_key="key",
                callback_host="shop.example.ug",
                client=client,
            )

    assert refused.value.status_code == 409
    assert "already exists" in str(refused.value)
    assert "RESOURCE_ALREADY_EXIST" in str(refused.value)


@pytest.mark.parametrize(
    "host",
    [
        "https://shop.example.ug",
        "shop.example.ug/api/webhooks",
        "shop.example.ug:8443",
        "203.0.113.7",
        "[2001:db8::1]",
        "-shop.example.ug",
        "shop..example.ug",
        "",
    ],
)
async def test_the_callback_host_must_be_a_bare_host_name(host: str) -> None:
    def no_request(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent for a bad host")

    with pytest.raises(ValueError, match=r"host|URL|IP|port|empty"):
        check_callback_host(host)
    async with httpx.AsyncClient(transport=httpx.MockTransport(no_request)) as client:
        with pytest.raises(ValueError, match=r"host|URL|IP|port|empty"):
            await create_mtn_sandbox_user(
                base_url="https://sandbox.example",
                subscription_key="key",
                callback_host=host,
                client=client,
            )


@pytest.mark.parametrize(
    ("host", "expected"),
    [("pay.example.com", "pay.example.com"), ("Pay.Example.com.", "pay.example.com")],
)
def test_host_names_are_accepted(host: str, expected: str) -> None:
    assert check_callback_host(host) == expected


def test_command_without_a_subscription_key_says_where_to_set_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("MTN_MOMO_SUBSCRIPTION_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    args = build_parser().parse_args(["mtn-sandbox-user", "--callback-host", "shop.example.ug"])

    assert args.func(args) == 2
    assert "MTN_MOMO_SUBSCRIPTION_KEY" in capsys.readouterr().err


def test_env_lines_outside_the_sandbox_use_https_and_keep_the_currency() -> None:
    user = SandboxUser(
        api_user="5f7c2a9e-3b1d-4e8f-9a6c-0d2b4e6f8a10",
        api_key="k",
        callback_host="pay.example.com",
        target_environment="mtnuganda",
    )

    lines = parse_env_lines(env_lines(user, "https://proxy.momoapi.mtn.com/"))

    assert lines["MTN_MOMO_API_URL"] == "https://proxy.momoapi.mtn.com"
    assert lines["MTN_MOMO_TARGET_ENV"] == "mtnuganda"
    assert lines["MTN_MOMO_CALLBACK_URL"] == "https://pay.example.com/api/webhooks/mtn-momo/"
    assert "MTN_MOMO_CURRENCY" not in lines
