"""`status` latency while one pull streams progress to 50 clients, beside no pull, in one run.

    .venv/bin/python bench/pull_load.py [--duration 10] [--clients 50] [--rate 100]
                                        [--model llama3] [--pull-seconds S]

One ``n3d run --simulate`` (via :class:`n3d.testing.DaemonProcess`) with the
default config (``fast=False``: ``health_check_interval = 30``, default restart
and stop settings) and a slow simulated pull (``OLLAMA_SIM_PULL_SECONDS``, default
``--duration`` + 10 s, so it outlasts the window). Then, one after the other:

1. **no pull**: one client on one connection calls `status` for ``--duration``
   seconds -- at ``--rate`` calls a second (a call that overruns its slot delays
   the next, never bunches them), or back to back with ``--rate 0``;
2. **pull**: ``--clients`` connections, each from a helper process (this
   script with ``--pull-clients``), call `models.pull` for the same model, each
   with its own ``workDoneToken``; once every one of them has had its
   ``$/progress`` ``begin``, the same `status` loop runs for ``--duration``
   seconds. The helper counts every client's ``begin``/``report``/``end`` and
   its response, so the table says whether progress really reached all of them.

Latency is the round trip of one `status` call (send to parsed reply) with the
standard-library client :class:`n3d.client.Connection`, which is what `n3ctl`
uses. "n3d CPU" is the daemon process's user+system CPU time over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from n3d.client import Connection
from n3d.testing import DaemonProcess

AIM_P99_MS = 5.0


# -- the pull clients (a helper process, so their work does not share our GIL) --------------


async def _one_pull(path: str, model: str, index: int, began: asyncio.Event,
                    counts: list[int], clients: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
    token = f"bench-{index}"
    request = {"jsonrpc": "2.0", "id": 1, "method": "models.pull",
               "params": {"model": model, "workDoneToken": token}}
    writer.write(json.dumps(request).encode() + b"\n")
    kinds: Counter[str] = Counter()
    response: dict[str, Any] = {}
    try:
        while True:
            line = await reader.readline()
            if not line:
                response = {"error": {"message": "connection closed"}}
                break
            message = json.loads(line)
            params = message.get("params") or {}
            if message.get("method") == "$/progress" and params.get("token") == token:
                kind = params["value"]["kind"]
                kinds[kind] += 1
                if kind == "begin":
                    counts[0] += 1
                    if counts[0] == clients:
                        began.set()
            elif message.get("id") == 1:
                response = message
                break
    finally:
        writer.close()
    result = response.get("result") or {}
    return {"begin": kinds["begin"], "report": kinds["report"], "end": kinds["end"],
            "ok": result.get("status") == "success",
            "error": (response.get("error") or {}).get("message")}


async def _pull_clients(path: str, model: str, clients: int) -> None:
    began = asyncio.Event()
    counts = [0]
    started = time.monotonic()

    async def announce() -> None:
        await began.wait()
        print("began", flush=True)

    announcer = asyncio.create_task(announce())
    results = await asyncio.gather(
        *(_one_pull(path, model, i, began, counts, clients) for i in range(clients))
    )
    announcer.cancel()
    print(json.dumps({"clients": results, "seconds": time.monotonic() - started}), flush=True)


# -- the status loop -------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    label: str
    latencies_ms: list[float]
    seconds: float
    cpu_s: float
    errors: int

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def cells(self) -> list[str]:
        return [self.label, f"{len(self.latencies_ms)}",
                f"{statistics.median(self.latencies_ms):.2f}", f"{self.pct(0.99):.2f}",
                f"{max(self.latencies_ms):.2f}", f"{100 * self.cpu_s / self.seconds:.0f} %"]


def measure(label: str, conn: Connection, pid: int, duration: float, rate: float) -> Phase:
    proc = psutil.Process(pid)
    latencies: list[float] = []
    errors = 0
    cpu0 = sum(proc.cpu_times()[:2])
    started = time.perf_counter()
    next_at = started
    while True:
        now = time.perf_counter()
        if now - started >= duration:
            break
        if rate > 0:
            if next_at > now:
                time.sleep(next_at - now)
            next_at = max(next_at + 1 / rate, time.perf_counter())
        t0 = time.perf_counter()
        try:
            conn.call("status")
        except Exception:  # counted and shown, not fatal to the benchmark
            errors += 1
            continue
        latencies.append((time.perf_counter() - t0) * 1e3)
    seconds = time.perf_counter() - started
    return Phase(label, latencies, seconds, sum(proc.cpu_times()[:2]) - cpu0, errors)


def _read_line(proc: subprocess.Popen[str], within_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], within_s)
    return proc.stdout.readline().strip() if ready else ""


def start_n3d(home: Path, pull_seconds: float) -> DaemonProcess:
    home.mkdir()
    daemon = DaemonProcess(
        home,
        config={},
        fast=False,
        OLLAMA_SIM_MODELS_PRELOAD="llama3.2",
        OLLAMA_SIM_PULL_SECONDS=f"{pull_seconds:g}",
    )
    daemon.env.pop("OLLAMA_SIM_REQUEST_LOG", None)  # a test aid: not in a real install
    return daemon.start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=50, help="clients pulling at once")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="status calls per second (0: back to back)")
    parser.add_argument("--model", default="llama3", help="the model pulled")
    parser.add_argument("--pull-seconds", type=float, default=None,
                        help="simulated pull duration (default: duration + 10)")
    parser.add_argument("--pull-clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pull_clients:
        asyncio.run(_pull_clients(args.socket, args.model, args.pull_clients))
        return 0
    pull_seconds = args.pull_seconds or args.duration + 10

    with tempfile.TemporaryDirectory(prefix="n3p-", dir="/tmp") as tmp_name:
        daemon = start_n3d(Path(tmp_name) / "d", pull_seconds)
        helper: subprocess.Popen[str] | None = None
        try:
            daemon.wait_ready(within_s=30)
            with Connection(daemon.socket, timeout=10) as conn:
                for _ in range(50):  # warm-up: first calls, first /proc scan
                    conn.call("status")
                quiet = measure("no pull", conn, daemon.pid, args.duration, args.rate)
                env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]
                                                       / "daemon")}
                helper = subprocess.Popen(
                    [sys.executable, __file__, "--pull-clients", str(args.clients),
                     "--socket", str(daemon.socket), "--model", args.model],
                    stdout=subprocess.PIPE, text=True, env=env,
                )
                if _read_line(helper, 30) != "began":
                    raise SystemExit("the pull clients did not all get a `begin` in 30 s")
                busy = measure(f"pull streaming to {args.clients} clients", conn, daemon.pid,
                               args.duration, args.rate)
                still_pulling = helper.poll() is None
            summary = json.loads(_read_line(helper, pull_seconds + 60) or "{}")
            helper.wait(10)
        finally:
            if helper is not None and helper.poll() is None:
                helper.kill()
                helper.wait()
            daemon.cleanup()

    clients = summary.get("clients", [])
    complete = [c for c in clients if c["begin"] == 1 and c["report"] > 0 and c["end"] == 1
                and c["ok"]]
    reports = sorted(c["report"] for c in clients) or [0]
    notifications = sum(c["begin"] + c["report"] + c["end"] for c in clients)
    seconds = summary.get("seconds", 0.0)

    mode = f"{args.rate:g} calls/s" if args.rate > 0 else "back to back"
    print(f"`status` round trip, one connection, {mode}, {args.duration:g} s per phase, "
          f"one after the other ({date.today()}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; simulated pull of {args.model} takes {pull_seconds:g} s)\n")
    header = ["phase", "calls", "p50 ms", "p99 ms", "max ms", "n3d CPU"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for phase in (quiet, busy):
        print("| " + " | ".join(phase.cells()) + " |")
    print(f"| pull / no pull | {len(busy.latencies_ms) / len(quiet.latencies_ms):.2f}× | "
          f"{statistics.median(busy.latencies_ms) / statistics.median(quiet.latencies_ms):.2f}× | "
          f"{busy.pct(0.99) / quiet.pct(0.99):.2f}× | "
          f"{max(busy.latencies_ms) / max(quiet.latencies_ms):.2f}× | "
          f"{(busy.cpu_s / busy.seconds) / max(quiet.cpu_s / quiet.seconds, 1e-9):.2f}× |")
    print(f"\nProgress: {len(complete)}/{args.clients} clients got `begin`, `report`s, `end` "
          f"and a `success` response; `report`s per client min {reports[0]}, median "
          f"{statistics.median(reports):g}, max {reports[-1]}; {notifications} `$/progress` "
          f"notifications in all over {seconds:.1f} s "
          f"({notifications / max(seconds, 1e-9):.0f}/s).")
    failed = [c["error"] for c in clients if not c["ok"]]
    if failed:
        print(f"Failed pulls: {len(failed)} (first: {failed[0]})")
    if not still_pulling:
        print("WARNING: the pull ended before the window closed; raise --pull-seconds.")
    if quiet.errors or busy.errors:
        print(f"`status` errors: {quiet.errors} without the pull, {busy.errors} during it.")
    ok = busy.pct(0.99) < AIM_P99_MS and len(complete) == args.clients
    print(f"\n- Aim \"status p99 < {AIM_P99_MS:g} ms while a pull streams to {args.clients} "
          f"clients\": **{'met' if ok else 'not met'}** (p99 {busy.pct(0.99):.2f} ms; "
          f"{quiet.pct(0.99):.2f} ms with no pull).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
