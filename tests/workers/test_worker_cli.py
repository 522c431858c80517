"""``momo-gateway worker --check`` and the worker's own metrics port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
from arq.worker import Worker

from app.workers.settings import worker_settings
from tests.conftest import make_settings
from tests.e2e.stack import eventually, free_port


def check(redis_url: str) -> int:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "worker", "--check"],
        env=env,
        capture_output=True,
        timeout=60,
    ).returncode


async def test_check_reports_a_live_worker_and_its_metrics_port(clean_pg, redis_url):
    assert await asyncio.to_thread(check, redis_url) == 1  # nobody there yet

    port = free_port()
    settings = make_settings(clean_pg, redis_url=redis_url, worker_metrics_port=port)
    options = worker_settings(settings)
    # No payments here, so no provider is needed.
    options["ctx"] = {"settings": settings, "providers": {}}
    worker = Worker(**options, handle_signals=False, poll_delay=0.05)
    running = asyncio.create_task(worker.async_run())
    try:

        async def healthy() -> bool:
            return await asyncio.to_thread(check, redis_url) == 0

        await eventually(healthy, timeout=30, what="the worker's health check")
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "momo_reconcile_runs_total" in scraped
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()


def test_worker_without_redis_explains_itself(monkeypatch, capsys):
    from app.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["worker"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err
