"""What-if runs: the gateway with one proposed change applied in memory, measured the same way.

No file under app/ changes. ``python -m bench.whatif serve --variant NAME`` imports the app,
applies the variant's patch before the routes are built, and serves exactly as
``momo-gateway serve`` does; the driver compares each variant with the unpatched baseline at
0 ms provider latency. The numbers estimate what a proposal in BENCHMARKS.md would buy.

Variants:
- ``baseline``: the code as it is.
- ``async_deps``: ``get_runtime`` and ``get_payment_service`` as ``async def``, so FastAPI stops
  running them in its thread pool on every request.
- ``warn_logs``: ``LOG_LEVEL=WARNING`` (the per-payment INFO lines and their redaction).
- ``both``: the two together.
- ``baseline`` runs again last, to show the run-to-run spread.

    .venv/bin/python -m bench.whatif                 # ~3 minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from bench import harness, loadgen
from bench.initiation import payment_lines

VARIANTS = ("baseline", "async_deps", "warn_logs", "both")
RUN_ORDER = (*VARIANTS, "baseline")
LEVELS = (16, 64)
REQUESTS = 1000


def _patch(variant: str) -> None:
    if variant in ("async_deps", "both"):
        import app.deps

        # The Depends markers are shared by every route; swapped before the routers import them.
        for alias, function in (
            (app.deps.RuntimeDep, _async_get_runtime),
            (app.deps.PaymentServiceDep, _async_get_payment_service),
        ):
            object.__setattr__(alias.__metadata__[0], "dependency", function)


async def _async_get_runtime(request: Request) -> Any:
    return request.app.state.runtime


async def _async_get_payment_service(
    runtime: Annotated[Any, Depends(_async_get_runtime)],
) -> Any:
    return runtime.payments


def serve(variant: str, host: str, port: int) -> None:
    _patch(variant)
    import uvicorn

    from app.config import Settings
    from app.log_config import configure_logging
    from app.main import create_app

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        proxy_headers=False,
        forwarded_allow_ips="",
        access_log=False,
        log_config=None,
    )


@dataclass
class WhatIf:
    variant: str
    concurrency: int
    throughput: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_payment: float
    postgres_cpu_ms_per_payment: float
    ok: int
    requests: int


def run(*, requests: int = REQUESTS, log: Any = print) -> list[dict[str, Any]]:
    work_dir = harness.run_dir("whatif")
    db_url = harness.recreate_database()
    harness.flush_redis()
    merchant = harness.create_merchant(db_url, "http://127.0.0.1:9/events")
    auth = f"Bearer {merchant['api_key']}"
    results: list[WhatIf] = []
    simulator = harness.start_simulator(work_dir, {"callbacks_enabled": False})
    control = harness.SimulatorControl(simulator.url or "")
    try:
        for run_index, variant in enumerate(RUN_ORDER):
            port = harness.free_port()
            env = harness.gateway_env(
                db_url=db_url,
                simulator_url=simulator.url or "",
                api_port=port,
                extra={"LOG_LEVEL": "WARNING"} if variant in ("warn_logs", "both") else None,
            )
            gateway = harness.start(
                f"gateway-{run_index}-{variant}",
                [
                    sys.executable,
                    "-m",
                    "bench.whatif",
                    "serve",
                    "--variant",
                    variant,
                    "--port",
                    str(port),
                ],
                env,
                log_dir=work_dir,
                ready_url=f"http://{harness.HOST}:{port}/readyz",
                url=f"http://{harness.HOST}:{port}",
            )
            try:
                warm = work_dir / f"{variant}-warm.tsv"
                loadgen.write_requests(warm, payment_lines(f"w{run_index}-{variant}", 120))
                loadgen.run(
                    url=gateway.url or "", requests_file=warm, count=100, concurrency=8, auth=auth
                )
                for concurrency in LEVELS:
                    control.reset()
                    lines_file = work_dir / f"{variant}-c{concurrency}.tsv"
                    loadgen.write_requests(
                        lines_file,
                        payment_lines(
                            f"{run_index}-{variant}-{concurrency}", requests + concurrency + 8
                        ),
                    )
                    count_sql = (
                        "SELECT count(*) FROM payments WHERE initiation_finished_at IS NOT NULL"
                    )
                    before = int(harness.psql_value(db_url, count_sql))
                    cpu0, pg0 = gateway.cpu_seconds(), harness.postgres_cpu_seconds()
                    result = loadgen.run(
                        url=gateway.url or "",
                        requests_file=lines_file,
                        count=requests,
                        concurrency=concurrency,
                        auth=auth,
                    )
                    time.sleep(1.0)
                    payments = int(harness.psql_value(db_url, count_sql)) - before
                    item = WhatIf(
                        variant=variant if run_index < len(VARIANTS) else "baseline (again)",
                        concurrency=concurrency,
                        throughput=round(result.throughput, 1),
                        p50_ms=round(result.p50_ms, 1),
                        p99_ms=round(result.p99_ms, 1),
                        cpu_ms_per_payment=round(
                            (gateway.cpu_seconds() - cpu0) / payments * 1000, 2
                        ),
                        postgres_cpu_ms_per_payment=round(
                            (harness.postgres_cpu_seconds() - pg0) / payments * 1000, 2
                        ),
                        ok=result.ok,
                        requests=result.requests,
                    )
                    results.append(item)
                    log(
                        f"{variant:>12} c={concurrency:<3} {item.throughput:7.1f}/s "
                        f"p99 {item.p99_ms:7.1f} ms cpu {item.cpu_ms_per_payment} ms/pay"
                    )
            finally:
                gateway.stop()
    finally:
        control.close()
        simulator.stop()
    output = [asdict(r) for r in results]
    (work_dir / "whatif.json").write_text(json.dumps(output, indent=2))
    return output


def table(results: list[dict[str, Any]]) -> str:
    base = {r["concurrency"]: r for r in results if r["variant"] == "baseline"}
    lines = [
        "| variant | c | initiations/s | vs baseline | p50 / p99 ms | gateway CPU ms/pay "
        "| PG CPU ms/pay | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b = base.get(r["concurrency"])
        ratio = f"{r['throughput'] / b['throughput']:.2f}x" if b else "-"
        lines.append(
            f"| {r['variant']} | {r['concurrency']} | {r['throughput']} | {ratio} | "
            f"{r['p50_ms']} / {r['p99_ms']} | {r['cpu_ms_per_payment']} | "
            f"{r['postgres_cpu_ms_per_payment']} | {r['ok']}/{r['requests']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="serve the gateway with one variant applied")
    serve_parser.add_argument("--variant", choices=VARIANTS, required=True)
    serve_parser.add_argument("--host", default=harness.HOST)
    serve_parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.variant, args.host, args.port)
        return
    harness.exit_on_sigterm()
    print(table(run(requests=args.requests)))


if __name__ == "__main__":
    main()
