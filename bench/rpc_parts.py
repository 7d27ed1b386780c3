"""Where an RPC call's CPU goes: each in-process stage of n3d's server path, timed alone.

    .venv/bin/python bench/rpc_parts.py [--calls 100000]

bench/rpc.py measures whole calls over a socket (~22 µs of server CPU each
against the echo server's ~7); this splits the Python part of one small
`status`-shaped call into the stages the server runs, each in a tight loop over
``--calls`` iterations, no sockets:

- **frame**: the connection's :class:`~n3d.jsonrpc.framing.Framer` cutting one NDJSON line;
- **parse**: :func:`~n3d.jsonrpc.protocol.parse` (UTF-8, JSON decode, validation);
- **dispatch**: :meth:`MethodTable.call <n3d.rpc.dispatch.MethodTable.call>`:
  params bound, context made, the handler run, the per-call metric aggregated;
- **encode**: the reply assembled, encoded and framed;
- **wake**: handing a frame to an idle worker task, which runs and parks on a
  new event, as :mod:`n3d.rpc.running` does per request (measured from a task,
  so it also holds that task's own yield, ~1 µs more than the server pays).

What is left of the measured total is the event loop and the two system calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import anyio

from n3d.jsonrpc.framing import Framer
from n3d.jsonrpc.protocol import JsonObject, encode, parse
from n3d.logs import configure_logging
from n3d.rpc.dispatch import Context, MethodTable

REQUEST = b'{"jsonrpc":"2.0","method":"status","id":1}\n'


class _Session:
    id = 1

    def send(self, message: JsonObject) -> None:
        pass

    def subscribe(self, topics: frozenset[str] | None) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def _table() -> MethodTable:
    table = MethodTable()
    started = time.time()

    @table.method("status")
    async def status(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        return {  # the same result as bench/rpc.py's server
            "daemon": {"version": "0.1.0", "pid": os.getpid(), "uptime_s": time.time() - started},
            "server": {"state": "running", "mode": "auto", "pid": 1234, "restarts": 0},
            "models": {"installed": 3, "loaded": 1, "warm": 1},
        }

    return table


def _per_call_us(calls: int, once: Callable[[], object]) -> float:
    began = time.process_time()
    for _ in range(calls):
        once()
    return (time.process_time() - began) / calls * 1e6


async def measure(calls: int) -> dict[str, float]:
    framer, table, session = Framer(1 << 20), _table(), _Session()
    incoming = parse(REQUEST[:-1])
    request = incoming.requests[0]
    response = await table.call(session, request)
    assert response is not None
    out: dict[str, float] = {}
    out["frame"] = _per_call_us(calls, lambda: framer.feed(REQUEST))
    out["parse"] = _per_call_us(calls, lambda: parse(REQUEST[:-1]))
    began = time.process_time()
    for _ in range(calls):
        await table.call(session, request)
    out["dispatch"] = (time.process_time() - began) / calls * 1e6
    out["encode"] = _per_call_us(calls, lambda: framer.frame(encode(incoming.reply([response]))))
    waiting: list[anyio.Event] = []

    async def worker() -> None:
        while True:
            wake = anyio.Event()
            waiting.append(wake)
            await wake.wait()

    task = asyncio.ensure_future(worker())
    await asyncio.sleep(0)
    began = time.process_time()
    for _ in range(calls):
        waiting.pop().set()
        await asyncio.sleep(0)  # the worker runs, then we are resumed: two switches
    out["wake"] = (time.process_time() - began) / calls * 1e6
    task.cancel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    with open(os.devnull, "w") as sink:
        configure_logging("json", "warning", file=sink)
        parts = asyncio.run(measure(args.calls))
    total = sum(parts.values())
    print("| stage | CPU µs per call | share |\n|---|---|---|")
    for name, us in parts.items():
        print(f"| {name} | {us:.2f} | {us / total:.0%} |")
    print(f"| all stages | {total:.2f} | 100% |")


if __name__ == "__main__":
    main()
