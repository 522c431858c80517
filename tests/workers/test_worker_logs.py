"""The worker's log stays readable: an outbox sweep that found nothing is a DEBUG line, not two
INFO lines every few seconds."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import make_settings, running_app
from tests.workers.test_arq_worker import fakes, run_burst_worker

pytestmark = pytest.mark.usefixtures("redis_url")


def job_lines(caplog: pytest.LogCaptureFixture, job: str) -> list[logging.LogRecord]:
    """arq's lines for one run of ``job``: its start (→) and its result (←)."""
    return [
        r
        for r in caplog.records
        if r.name == "arq.worker"
        and job in r.getMessage()
        and ("→" in r.getMessage() or "←" in r.getMessage())
    ]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_an_empty_outbox_sweep_logs_at_debug_only(clean_pg, redis_url, caplog, level):
    settings = make_settings(clean_pg, redis_url=redis_url)
    providers = fakes()
    async with running_app(settings, providers=providers):
        caplog.set_level(level)
        await run_burst_worker(settings, providers)

    # The reconciler's start-up run is logged as before, so the worker's lines were captured.
    assert [r.levelno for r in job_lines(caplog, "cron:reconcile_pending")] == [logging.INFO] * 2
    sweeps = job_lines(caplog, "cron:sweep_outbox")
    if level == logging.INFO:
        assert sweeps == []
    else:
        assert len(sweeps) == 2
        assert {r.levelno for r in sweeps} == {logging.DEBUG}
