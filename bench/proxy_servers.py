"""Routing's cost: n3d's proxy in front of 1 server vs 4 (bench/proxy.py --servers).

    .venv/bin/python bench/proxy_servers.py serve --port P --upstream URL [--upstream URL ...]

- **serve**: n3d's own :class:`~n3d.proxy.server.Proxy` (the code of the request
  path, not a copy) in front of the given upstreams, one server each, every one
  healthy (``external``), ``llama3.2`` loaded on the first two (so a request for
  it is routed by rule 1: loaded, then the fewest in flight). Each finished
  request is logged as the daemon logs it (the ``request`` event as a JSON line,
  to /dev/null here) and its metrics aggregated.
- :func:`pick_cost`: the router's own work per request, in process: an admission
  (every server's snapshot, the model's identity, the policy) for 1 and 4 servers.

The upstreams are bench/proxy_parts.py's stand-in Ollama: ``POST /api/show`` gets
its small JSON answer (a request routed by model), ``GET /api/version`` goes to the
first healthy server, ``POST /api/generate`` streams.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import anyio

from n3d.proxy.router import Router
from n3d.proxy.view import ServerLink, model_key
from n3d.state import ServerState, Snapshot

__all__ = ["pick_cost", "views"]

LOADED = frozenset({"llama3.2:latest"})


def views(upstreams: list[str], loaded_on: int = 2) -> list[ServerLink]:
    """One healthy server per upstream, ``llama3.2`` loaded on the first ``loaded_on``."""
    made = []
    for i, url in enumerate(upstreams):
        snap = Snapshot(state=ServerState.EXTERNAL, base_url=url)

        async def wait_for(
            predicate: Callable[[Snapshot], bool], snap: Snapshot = snap
        ) -> Snapshot:
            if not predicate(snap):
                await anyio.sleep_forever()
            return snap

        loaded = LOADED if i < loaded_on else None
        made.append(
            ServerLink(
                name=f"s{i}",
                base_url=url,
                snapshot=lambda snap=snap: snap,
                wait_for=wait_for,
                on_output=lambda model: None,
                loaded=lambda loaded=loaded: loaded,
            )
        )
    return made


def pick_cost(servers: int, calls: int = 100_000) -> float:
    """Microseconds per admission of a request for a loaded model, in process."""
    router = Router(views([f"http://127.0.0.1:{1 + i}" for i in range(servers)]), lambda n: 0)

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            key = model_key("llama3.2") if servers > 1 else None  # as the forwarder asks
            await router.admit(key, by_model=True, hold_timeout_s=60.0)
        return (time.perf_counter() - started) / calls * 1e6

    return anyio.run(run)


async def serve(port: int, upstreams: list[str]) -> None:
    import structlog

    from n3d.proxy.forward import ProxyOptions
    from n3d.proxy.server import Proxy

    events = structlog.get_logger("n3d.events")

    def publish(topic: str, payload: Any) -> None:
        events.info(topic, **payload)  # what daemon.py's publish logs

    proxy = Proxy(
        f"127.0.0.1:{port}",
        views(upstreams),
        options=lambda: ProxyOptions(60.0, 30.0, True),
        publish=publish,
        render_metrics=lambda: "",
    )
    print(f"listening {port}", flush=True)
    await proxy.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--upstream", action="append", required=True)
    args = parser.parse_args()
    from n3d.logs import configure_logging

    with open(os.devnull, "w") as devnull:
        configure_logging("json", "info", file=devnull)
        anyio.run(serve, args.port, args.upstream)


if __name__ == "__main__":
    main()
