"""A local MTN MoMo (Collection, and Disbursement for refunds) and Airtel Money look-alike.

It speaks both providers' paths, headers, status codes and bodies, resolves payments by the
payer's number (see ``app.simulator.scenarios``) and refunds by MTN's and Airtel's rules (see
``app.simulator.refunds``), sends their callbacks, and injects latency, errors, timeouts and 429s
on demand — so the gateway runs end to end with no credentials and no
internet, and tests can break it on purpose.

    from app.simulator import SimulatorConfig, running_simulator

    async with running_simulator(SimulatorConfig(approval_delay_seconds=0)) as base_url:
        ...  # point MTN_MOMO_API_URL and AIRTEL_MONEY_API_URL at base_url

Control and evidence live under ``/_simulator`` (``app.simulator.control``).
"""

from app.simulator.app import create_simulator_app
from app.simulator.config import (
    DEFAULT_AIRTEL_CLIENT_ID,
    DEFAULT_AIRTEL_CLIENT_SECRET,
    DEFAULT_MTN_API_KEY,
    DEFAULT_MTN_API_USER,
    DEFAULT_MTN_DISBURSEMENT_API_KEY,
    DEFAULT_MTN_DISBURSEMENT_API_USER,
    DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY,
    DEFAULT_MTN_SUBSCRIPTION_KEY,
    DEFAULT_MTN_TARGET_ENVIRONMENT,
    Endpoint,
    Faults,
    SimulatorConfig,
)
from app.simulator.server import run_simulator, running_simulator, serve_in_background

__all__ = [
    "DEFAULT_AIRTEL_CLIENT_ID",
    "DEFAULT_AIRTEL_CLIENT_SECRET",
    "DEFAULT_MTN_API_KEY",
    "DEFAULT_MTN_API_USER",
    "DEFAULT_MTN_DISBURSEMENT_API_KEY",
    "DEFAULT_MTN_DISBURSEMENT_API_USER",
    "DEFAULT_MTN_DISBURSEMENT_SUBSCRIPTION_KEY",
    "DEFAULT_MTN_SUBSCRIPTION_KEY",
    "DEFAULT_MTN_TARGET_ENVIRONMENT",
    "Endpoint",
    "Faults",
    "SimulatorConfig",
    "create_simulator_app",
    "run_simulator",
    "running_simulator",
    "serve_in_background",
]
