"""CPU per payment inside one process: sequential ``POST /v1/payments`` through the ASGI app
(in-memory providers, a fresh PostgreSQL database), process CPU time divided by payments.

No server, no load generator, no provider simulator: what is left is the gateway's own code and
the database client, one request at a time, so two checkouts compare with less noise than the
throughput benchmarks on a busy 2-core machine. The client side (httpx over ASGI) is counted
too; it is the same in both checkouts.

    .venv/bin/python -m bench.inprocess [PAYMENTS]      # from a checkout's root
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from app.db import create_engine
from app.main import create_app
from app.merchants.service import create_merchant
from app.migrate import upgrade_async
from app.providers import registry
from tests.conftest import make_settings
from tests.fakes import FakeProvider

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1500


async def main():
    name = "cpu_probe_" + uuid.uuid4().hex[:8]
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1/test")
    await admin.execute(f"CREATE DATABASE {name}")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        engine = create_engine(url)
        await upgrade_async(engine)
        await engine.dispose()
        settings = make_settings(url)
        app = create_app(
            settings,
            providers={p: FakeProvider(p) for p in registry.names()},
            background_jobs=False,
        )
        async with LifespanManager(app):
            m = await create_merchant(
                app.state.runtime.sessions, name="S", callback_url="https://s.example/e"
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://t",
                headers={"Authorization": f"Bearer {m.api_key}"},
            ) as http:

                async def pay(i):
                    r = await http.post(
                        "/v1/payments",
                        json={"order_id": f"O-{i}", "amount": "1000", "phone_number": "0772123456"},
                        headers={"Idempotency-Key": f"k-{i}"},
                    )
                    assert r.status_code == 201, r.text

                for i in range(200):
                    await pay(-i - 1)  # warm-up
                t0, c0 = time.perf_counter(), time.process_time()
                for i in range(N):
                    await pay(i)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        per_payment_cpu, per_payment_wall = cpu / N * 1000, wall / N * 1000
        print(f"{N} payments: {per_payment_cpu:.3f} ms CPU/payment, {per_payment_wall:.3f} ms wall")
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


asyncio.run(main())
