"""Control-socket benchmark: n3d's JSON-RPC server against a bare anyio echo server.

    .venv/bin/python bench/rpc.py [--duration 2] [--clients 1,16,64] [--rounds 1]

Each server runs in its own process, started once; the load comes from this
process: N connections, each a closed loop of "send one NDJSON request, read one
line", for ``--duration`` seconds after a short warm-up. The n3d server answers
a ``status`` method returning a small dict (the shape of the real one); the echo
server sends every chunk straight back (the floor for anyio on a Unix socket on
this machine). For each concurrency level the servers take turns (echo, n3d,
n3d+log), ``--rounds`` times, so a machine that gets busier half-way through
skews all of them alike; each cell is the round with the median throughput.

Printed: throughput (calls/s), p50 and p99 latency (ms), the server process's
CPU time per call (µs, user+system from /proc, ``-`` where there is none: the
least noisy figure on a shared machine), and throughput as a fraction of the
echo server's at the same level.

``n3d`` logs at level warning (the per-call ``n3d.rpc.duration`` metric is still
aggregated); ``n3d+log`` logs it at info as JSON to /dev/null, as a daemon at
the default level does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REQUEST = b'{"jsonrpc":"2.0","method":"status","id":1}\n'


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
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3,
        "cpu_us_per_call": cpu / len(latencies) * 1e6,
    }


def _start(kind: str, path: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "daemon")}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--path", path], env=env)
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} server did not start")
        time.sleep(0.02)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrency levels")
    parser.add_argument("--rounds", type=int, default=1, help="turns per level (median kept)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.path)
        return
    levels = [int(c) for c in args.clients.split(",")]
    kinds = ("echo", "n3d", "n3d+log")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {
        (k, n): [] for k in kinds for n in levels
    }
    with tempfile.TemporaryDirectory(prefix="n3bench-", dir="/tmp") as tmp:
        procs: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        try:
            for kind in kinds:
                path = f"{tmp}/{kind.replace('+', '_')}.sock"
                procs[kind] = (path, _start(kind, path))
            for n in levels:
                for _ in range(args.rounds):
                    for kind in kinds:
                        path, proc = procs[kind]
                        runs[kind, n].append(asyncio.run(load(path, n, args.duration, proc.pid)))
        finally:
            for _path, proc in procs.values():
                proc.terminate()
                proc.wait()
    results = {
        key: sorted(rs, key=lambda r: r["calls_per_s"])[len(rs) // 2] for key, rs in runs.items()
    }
    print(
        f"{'server':<8} {'clients':>7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu µs':>7} {'vs echo':>8}"
    )
    for kind in kinds:
        for n in levels:
            r = results[kind, n]
            ratio = r["calls_per_s"] / results["echo", n]["calls_per_s"]
            cpu = "-" if math.isnan(r["cpu_us_per_call"]) else f"{r['cpu_us_per_call']:.1f}"
            print(
                f"{kind:<8} {n:>7} {r['calls_per_s']:>9.0f} {r['p50_ms']:>8.3f} "
                f"{r['p99_ms']:>8.3f} {cpu:>7} {ratio:>8.2f}"
            )
    print(
        f"\n(cpu count {os.cpu_count()}, python {sys.version.split()[0]}, "
        f"{args.duration:g} s each, median of {args.rounds} round(s))"
    )


if __name__ == "__main__":
    main()
