"""An in-process proxy in front of an in-process upstream: the request path without processes.

:class:`Upstream` is an aiohttp app whose routes each test writes (a stand-in for
Ollama that can break a stream, drop a connection or wait on an event), and
:class:`Server` plays the supervisor's two callables (``snapshot``, ``wait_for``)
over a real :class:`~n3d.state.StateStore`, so tests move the server between
states by hand. Real processes (n3d, the simulator) are in test_drills.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import web

from n3d.proxy.forward import ProxyOptions
from n3d.proxy.server import Proxy
from n3d.state import ServerState, Snapshot, StateStore


class Server:
    """The supervisor as the proxy sees it: a snapshot and a wait for a predicate."""

    def __init__(self, base_url: str) -> None:
        self.store = StateStore(Snapshot(state=ServerState.RUNNING, base_url=base_url))
        self._changed = anyio.Event()
        self.store.subscribe(lambda edge, snap: self._poke())

    def _poke(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def snapshot(self) -> Snapshot:
        return self.store.snapshot

    async def wait_for(self, predicate: Callable[[Snapshot], bool]) -> Snapshot:
        while True:
            changed = self._changed
            if predicate(self.store.snapshot):
                return self.store.snapshot
            await changed.wait()

    def set(self, state: ServerState, reason: str = "") -> None:
        """Jump to ``state`` (tests skip the edges a supervisor would take)."""
        self.store._snapshot = replace(self.store.snapshot, state=state, reason=reason)
        self.store._notify(None)

    def restarted(self) -> None:
        """A new serve answers: a new snapshot (new pid), running."""
        snap = self.store.snapshot
        self.store._snapshot = replace(
            snap, state=ServerState.RUNNING, pid=(snap.pid or 0) + 1, reason="restarted"
        )
        self.store._notify(None)


@dataclass
class Harness:
    proxy: Proxy
    server: Server
    upstream: web.Application
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10.0, **kw)

    def requests(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["topic"] == "request"]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    """The proxy on a free port in front of ``harness.upstream`` (add routes before use)."""
    upstream = web.Application()
    runner = web.AppRunner(upstream)
    holder: dict[str, Any] = {}

    async def start_upstream() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    holder["start"] = start_upstream
    server = Server("http://placeholder")
    options = {"hold_timeout_s": 5.0, "drain_timeout_s": 5.0, "retry": True}
    h = Harness(proxy=None, server=server, upstream=upstream, url="", options=options)  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:

        async def begin() -> None:
            base = await start_upstream()
            server.store._snapshot = replace(server.store.snapshot, base_url=base)
            h.proxy = Proxy(
                "127.0.0.1:0",
                base,
                options=lambda: ProxyOptions(**h.options),
                server_state=server.snapshot,
                wait_state=server.wait_for,
                on_output=h.outputs.append,
                publish=lambda topic, payload: h.events.append({"topic": topic, **payload}),
                render_metrics=lambda: "n3d_test 1.0\n",
            )
            await tg.start(h.proxy.run)
            assert h.proxy.address is not None
            h.url = f"http://127.0.0.1:{h.proxy.address[1]}"

        h.begin = begin  # type: ignore[attr-defined]
        yield h
        tg.cancel_scope.cancel()
    await runner.cleanup()
