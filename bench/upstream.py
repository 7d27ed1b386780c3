"""Upstream load: what 100 editor status bars cost Ollama, through n3d and without it.

    .venv/bin/python bench/upstream.py [--duration 60] [--clients 100] [--per-call]
                                       [--direct-duration 10] [--warmup 2]
                                       [--methods status,health]

**Through n3d.** A real ``n3d run --simulate`` (``n3d.testing.DaemonProcess``)
with the default timings that matter here: ``health_check_interval = 30``,
``health_timeout = 5``, one warm model (``llama3.2``, warm ``keep_alive = -1``,
the default), and the simulator's realistic load time (3 s) and default token
time. Once the warm model is loaded, ``--clients`` clients each call ``status``
then ``health`` once a second (fixed rate, phases spread over the first second)
for ``--duration`` seconds after ``--warmup``. Each client holds **one
connection** for its whole life, as an editor extension's status bar does (it
keeps a client object, and needs one connection for ``events.subscribe``
anyway); ``--per-call`` opens a connection per call instead, as a shell status
line running ``n3ctl status`` would. Upstream calls do not depend on that choice.

Counted: the calls the clients completed, and every request the simulator
received (``OLLAMA_SIM_REQUEST_LOG``, one line per request, by path) inside the
same wall-clock window, scaled to a minute. n3d's budget in a window is what its
own schedule sends whoever asks: one ``HEAD /`` per health interval (30 s) and
one ``GET /api/ps`` per keep-warm poll (``poll_interval(30)`` = 10 s), plus
warm refreshes (none: keep_alive -1 never expires); ``status`` never probes, and
``health`` reuses the last probe for a whole interval.

**Without n3d** (modelled, and measured for ``--direct-duration`` seconds by
pointing the same clients at a bare ``ollama-sim serve`` with one model loaded,
each over one HTTP/1.1 keep-alive connection): a client that asked Ollama itself
would pay per second

- ``health`` = ``HEAD /``: 1 call. Ollama's own liveness answer (what its CLI
  polls and n3d probes); ``GET /api/version`` would do as well, still one call.
- ``status`` = ``GET /api/version`` (server version) + ``GET /api/ps`` (models
  loaded, and whether the warm one still is) + ``GET /api/tags`` (models
  installed): 3 calls. Reachability comes free with any answer; n3d's daemon,
  state, restart and resource fields have no Ollama call at all.

so 4 calls per client-second. Printed: a markdown table of calls and calls per
minute on each side, the ratio of Ollama calls to client calls, n3d's CPU time
per client call (/proc, user+system), and the aims' verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n3d.models.warm_policy import poll_interval
from n3d.testing import DaemonProcess, wait_until
from n3d.testing.simulator import SimulatorProcess

HEALTH_INTERVAL_S = 30.0  # the default `health_check_interval`
WARM_MODEL = "llama3.2"
SIM_ENV = {
    "OLLAMA_SIM_MODELS_PRELOAD": WARM_MODEL,
    "OLLAMA_SIM_LOAD_SECONDS": "3",  # see bench/warm.py for why 3 s
    "GIN_MODE": "release",
}
# What a client asking Ollama itself sends for each of n3d's methods (docstring).
DIRECT_CALLS = {
    "health": [("HEAD", "/")],
    "status": [("GET", "/api/version"), ("GET", "/api/ps"), ("GET", "/api/tags")],
}


@dataclass
class Record:
    """Completed client calls: (wall time at completion, latency s, ok)."""

    calls: list[tuple[float, float, bool]] = field(default_factory=list)

    def window(self, start: float, end: float) -> list[tuple[float, float, bool]]:
        return [c for c in self.calls if start <= c[0] < end]


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds of ``pid`` so far (Linux /proc), NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ticks(start: float, end: float) -> AsyncIterator[None]:
    """Yield once a second from ``start`` (monotonic) until ``end``; late ticks are not bunched."""
    next_at = start
    while next_at < end:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        yield
        next_at = max(next_at + 1.0, time.monotonic())


# -- clients of n3d ------------------------------------------------------------------


async def _rpc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> bool:
    writer.write(line)
    reply = await reader.readline()
    if not reply:
        raise ConnectionError("n3d closed the connection")
    return "result" in json.loads(reply)


async def n3d_client(
    path: str, methods: list[str], start: float, end: float, per_call: bool, rec: Record
) -> None:
    lines = [
        json.dumps({"jsonrpc": "2.0", "method": m, "id": i}).encode() + b"\n"
        for i, m in enumerate(methods, 1)
    ]
    conn = None if per_call else await asyncio.open_unix_connection(path)
    try:
        async for _ in _ticks(start, end):
            for line in lines:
                t0 = time.perf_counter()
                ok = False
                try:
                    if conn is None:
                        reader, writer = await asyncio.open_unix_connection(path)
                        try:
                            ok = await _rpc(reader, writer, line)
                        finally:
                            writer.close()
                    else:
                        ok = await _rpc(*conn, line)
                except (OSError, ValueError):
                    ok = False
                rec.calls.append((time.time(), time.perf_counter() - t0, ok))
    finally:
        if conn is not None:
            conn[1].close()


# -- clients of Ollama itself ---------------------------------------------------------


async def _http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, target: str
) -> bool:
    writer.write(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, headers = head.decode("latin-1").partition("\r\n")
    length = 0
    for header in headers.split("\r\n"):
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if method != "HEAD" and length:
        await reader.readexactly(length)
    return status_line.split()[1] == "200"


async def direct_client(
    port: int, methods: list[str], start: float, end: float, rec: Record
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async for _ in _ticks(start, end):
            for method in methods:
                for verb, target in DIRECT_CALLS[method]:
                    t0 = time.perf_counter()
                    try:
                        ok = await _http(reader, writer, verb, target)
                    except (OSError, ValueError, asyncio.IncompleteReadError):
                        ok = False
                    rec.calls.append((time.time(), time.perf_counter() - t0, ok))
    finally:
        writer.close()


async def drive(
    make: Callable[[float, float], Awaitable[None]], clients: int, warmup: float, duration: float
) -> tuple[float, float]:
    """Run ``make(start, end)`` per client; returns the measured window in wall time."""
    now = time.monotonic()
    end = now + 1.0 + warmup + duration
    wall_start = time.time() + 1.0 + warmup
    tasks = [make(now + random.random(), end) for _ in range(clients)]
    await asyncio.gather(*tasks)
    return wall_start, wall_start + duration


# -- scenarios -------------------------------------------------------------------------


def _sim_requests(path: Path, start: float, end: float) -> Counter[str]:
    counts: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if start <= entry["ts"] < end:
                counts[f"{entry['method']} {entry['path']}"] += 1
    return counts


def _latency(calls: list[tuple[float, float, bool]]) -> tuple[float, float]:
    lat = sorted(c[1] for c in calls)
    if not lat:
        return math.nan, math.nan
    return statistics.median(lat) * 1e3, lat[max(0, math.ceil(len(lat) * 0.99) - 1)] * 1e3


def through_n3d(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    config = {
        "ollama": {"health_check_interval": HEALTH_INTERVAL_S},
        "warm": {"models": [WARM_MODEL]},
    }
    daemon = DaemonProcess(home, config=config, fast=False, **SIM_ENV)
    try:
        daemon.start().wait_ready(within_s=60)

        def warm_loaded() -> bool:
            rows = daemon.call("warm.list")["models"]
            return bool(rows) and all(r["loaded"] for r in rows)

        wait_until(warm_loaded, 60, "the warm model to load")
        rec = Record()
        cpu0 = _cpu_s(daemon.pid)
        window = asyncio.run(
            drive(
                lambda s, e: n3d_client(str(daemon.socket), args.methods, s, e, args.per_call, rec),
                args.clients,
                args.warmup,
                args.duration,
            )
        )
        cpu = _cpu_s(daemon.pid) - cpu0
        time.sleep(0.3)  # the request log is written just after each reply
        upstream = _sim_requests(daemon.request_log_path, *window)
        state = daemon.call("status")["server"]
        daemon.stop()
    finally:
        daemon.cleanup()
    calls = rec.window(*window)
    return {
        "calls": calls,
        "failed": sum(not c[2] for c in calls),
        "upstream": upstream,
        "cpu_s": cpu,
        "restarts": state["restarts"],
        "state": state["state"],
    }


def direct(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    log = home / "direct.jsonl"
    sim = SimulatorProcess(
        home / "direct", {**SIM_ENV, "OLLAMA_SIM_REQUEST_LOG": str(log)}, fast=False
    )
    try:
        sim.start().wait_ready(30)
        body = json.dumps({"model": WARM_MODEL, "keep_alive": -1}).encode()
        urllib.request.urlopen(sim.url + "/api/generate", body, timeout=60).read()
        rec = Record()
        window = asyncio.run(
            drive(
                lambda s, e: direct_client(sim.port, args.methods, s, e, rec),
                args.clients,
                args.warmup,
                args.direct_duration,
            )
        )
        time.sleep(0.3)
        received = _sim_requests(log, *window)
    finally:
        sim.kill_group()
    calls = rec.window(*window)
    return {"calls": calls, "failed": sum(not c[2] for c in calls), "upstream": received}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured via n3d")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument(
        "--per-call", action="store_true", help="a connection per call (default: one per client)"
    )
    parser.add_argument(
        "--direct-duration",
        type=float,
        default=10.0,
        help="seconds of the same load on a bare simulator (0: modelled only)",
    )
    parser.add_argument(
        "--methods", default="status,health", help="what each client calls every second"
    )
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    if unknown := set(args.methods) - set(DIRECT_CALLS):
        parser.error(f"--methods: only status and health, not {', '.join(sorted(unknown))}")
    home = Path(tempfile.mkdtemp(prefix="n3u-", dir="/tmp"))
    try:
        via = through_n3d(args, home)
        bare = direct(args, home) if args.direct_duration > 0 else None
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(args, via, bare)
    return 0


def report(args: argparse.Namespace, via: dict[str, Any], bare: dict[str, Any] | None) -> None:
    per_min = 60.0 / args.duration
    client_calls = len(via["calls"])
    upstream: Counter[str] = via["upstream"]
    up_total = sum(upstream.values())
    poll_s = poll_interval(HEALTH_INTERVAL_S)
    budget = {
        "HEAD /": math.ceil(args.duration / HEALTH_INTERVAL_S),
        "GET /api/ps": math.ceil(args.duration / poll_s),
    }
    p50, p99 = _latency(via["calls"])
    mode = "a connection per call" if args.per_call else "one connection per client"
    print(
        f"{args.clients} clients, {' + '.join(args.methods)} once a second each ({mode}), "
        f"{args.duration:g} s measured; health_check_interval {HEALTH_INTERVAL_S:g} s, "
        f"keep-warm poll {poll_s:g} s, one warm model (keep_alive -1)\n"
    )
    print("| calls | in window | per minute | per 100 client calls |")
    print("|---|---|---|---|")

    def row(label: str, count: float, minute: float) -> None:
        per100 = 100.0 * count / client_calls if client_calls else math.nan
        print(f"| {label} | {count:g} | {minute:,.1f} | {per100:.3f} |")

    names = " + ".join(f"`{m}`" for m in args.methods)
    row(f"clients → n3d ({names})", client_calls, client_calls * per_min)
    for path in sorted(set(upstream) | set(budget)):
        row(
            f"n3d → Ollama `{path}` (budget {budget.get(path, 0)})",
            upstream[path],
            upstream[path] * per_min,
        )
    row("n3d → Ollama, all", up_total, up_total * per_min)
    per_client_s = sum(len(DIRECT_CALLS[m]) for m in args.methods)
    modelled = client_calls / len(args.methods) * per_client_s
    row(
        f"clients → Ollama directly, modelled ({per_client_s} per client-second)",
        modelled,
        modelled * per_min,
    )
    if bare is not None:
        got = sum(bare["upstream"].values())
        row(
            f"clients → Ollama directly, measured over {args.direct_duration:g} s "
            f"(scaled to {args.duration:g} s)",
            round(got * args.duration / args.direct_duration),
            got * 60.0 / args.direct_duration,
        )
    cpu_us = via["cpu_s"] / client_calls * 1e6 if client_calls else math.nan
    print(
        f"\nclient calls failed: {via['failed']}; latency via n3d p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms; n3d CPU {via['cpu_s']:.2f} s "
        f"({cpu_us:.0f} µs per client call, "
        f"{100 * via['cpu_s'] / (args.duration + args.warmup + 1):.1f}% of a core); "
        f"server {via['state']}, restarts {via['restarts']}"
    )
    if bare is not None:
        b50, b99 = _latency(bare["calls"])
        print(
            f"direct: {len(bare['calls'])} calls made, {bare['failed']} failed, "
            f"p50 {b50:.2f} ms, p99 {b99:.2f} ms; received by path: "
            + ", ".join(f"{p} {n}" for p, n in sorted(bare["upstream"].items()))
        )
    ratio = f"1 call per {client_calls / up_total:,.0f}" if up_total else "no calls for"
    print(
        f"\nRatio: Ollama received {ratio} client calls "
        f"({100.0 * up_total / client_calls if client_calls else math.nan:.3f} per 100); "
        f"direct clients would have sent {modelled / max(up_total, 1):,.0f}× as many."
    )
    aim_ratio = up_total * 100 <= client_calls
    over = {p: n - budget.get(p, 0) for p, n in upstream.items() if n > budget.get(p, 0)}
    print(
        f'- Aim "at most 1 Ollama call per 100 client calls": '
        f"{'**met**' if aim_ratio else '**not met**'}."
    )
    detail = ", ".join(f"{p} +{n}" for p, n in sorted(over.items())) or "nothing beyond"
    print(
        f'- Aim "no more than the health interval\'s own checks plus the warm refreshes": '
        f"{'**met**' if not over else '**not met**'} ({detail})."
    )


if __name__ == "__main__":
    raise SystemExit(main())
