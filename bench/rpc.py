"""Control-socket benchmark: n3d's JSON-RPC server against a bare anyio echo server.

    .venv/bin/python bench/rpc.py [--duration 3] [--clients 1,16,64] [--rounds 3]
                                  [--servers echo,n3d,daemon] [--also LABEL=DIR ...]

The load comes from this process, one asyncio client process: N connections,
each a closed loop ("send one NDJSON ``status`` request, read its reply line,
send the next"), for ``--duration`` seconds after a short warm-up. At 64
clients p99 is bound by throughput, so the aim (p99 ≤ 5 ms at 64) asks for
about 16 000 calls/s or more with a short tail. The servers, each in its own
process, started once:

- ``echo``: a bare anyio echo server sending every chunk straight back, the
  floor for anyio on a Unix socket on this machine;
- ``n3d``: n3d's RPC server alone, answering a small ``status``-shaped dict
  (logging at warning; the per-call ``n3d.rpc.duration`` metric is still
  aggregated); ``n3d+log`` logs it at info as JSON to /dev/null;
- ``daemon``: a real ``n3d run --simulate`` (:class:`n3d.testing.DaemonProcess`,
  n3d's defaults) answering its real ``status``;
- ``n3d@LABEL``, ``daemon@LABEL``... for each ``--also LABEL=DIR``: the same
  servers run from the ``daemon/`` source tree of DIR (another checkout), to
  compare two versions of n3d in one run.

For each concurrency level the servers take turns, ``--rounds`` times, so a
machine that gets busier half-way through skews all of them alike; each cell is
the median of the rounds (each column on its own).

Printed: throughput (calls/s), p50 and p99 latency (ms), the server process's
CPU time per call (µs, user+system from /proc, ``-`` where there is none: the
least noisy figure on a shared machine), and throughput as a fraction of the
echo server's at the same level.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST = b'{"jsonrpc":"2.0","method":"status","id":1}\n'
_DAEMON_SRC = Path(__file__).resolve().parents[1] / "daemon"


async def _serve_n3d(path: str, log_info: bool) -> None:
    import anyio

    from n3d.logs import configure_logging
    from n3d.rpc import Context, MethodTable, RpcServer

    sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - lives as long as the process
    configure_logging("json", "info" if log_info else "warning", file=sink)
    table = MethodTable()
    started = time.time()

    @table.method("status")
    async def status(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "daemon": {"version": "0.1.0", "pid": os.getpid(), "uptime_s": time.time() - started},
            "server": {"state": "running", "mode": "auto", "pid": 1234, "restarts": 0},
            "models": {"installed": 3, "loaded": 1, "warm": 1},
        }

    async with anyio.create_task_group() as tg:
        await tg.start(RpcServer(path, table, max_connections=1024).run)
        await anyio.sleep_forever()


async def _serve_echo(path: str) -> None:
    import anyio
    import anyio.abc

    async def echo(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    listener = await anyio.create_unix_listener(path)
    await listener.serve(echo)


def serve(kind: str, path: str) -> None:
    import anyio

    if kind == "echo":
        anyio.run(_serve_echo, path)
    else:
        anyio.run(_serve_n3d, path, kind == "n3d+log")


async def _client(path: str, stop_at: float, warm_until: float, out: list[float]) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            writer.write(REQUEST)
            if not await reader.readline():
                raise RuntimeError("server closed the connection")
            if t0 >= warm_until:
                out.append(time.perf_counter() - t0)
    finally:
        writer.close()


def _cpu_s(pid: int) -> float | None:
    """User+system CPU seconds of ``pid`` so far (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(path: str, clients: int, duration: float, pid: int) -> dict[str, float]:
    """``clients`` closed loops on ``path`` for ``duration`` s; the figures of one turn."""
    latencies: list[float] = []
    now = time.perf_counter()
    warm_until = now + 0.3
    stop_at = warm_until + duration
    cpu_start: float | None = None

    async def mark_start() -> None:
        nonlocal cpu_start
        await asyncio.sleep(warm_until - time.perf_counter())
        cpu_start = _cpu_s(pid)

    clients_done = asyncio.gather(
        *(_client(path, stop_at, warm_until, latencies) for _ in range(clients))
    )
    await asyncio.gather(mark_start(), clients_done)
    cpu_end = _cpu_s(pid)
    latencies.sort()
    cpu = cpu_end - cpu_start if cpu_start is not None and cpu_end is not None else math.nan
    return {
        "calls_per_s": len(latencies) / duration,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[max(0, math.ceil(len(latencies) * 0.99) - 1)] * 1e3,
        "cpu_us_per_call": cpu / len(latencies) * 1e6,
    }


@dataclass
class Server:
    """One server under test: where it listens, its pid, how to stop it."""

    path: str
    pid: int
    stop: Callable[[], None]


def _start_bare(kind: str, path: str, src: Path) -> Server:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--path", path], env=env)
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} server did not start")
        time.sleep(0.02)

    def stop() -> None:
        proc.terminate()
        proc.wait()

    return Server(path, proc.pid, stop)


def _start_daemon(home: Path, src: Path) -> Server:
    from n3d.testing import DaemonProcess

    home.mkdir()
    daemon = DaemonProcess(home, config={}, fast=False)
    daemon.env.pop("OLLAMA_SIM_REQUEST_LOG", None)  # a test aid: not in a real install
    daemon.env["PYTHONPATH"] = str(src)
    daemon.start().wait_ready()

    def stop() -> None:
        try:
            daemon.stop()
        finally:
            daemon.cleanup()

    return Server(str(daemon.socket), daemon.pid, stop)


def _start(kind: str, tmp: str, trees: dict[str, Path]) -> Server:
    name = kind.replace("+", "_").replace("@", "_")
    base, _, label = kind.partition("@")
    src = trees[label] if label else _DAEMON_SRC
    if base == "daemon":
        return _start_daemon(Path(tmp) / name, src)
    return _start_bare(base, f"{tmp}/{name}.sock", src)


def _median_cell(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrency levels")
    parser.add_argument("--rounds", type=int, default=3, help="turns per level (medians kept)")
    parser.add_argument(
        "--servers", default="echo,n3d,daemon", help="comma-separated: echo, n3d, n3d+log, daemon"
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also measure the n3d servers of DIR/daemon (another checkout)",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.path)
        return
    levels = [int(c) for c in args.clients.split(",")]
    trees = {}
    for also in args.also:
        label, _, directory = also.partition("=")
        trees[label] = Path(directory).resolve() / "daemon"
    kinds = [k for k in args.servers.split(",") if k]
    kinds += [f"{k}@{label}" for label in trees for k in list(kinds) if k != "echo"]
    if "echo" not in kinds:
        kinds.insert(0, "echo")  # the floor every ratio is read against
    runs: dict[tuple[str, int], list[dict[str, float]]] = {
        (k, n): [] for k in kinds for n in levels
    }
    tmp = tempfile.mkdtemp(prefix="n3b-", dir="/tmp")  # short: sun_path holds 107 bytes
    servers: dict[str, Server] = {}
    try:
        for kind in kinds:
            servers[kind] = _start(kind, tmp, trees)
        for n in levels:
            for _ in range(args.rounds):
                for kind in kinds:
                    server = servers[kind]
                    runs[kind, n].append(
                        asyncio.run(load(server.path, n, args.duration, server.pid))
                    )
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results = {key: _median_cell(rs) for key, rs in runs.items()}
    print(
        f"{'server':<16} {'clients':>7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu µs':>7} {'vs echo':>8}"
    )
    for kind in kinds:
        for n in levels:
            r = results[kind, n]
            ratio = r["calls_per_s"] / results["echo", n]["calls_per_s"]
            cpu = "-" if math.isnan(r["cpu_us_per_call"]) else f"{r['cpu_us_per_call']:.1f}"
            print(
                f"{kind:<16} {n:>7} {r['calls_per_s']:>9.0f} {r['p50_ms']:>8.3f} "
                f"{r['p99_ms']:>8.3f} {cpu:>7} {ratio:>8.2f}"
            )
    print(
        f"\n(cpu count {os.cpu_count()}, python {sys.version.split()[0]}, "
        f"{args.duration:g} s each, medians of {args.rounds} round(s))"
    )


if __name__ == "__main__":
    main()
