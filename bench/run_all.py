"""Every benchmark in one run, numbers side by side, written into BENCHMARKS.md.

    .venv/bin/python -m bench.run_all            # ~18-23 minutes on 2 cores
    .venv/bin/python -m bench.run_all --quick    # a smoke run: few requests, 1,000 reconciles

The generated block of BENCHMARKS.md (between the ``bench:begin``/``bench:end`` markers) is
replaced; everything outside it is kept. Raw JSON, logs and py-spy stacks go to
``bench/results/<timestamp>-*/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import (
    callbacks,
    cold_burst,
    harness,
    initiation,
    overload,
    peer,
    profile,
    reconcile,
    refunds,
    report,
)

BENCHMARKS_MD = harness.REPO / "BENCHMARKS.md"
PEER_PAYMENTS = 2000
PEER_THREADS = 256


def write_benchmarks(block: str, path: Path = BENCHMARKS_MD) -> None:
    existing = path.read_text() if path.exists() else ""
    generated = f"{report.BEGIN}\n{block}\n{report.END}"
    if report.BEGIN in existing and report.END in existing:
        head, _, rest = existing.partition(report.BEGIN)
        _, _, tail = rest.partition(report.END)
        text = head + generated + tail
    else:
        text = "# Benchmarks\n\n" + generated + "\n" + existing
    path.write_text(text)


def render(
    results: dict[str, Any], *, quick: bool = False, before: dict[str, Any] | None = None
) -> str:
    """The generated block of BENCHMARKS.md from one run's results."""
    quick = quick or bool(results.get("quick"))
    finished = results.get("finished_at") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    init, peer_result, burst = results["initiation"], results["peer"], results["cold_burst"]
    cb, rec, machine, minutes = (
        results["callbacks"],
        results["reconcile"],
        results["machine"],
        results["minutes"],
    )
    profile_result = init.get("profile")
    if profile_result and Path(profile_result["raw_path"]).exists():
        # Summarised again, so a re-render picks up what bench/profile.py reports today.
        summary = profile.summarise(Path(profile_result["raw_path"]))
        profile_result.update(asdict(summary))
    before_commit = init.get("before_commit")
    command = (
        ".venv/bin/python -m bench.run_all"
        + (" --quick" if quick else "")
        + (f" --before-rev {before_commit}" if before_commit else "")
    )
    refund_result = results.get("refunds")  # absent from runs before bench.refunds existed
    commands = [
        f"{command}   # = the commands below, in this order, in one go",
        ".venv/bin/python -m bench.initiation"
        + (" --quick" if quick else "")
        + (f" --before {before_commit}" if before_commit else ""),
        ".venv/bin/python -m bench.peer --latency 0.3 "
        f"--payments {peer_result['payments']} --threads {PEER_THREADS}",
        ".venv/bin/python -m bench.cold_burst --burst 500",
        f".venv/bin/python -m bench.callbacks --payments {cb['payments']} "
        f"--concurrency {cb['concurrency']}",
        f".venv/bin/python -m bench.reconcile --payments {rec['runs'][0]['payments']}",
    ]
    if refund_result:
        commands.append(".venv/bin/python -m bench.refunds" + (" --quick" if quick else ""))
    overload_result = results.get("overload")
    if overload_result:
        commands.append(
            ".venv/bin/python -m bench.overload"
            + (f" --requests {overload_result['target']}" if quick else "")
        )
    block = "\n\n".join(
        [
            f"## Results ({finished})"
            + (" — QUICK SMOKE RUN, not for comparison" if quick else ""),
            report.machine_section(machine, commands, minutes),
            report.cpu_targets_section(init, results.get("overload")),
            report.targets_section(init, peer_result, burst, cb, rec),
            *([report.side_by_side_section(init)] if before_commit else []),
            *([report.before_after_section(before, results)] if before else []),
            report.initiation_section(init),
            report.peer_section(peer_result, init),
            report.cold_burst_section(burst),
            report.callbacks_section(cb),
            report.reconcile_section(rec),
            *([report.refunds_section(refund_result)] if refund_result else []),
            *([overload.render(overload_result).rstrip()] if overload_result else []),
            report.rss_section(init, cb, rec, peer_result),
            report.profile_section(init.get("profile")),
        ]
    )
    return block


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="ALL_JSON",
        help="only rewrite BENCHMARKS.md from a previous run's all.json",
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="ALL_JSON",
        help="an earlier run's all.json, shown beside this run (before/after a change)",
    )
    parser.add_argument(
        "--before-rev",
        metavar="REV",
        help="a git revision whose gateway benchmark 1 measures too, beside this one's",
    )
    args = parser.parse_args()
    before = json.loads(args.before.read_text()) if args.before else None
    if args.render:
        write_benchmarks(
            render(json.loads(args.render.read_text()), quick=args.quick, before=before)
        )
        return
    harness.exit_on_sigterm()
    started = time.monotonic()
    out_dir = harness.run_dir("all")

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", flush=True)

    machine = harness.machine_info()
    log(f"machine: {machine}")

    log("1. initiation")
    init = initiation.run(quick=args.quick, before=args.before_rev, log=log)
    log("2. peer")
    peer_result = peer.measure(
        latency=0.3,
        payments=200 if args.quick else PEER_PAYMENTS,
        threads=PEER_THREADS,
    )
    log(
        f"peer: {peer_result['payments_per_second']}/s, "
        f"{peer_result['token_requests_per_payment']} tokens/payment"
    )
    log("3. cold burst")
    burst = cold_burst.run(burst=cold_burst.BURST, log=log)
    log("4. callbacks")
    cb = callbacks.run(payments=300 if args.quick else 1500, log=log)
    log("5. reconcile")
    rec = reconcile.run(payments=1000 if args.quick else reconcile.PAYMENTS, log=log)
    log("6. refunds")
    refund_result = refunds.run(quick=args.quick, log=log)
    log("7. overload")
    overload_result = overload.run(
        target=overload.QUICK_REQUESTS if args.quick else overload.REQUESTS, log=log
    )
    minutes = (time.monotonic() - started) / 60
    end_state = harness.git_state()
    if end_state != machine.get("git"):
        # Other work landed during the run: say so rather than pretend one commit was measured.
        machine["git"] = f"{machine.get('git')} at start, {end_state} at the end"

    results: dict[str, Any] = {
        "machine": machine,
        "initiation": init,
        "peer": peer_result,
        "cold_burst": burst,
        "callbacks": cb,
        "reconcile": rec,
        "refunds": refund_result,
        "overload": overload_result,
        "minutes": minutes,
        "quick": args.quick,
        "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out_dir / "all.json").write_text(json.dumps(results, indent=2))
    block = render(results, quick=args.quick, before=before)
    if args.no_write:
        print(block)
    else:
        write_benchmarks(block)
        log(f"wrote {BENCHMARKS_MD} (raw results in {out_dir})")
    sys.exit(0)


if __name__ == "__main__":
    main()
