"""The provider simulator as its own process, with a config given on the command line.

``momo-gateway simulator`` logs every request (uvicorn's access log); here the access log is off,
so the simulator spends its CPU on answering, not on writing lines nobody reads.
"""

from __future__ import annotations

import argparse
import json

import uvicorn

from app.simulator.app import create_simulator_app
from app.simulator.config import SimulatorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", default="{}", help="SimulatorConfig fields as JSON")
    args = parser.parse_args()
    config = SimulatorConfig.model_validate(json.loads(args.config))
    uvicorn.run(
        create_simulator_app(config),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
