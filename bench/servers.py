"""What several servers cost n3d: `status` latency and idle cost, 1 server vs 4.

    .venv/bin/python bench/servers.py [--idle 30] [--settle 5] [--duration 3] [--rounds 3]

Two real ``n3d run --simulate`` (:class:`n3d.testing.servers.FleetProcess`, n3d's
defaults: ``fast=False``) run side by side, one with ``[[servers]]`` of one
entry, one with four; each server warms one model (``models = ["llama3.2"]``),
so each has its supervisor, health checks, liveness and keep-warm at work, as a
host with one serve per GPU would. Simulators' request logs go to /dev/null.

- **idle**: over one window of ``--idle`` seconds (both daemons at the same
  time, ``--settle`` s after every warm model is loaded; nothing talks to
  them), n3d's own process (not its children): CPU seconds (user+system, and
  on-CPU time from ``/proc/PID/task/*/schedstat``, bench/idle.py's
  :class:`Meter`), RSS at the end. "Linear, not worse": the 4-server figure
  should be at most 4 times the 1-server one (a fixed part, plus one part per
  server); the increment per added server is printed.
- **status**: bench/rpc.py's closed-loop clients (1 and 16 connections, NDJSON
  ``status``) against each daemon's socket, taking turns ``--rounds`` times;
  p50/p99 latency and calls/s, each cell the median of its rounds.

Routing's own cost per proxied request (1 server vs 4) is bench/proxy.py --servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from idle import POLL_S, Meter

from n3d.testing import wait_until
from n3d.testing.servers import FleetProcess
from rpc import load

MODEL = "llama3.2"
SIZES = {"1 server": ["a"], "4 servers": ["a", "b", "c", "d"]}


def _start(home: Path, names: list[str]) -> FleetProcess:
    home.mkdir()
    quiet = {name: {"OLLAMA_SIM_REQUEST_LOG": os.devnull} for name in names}
    d = FleetProcess(
        home,
        names,
        fast=False,
        pinned={name: [MODEL] for name in names},
        server_env=quiet,
        models=[MODEL],
    )
    d.env.pop("OLLAMA_SIM_REQUEST_LOG", None)  # a test aid, not part of an install
    return d.start()


def _warm(d: FleetProcess) -> bool:
    for name in d.names:
        rows = d.call("warm.list", {"server": name}, timeout=5)["models"]
        if not rows or not all(row.get("loaded") for row in rows):
            return False
    return True


def _idle(daemons: dict[str, FleetProcess], seconds: float) -> dict[str, dict[str, float]]:
    meters = {label: Meter(lambda d=d: [d.pid]) for label, d in daemons.items()}
    deadline = time.monotonic() + seconds
    while True:
        for meter in meters.values():
            meter.poll()
        if time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    out = {}
    for label, meter in meters.items():
        row = meter.result(label)
        window = meter.ended - meter.started
        out[label] = {
            "cpu_s": row.cpu_s_per_min * window / 60,
            "run_s": row.run_s_per_min * window / 60,
            "rss_mib": row.rss_mib,
            "wakeups_per_s": row.wakeups_per_s,
            "window_s": window,
        }
    return out


def _status(
    daemons: dict[str, FleetProcess], clients: int, duration: float, rounds: int
) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in daemons}
    for _ in range(rounds):
        for label, d in daemons.items():
            runs[label].append(asyncio.run(load(str(d.socket), clients, duration, d.pid)))
    return {
        label: {key: statistics.median(r[key] for r in cells) for key in cells[0]}
        for label, cells in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per status turn")
    parser.add_argument("--rounds", type=int, default=3, help="status turns per daemon")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="n3s-", dir="/tmp") as tmp, ExitStack() as stack:
        daemons = {}
        for label, names in SIZES.items():
            d = _start(Path(tmp) / label.split()[0], names)
            stack.callback(d.cleanup)
            daemons[label] = d
        for d in daemons.values():
            d.wait_socket(60)
            d.wait_servers("running", 60)
            wait_until(lambda d=d: _warm(d), 60, "every server warm")
        time.sleep(args.settle)
        idle = _idle(daemons, args.idle)
        status = {n: _status(daemons, n, args.duration, args.rounds) for n in (1, 16)}
        for d in daemons.values():
            d.stop()

    one, four = idle["1 server"], idle["4 servers"]
    print(
        f"n3d with 1 vs 4 servers ({date.today()}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; one warm model per server, n3d's defaults)\n"
    )
    print(f"Idle, both over the same {one['window_s']:.1f} s window (n3d's own process):\n")
    print("| n3d | CPU s | on-CPU s | RSS MiB | wakeups/s |")
    print("|---|---|---|---|---|")
    for label, row in idle.items():
        print(
            f"| {label} | {row['cpu_s']:.3f} | {row['run_s']:.4f} | "
            f"{row['rss_mib']:.1f} | {row['wakeups_per_s']:.2f} |"
        )
    for key, what in (("run_s", "on-CPU time"), ("rss_mib", "RSS")):
        ratio = four[key] / one[key] if one[key] else float("nan")
        step = (four[key] - one[key]) / 3
        verdict = "linear or better" if ratio <= 4.0 else "worse than linear"
        print(
            f"- {what}: 4 servers / 1 = {ratio:.2f}× ({verdict}); "
            f"each added server {step:+.4g} against {one[key]:.4g} for the first"
        )
    print("\n`status` over the socket, closed loops (median of rounds):\n")
    print("| n3d | clients | calls/s | p50 ms | p99 ms | CPU µs/call |")
    print("|---|---|---|---|---|---|")
    for clients, rows in status.items():
        for label, row in rows.items():
            print(
                f"| {label} | {clients} | {row['calls_per_s']:.0f} | {row['p50_ms']:.2f} | "
                f"{row['p99_ms']:.2f} | {row['cpu_us_per_call']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
