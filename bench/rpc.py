"""Control-socket benchmark: n3d's JSON-RPC server against a bare anyio echo server.

    .venv/bin/python bench/rpc.py [--duration 2] [--clients 1,16,64]

Each server runs in its own process; the load comes from this process: N
connections, each a closed loop of "send one NDJSON request, read one line",
for ``--duration`` seconds after a short warm-up. The n3d server answers a
``status`` method returning a small dict (the shape of the real one); the echo
server sends every chunk straight back (the floor for anyio on a Unix socket on
this machine). Printed: throughput (calls/s), p50 and p99 latency (ms), and
n3d's throughput as a fraction of the echo server's.

``n3d`` logs at level warning (the per-call ``n3d.rpc.duration`` metric is still
aggregated); ``n3d+log`` logs it at info as JSON to /dev/null, as a daemon at
the default level does.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def load(path: str, clients: int, duration: float) -> dict[str, float]:
    latencies: list[float] = []
    now = time.perf_counter()
    warm_until = now + 0.3
    stop_at = warm_until + duration
    await asyncio.gather(*(_client(path, stop_at, warm_until, latencies) for _ in range(clients)))
    latencies.sort()
    return {
        "calls_per_s": len(latencies) / duration,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3,
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
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.path)
        return
    levels = [int(c) for c in args.clients.split(",")]
    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="n3bench-", dir="/tmp") as tmp:
        for kind in ("echo", "n3d", "n3d+log"):
            path = f"{tmp}/{kind.replace('+', '_')}.sock"
            proc = _start(kind, path)
            try:
                for n in levels:
                    results[kind, n] = asyncio.run(load(path, n, args.duration))
            finally:
                proc.terminate()
                proc.wait()
    print(f"{'server':<8} {'clients':>7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs echo':>8}")
    for kind in ("echo", "n3d", "n3d+log"):
        for n in levels:
            r = results[kind, n]
            ratio = r["calls_per_s"] / results["echo", n]["calls_per_s"]
            print(
                f"{kind:<8} {n:>7} {r['calls_per_s']:>9.0f} {r['p50_ms']:>8.3f} "
                f"{r['p99_ms']:>8.3f} {ratio:>8.2f}"
            )
    print(
        f"\n(cpu count {os.cpu_count()}, python {sys.version.split()[0]}, {args.duration:g} s each)"
    )


if __name__ == "__main__":
    main()
