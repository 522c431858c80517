"""``momo-gateway dev``: the whole flow on one machine, no credentials, no internet.

One process runs the gateway on SQLite with its jobs in-process, the provider simulator (which
also stands in for Africa's Talking, so the demo merchant's SMS receipts are sent and reported
delivered), and a demo storefront endpoint that prints each event it receives after checking its
signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.events.signing import verify
from app.main import create_app
from app.merchants.service import (
    NewMerchantCredentials,
    create_merchant,
    merchant_for_api_key,
    update_sms_receipts,
    validate_callback_url,
)
from app.migrate import upgrade_async
from app.operators.passwords import verify_password
from app.operators.service import (
    ADMIN,
    UnknownOperator,
    create_operator,
    get_operator,
    reset_password,
)
from app.providers.airtel_money import AirtelMoneySettings
from app.providers.mtn_momo import MtnMomoSettings
from app.server_secrets import ServerSecret
from app.simulator.app import create_simulator_app
from app.simulator.config import (
    DEFAULT_AFRICASTALKING_API_KEY,
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_DISBURSEMENT_API_KEY,
    DEFAULT_MTN_DISBURSEMENT_API_USER,
    DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
    SimulatorConfig,
)
from app.simulator.saleor import FakeSaleor, create_fake_saleor_app
from app.simulator.server import serve_in_background

logger = logging.getLogger("app.dev")

# The server_secrets row that keeps the demo merchant's API key between runs.
DEMO_API_KEY_ROW = "dev_demo_api_key"
# The console's demo admin, and the row that keeps its password between runs.
DEMO_OPERATOR_EMAIL = "admin@demo.momo-gateway.dev"
DEMO_OPERATOR_PASSWORD_ROW = "dev_demo_operator_password"  # noqa: S105 (a row name)
# The secret in the delivery-report URL the simulator posts to; public, like the simulator's keys.
DEV_AFRICASTALKING_CALLBACK_TOKEN = "momo-dev-africastalking-callback-token"  # noqa: S105
# Encrypts the fake Saleor's app token in the dev database; public, like the simulator's keys.
DEV_SALEOR_APP_TOKEN_KEY = "momo-dev-saleor-app-token-key-not-a-secret"  # noqa: S105


@dataclass(frozen=True)
class DevPorts:
    api: int = 8000
    simulator: int = 8090
    storefront: int = 8091
    saleor: int = 8092


def _api_url(ports: DevPorts, host: str) -> str:
    return f"http://{host}:{ports.api}"


def sms_delivery_report_url(ports: DevPorts, host: str = "127.0.0.1") -> str:
    """Where the simulator posts Africa's Talking delivery reports for this run's gateway."""
    return (
        f"{_api_url(ports, host)}/api/webhooks/africastalking/{DEV_AFRICASTALKING_CALLBACK_TOKEN}"
    )


def fake_saleor_api_url(ports: DevPorts, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{ports.saleor}/graphql/"


def dev_settings(ports: DevPorts, *, host: str = "127.0.0.1", **overrides: object) -> Settings:
    """Settings pointing both providers and Africa's Talking at the local simulator; the
    environment (and .env) still wins for anything not set here, e.g. DATABASE_URL or
    RECONCILE_INTERVAL_SECONDS."""
    simulator = f"http://{host}:{ports.simulator}"
    api = _api_url(ports, host)
    values: dict[str, object] = {
        "redis_url": None,
        "mtn_momo_api_url": simulator,
        "mtn_momo_api_user": DEFAULT_MTN_API_USER,
        "mtn_momo_api_key": DEFAULT_MTN_API_KEY,
        "mtn_momo_subscription_key": DEFAULT_MTN_SUBSCRIPTION_KEY,
        # Refunds go through the simulator's Disbursement product, with its own credentials.
        "mtn_momo_disbursement_api_user": DEFAULT_MTN_DISBURSEMENT_API_USER,
        "mtn_momo_disbursement_api_key": DEFAULT_MTN_DISBURSEMENT_API_KEY,
        "mtn_momo_disbursement_subscription_key": DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
        "mtn_momo_target_env": "sandbox",
        "mtn_momo_currency": "UGX",
        "mtn_momo_callback_url": f"{api}/api/webhooks/mtn-momo/",
        "airtel_money_api_url": simulator,
        "airtel_money_path_prefix": "",
        "airtel_money_client_id": DEFAULT_AIRTEL_CLIENT_ID,
        "airtel_money_client_secret": DEFAULT_AIRTEL_CLIENT_SECRET,
        "airtel_money_callback_url": f"{api}/api/webhooks/airtel-money/",
        "africastalking_api_url": simulator,
        "africastalking_username": "sandbox",
        "africastalking_api_key": DEFAULT_AFRICASTALKING_API_KEY,
        "africastalking_callback_token": DEV_AFRICASTALKING_CALLBACK_TOKEN,
        # The fake Saleor (app.simulator.saleor) may install the gateway as its payment app.
        "saleor_allowed_api_urls": [fake_saleor_api_url(ports, host)],
        "saleor_app_token_key": DEV_SALEOR_APP_TOKEN_KEY,
        "saleor_app_url": api,
        "log_format": "console",
        **overrides,
    }
    return Settings(**values)


async def demo_merchant(
    sessions: async_sessionmaker[AsyncSession], *, callback_url: str
) -> NewMerchantCredentials:
    """The one demo merchant of this database, created on the first run and kept after, so
    its API key and its earlier payments survive a restart.

    API keys are otherwise only stored hashed; the demo key is kept in clear beside the
    server's own secrets, since showing it again at every start is the point. Its events go to
    this run's callback URL.
    """
    url = validate_callback_url(callback_url)
    async with sessions.begin() as session:
        stored = await session.get(ServerSecret, DEMO_API_KEY_ROW)
        existing = await merchant_for_api_key(session, stored.value) if stored else None
        if stored is not None and existing is not None:
            existing.callback_url = url
            return NewMerchantCredentials(
                id=existing.id,
                name=existing.name,
                api_key=stored.value,
                webhook_secret=existing.webhook_secret,
                callback_url=url,
            )
    created = await create_merchant(sessions, name="Demo storefront", callback_url=url)
    async with sessions.begin() as session:
        await session.merge(ServerSecret(name=DEMO_API_KEY_ROW, value=created.api_key))
    return created


async def demo_operator(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, str]:
    """The console's demo admin (email, password), kept between runs like the demo key. If the
    stored password no longer opens it (someone reset it), it gets a new one."""
    async with sessions() as session:
        stored = await session.get(ServerSecret, DEMO_OPERATOR_PASSWORD_ROW)
    password = stored.value if stored is not None else None
    try:
        operator = await get_operator(sessions, DEMO_OPERATOR_EMAIL)
    except UnknownOperator:
        _, password = await create_operator(
            sessions, DEMO_OPERATOR_EMAIL, role=ADMIN, password=password, actor="dev"
        )
    else:
        if password is None or not verify_password(operator.password_hash, password):
            password = await reset_password(sessions, DEMO_OPERATOR_EMAIL, actor="dev")
    async with sessions.begin() as session:
        await session.merge(ServerSecret(name=DEMO_OPERATOR_PASSWORD_ROW, value=password))
    return DEMO_OPERATOR_EMAIL, password


def demo_storefront(secret_holder: dict[str, str]) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        valid = verify(secret_holder.get("secret", ""), body, dict(request.headers))
        event = json.loads(body)
        logger.info(
            "storefront received %s for %s (%s), signature %s",
            event.get("type"),
            event.get("data", {}).get("id"),
            event.get("data", {}).get("status"),
            "verified" if valid else "INVALID",
        )
        return JSONResponse({"received": True}, status_code=200 if valid else 400)

    return Starlette(routes=[Route("/events", receive, methods=["POST"])])


async def run_dev(
    ports: DevPorts = DevPorts(),
    *,
    host: str = "127.0.0.1",
    callback_url: str | None = None,
    simulator_config: SimulatorConfig | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Future[dict[str, str]] | None = None,
) -> None:
    storefront_url = f"http://{host}:{ports.storefront}/events"
    settings = dev_settings(ports, host=host)
    engine = create_engine(settings.database_url)
    await upgrade_async(engine)
    sessions = create_sessionmaker(engine)
    merchant = await demo_merchant(sessions, callback_url=callback_url or storefront_url)
    # On at every start: showing the receipts is part of the demo.
    await update_sms_receipts(sessions, merchant.id, enabled=True)
    operator = await demo_operator(sessions)
    await engine.dispose()

    config = simulator_config or SimulatorConfig(
        airtel_callback_url=settings.provider_settings(AirtelMoneySettings).callback_url,
        sms_delivery_report_url=sms_delivery_report_url(ports, host),
    )
    secret_holder = {"secret": merchant.webhook_secret}
    saleor = FakeSaleor(api_url=fake_saleor_api_url(ports, host))
    stop = stop or asyncio.Event()
    async with (
        serve_in_background(create_simulator_app(config), host=host, port=ports.simulator),
        serve_in_background(demo_storefront(secret_holder), host=host, port=ports.storefront),
        serve_in_background(create_fake_saleor_app(saleor), host=host, port=ports.saleor),
        serve_in_background(create_app(settings), host=host, port=ports.api) as api_url,
    ):
        await _install_into_fake_saleor(saleor, api_url)
        print(
            _banner(
                api_url,
                settings,
                merchant.api_key,
                merchant.webhook_secret,
                callback_url or storefront_url,
                operator,
                saleor,
            )
        )
        if ready is not None and not ready.done():
            ready.set_result(
                {
                    "api_url": api_url,
                    "api_key": merchant.api_key,
                    "merchant_id": merchant.id,
                    "console_email": operator[0],
                    "console_password": operator[1],
                    "saleor_url": saleor.api_url,
                }
            )
        await stop.wait()


async def _install_into_fake_saleor(saleor: FakeSaleor, api_url: str) -> None:
    """Install the gateway into this run's fake Saleor, as "Install app" in Saleor's dashboard
    would. A new fake (new token) every run: a restart reinstalls into the same merchant."""
    async with httpx.AsyncClient(timeout=20) as http:
        answer = await saleor.install(http, f"{api_url}/saleor/api/manifest")
    if answer.status_code != 200:
        logger.warning("fake Saleor could not install the app: %s", answer.text)


def _banner(
    api_url: str,
    settings: Settings,
    api_key: str,
    secret: str,
    events_to: str,
    operator: tuple[str, str],
    saleor: FakeSaleor,
) -> str:
    simulator_url = settings.provider_settings(MtnMomoSettings).api_url
    saleor_root = saleor.api_url.removesuffix("/graphql/")
    return f"""
momo-gateway dev is running
  API            {api_url}   (docs: {api_url}/docs)
  console        {api_url}/console/   log in as {operator[0]} / {operator[1]}
  database       {settings.database_url}
  simulator      {simulator_url}   (MTN MoMo + Airtel Money + Africa's Talking look-alike)
  events go to   {events_to}
  SMS receipts   on for the demo merchant: see the log ("SMS receipt sent to ...")
                 and GET {api_url}/v1/payments/{{id}}/sms
  API key        {api_key}
  webhook secret {secret}

Try it:
  export API_KEY={api_key}
  curl -s {api_url}/v1/payments -H "Authorization: Bearer $API_KEY" \\
    -H "Content-Type: application/json" -H "Idempotency-Key: demo-$RANDOM" \\
    -d '{{"order_id": "ORD-'$RANDOM'", "amount": "50000", "phone_number": "0772 123 456"}}'

Then refund half of it (pay_... is the "id" printed above):
  curl -s {api_url}/v1/refunds -H "Authorization: Bearer $API_KEY" \\
    -H "Content-Type: application/json" -d '{{"payment_id": "pay_...", "amount": "25000"}}'

As a Saleor shop (a fake Saleor at {saleor_root} has the gateway installed as its payment app):
  curl -s {saleor_root}/demo/checkout -H "Content-Type: application/json" \\
    -d '{{"amount": 50000, "phone_number": "0772 123 456"}}'
  curl -s {saleor_root}/demo/reports     # what Saleor was told: CHARGE_SUCCESS once approved
"""


def main(ports: DevPorts, *, host: str, callback_url: str | None) -> int:
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_dev(ports, host=host, callback_url=callback_url, stop=stop)

    asyncio.run(run())
    return 0
