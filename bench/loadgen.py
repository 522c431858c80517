"""The load generator: a fixed list of requests at a fixed concurrency, in a process of its own.

Requests are written to a file first, one per line (tab-separated method, path, Idempotency-Key
or ``-``, JSON body), so every request is unique (its own order id and key) and both backends send
the very same bytes:

- ``wrk`` (Debian's ``wrk``, C, one thread, ``bench/wrk_requests.lua``): cheap enough that the
  2-core machine spends its CPU on the server, not on the client. Used for throughput.
- ``httpx`` (asyncio, this file): exact control of when each request starts; used for bursts,
  where all requests must be in flight at once, and wherever wrk is not installed.

Both report the same JSON: requests, seconds, throughput, p50/p90/p99/max latency in ms, status
counts. Closed loop: each connection sends its next request when the previous answer arrives.

    .venv/bin/python -m bench.loadgen --url http://127.0.0.1:8000 --requests FILE \\
        --count 2000 --concurrency 64 --backend wrk --auth "Bearer mgw_..."
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("wrk_requests.lua")
# A hard bound on any one run, whatever its size.
MAX_SECONDS = 300


@dataclass(frozen=True)
class Line:
    method: str
    path: str
    body: str
    idempotency_key: str | None = None

    def encode(self) -> str:
        for part in (self.method, self.path, self.body, self.idempotency_key or ""):
            if "\t" in part or "\n" in part:
                raise ValueError("request lines must not contain tabs or newlines")
        return f"{self.method}\t{self.path}\t{self.idempotency_key or '-'}\t{self.body}"


@dataclass
class Result:
    backend: str
    concurrency: int
    requests: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_seconds: float | None = None

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))


def write_requests(path: Path, lines: Iterable[Line]) -> int:
    n = 0
    with path.open("w") as f:
        for line in lines:
            f.write(line.encode() + "\n")
            n += 1
    return n


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run(
    *,
    url: str,
    requests_file: Path,
    count: int,
    concurrency: int,
    backend: str = "auto",
    auth: str | None = None,
) -> Result:
    """Run the load generator in its own process and return what it measured."""
    if backend == "auto":
        backend = "wrk" if wrk_available() else "httpx"
    if backend == "wrk":
        return _run_wrk(url, requests_file, count, concurrency, auth)
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--requests",
        str(requests_file),
        "--count",
        str(count),
        "--concurrency",
        str(concurrency),
        "--backend",
        "httpx",
    ]
    if auth:
        command += ["--auth", auth]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_SECONDS + 60, check=True
    )
    return Result(**json.loads(out.stdout.strip().splitlines()[-1]))


def _run_wrk(
    url: str, requests_file: Path, count: int, concurrency: int, auth: str | None
) -> Result:
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(requests_file),
        "BENCH_COUNT": str(count),
        "BENCH_AUTH": auth or "",
    }
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{MAX_SECONDS}s",
        "--timeout",
        "60s",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    started = os.times()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    timer = threading.Timer(MAX_SECONDS + 30, process.kill)
    timer.start()
    try:
        head: list[str] = []
        for text_line in process.stdout:
            head.append(text_line)
            if text_line.startswith("BENCHDONE"):
                # wrk only stops early on SIGINT, and then reports as usual.
                process.send_signal(signal.SIGINT)
                break
        rest, errors = process.communicate(timeout=60)
    finally:
        timer.cancel()
    ended = os.times()
    output = "".join(head) + rest
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}\n{errors}")
    raw: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    seconds = raw["duration_us"] / 1e6
    return Result(
        backend="wrk",
        concurrency=concurrency,
        requests=raw["requests"],
        seconds=seconds,
        throughput=raw["requests"] / seconds if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        statuses=raw["statuses"],
        errors={k: v for k, v in raw["errors"].items() if v},
        client_cpu_seconds=(ended.children_user + ended.children_system)
        - (started.children_user + started.children_system),
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest rank of ``q`` (0-100) in values already sorted; 0.0 for none."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _run_httpx(
    url: str, lines: list[Line], count: int, concurrency: int, auth: str | None
) -> Result:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    todo = iter(lines[:count])
    cpu_before = time.process_time()
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=60.0, headers=headers, trust_env=False
    ) as client:

        async def one(line: Line) -> None:
            extra = {"Idempotency-Key": line.idempotency_key} if line.idempotency_key else {}
            started = time.perf_counter()
            try:
                response = await client.request(
                    line.method, line.path, content=line.body.encode(), headers=extra
                )
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return
            latencies.append(time.perf_counter() - started)
            statuses[str(response.status_code)] += 1

        async def connection() -> None:
            for line in todo:
                await one(line)

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(connection() for _ in range(concurrency))), timeout=MAX_SECONDS
        )
        seconds = time.perf_counter() - started
    latencies.sort()
    done = len(latencies)
    return Result(
        backend="httpx",
        concurrency=concurrency,
        requests=done,
        seconds=seconds,
        throughput=done / seconds if seconds else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p90_ms=percentile(latencies, 90) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
        mean_ms=(sum(latencies) / done if done else 0.0) * 1000,
        statuses=dict(statuses),
        errors=dict(errors),
        client_cpu_seconds=time.process_time() - cpu_before,
    )


def read_lines(path: Path) -> list[Line]:
    lines = []
    for raw in path.read_text().splitlines():
        method, route, key, body = raw.split("\t", 3)
        lines.append(Line(method, route, body, None if key == "-" else key))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=Path, required=True, help="request file (see above)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--backend", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--auth", help="Authorization header value")
    args = parser.parse_args()
    if args.backend == "httpx":
        import uvloop

        result = uvloop.run(
            _run_httpx(args.url, read_lines(args.requests), args.count, args.concurrency, args.auth)
        )
    else:
        result = run(
            url=args.url,
            requests_file=args.requests,
            count=args.count,
            concurrency=args.concurrency,
            backend=args.backend,
            auth=args.auth,
        )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
