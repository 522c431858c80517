"""Running the simulator: in the foreground for the CLI, or in the background of a test.

``running_simulator`` binds a free local port itself, so parallel test runs never fight over one,
and hands back the base URL once uvicorn is accepting connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from app.ports import bind_listening_socket, ensure_bindable
from app.simulator.app import create_simulator_app
from app.simulator.config import SimulatorConfig
from app.simulator.state import Simulator

STARTUP_TIMEOUT_SECONDS = 10.0
# Hung requests are released before shutdown; this only bounds a handler that ignores that.
GRACEFUL_SHUTDOWN_SECONDS = 2


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 8090,
    config: SimulatorConfig | None = None,
    *,
    log_level: str = "info",
) -> None:
    """Serve the simulator until interrupted (``momo-gateway simulator``).

    A port that cannot be bound raises PortUnavailable before the app starts.
    """
    ensure_bindable(host, port)
    uvicorn.run(
        create_simulator_app(config),
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Ctrl-C belongs to the process hosting us (pytest, a benchmark), not to this server.
        yield


@contextlib.asynccontextmanager
async def serve_in_background(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn on this event loop; yields its base URL.

    ``port=0`` takes a free port. The app's lifespan runs; leaving the block stops the server and
    waits for it. A port that cannot be bound raises PortUnavailable.
    """
    sock = bind_listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn :{bound_port}")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if task.done():
                task.result()  # surfaces the startup error, if there was one
                raise RuntimeError("uvicorn stopped before it started serving")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start in time")
            await asyncio.sleep(0.005)
        url_host = f"[{host}]" if ":" in host else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """``async with running_simulator(config) as base_url:`` — a simulator on a free port."""
    app = create_simulator_app(config)
    simulator: Simulator = app.state.simulator
    async with serve_in_background(app, host=host, port=port) as base_url:
        try:
            yield base_url
        finally:
            # Requests held by an injected hang would otherwise hold up the shutdown.
            simulator.release_hung_requests()
