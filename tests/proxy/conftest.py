"""An in-process proxy in front of an in-process upstream: the request path without processes.

:class:`Upstream` is an aiohttp app whose routes each test writes (a stand-in for
Ollama that can break a stream, drop a connection or wait on an event), and
:class:`Server` plays the supervisor's two callables (``snapshot``, ``wait_for``)
over a real :class:`~n3d.state.StateStore`, so tests move the server between
states by hand. Real processes (n3d, the simulator) are in test_drills.py.
:func:`fleet` does the same for several servers, each a :class:`FakeOllama`
(test_servers.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import web

from n3d.proxy.forward import ProxyOptions
from n3d.proxy.server import Proxy
from n3d.proxy.view import ServerLink
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
    rates: list[tuple[str, float, int]] = field(default_factory=list)  # liveness's saw_rate
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
                saw_rate=lambda model, tps, n: h.rates.append((model, tps, n)),
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


# -- several servers -------------------------------------------------------------------


def created(model: dict[str, Any]) -> int:
    """`/v1/models`' ``created``: a tags entry's ``modified_at`` in Unix seconds."""
    return int(datetime.fromisoformat(model["modified_at"]).timestamp())


class FakeOllama:
    """One server of a fleet: a stand-in Ollama that says who answered.

    ``generate``/``chat`` answer with one content chunk and Ollama's final object
    (waiting ``delay_s`` first, or for ``release`` when set), and log
    ``(route, model)`` in ``hits``; ``/api/tags`` and ``/api/ps`` list
    ``installed`` and ``loaded``; ``/v1/models`` is derived from ``installed``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: list[tuple[str, str]] = []
        self.installed: list[dict[str, Any]] = []
        self.loaded: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self.release: anyio.Event | None = None
        self.drop_next = 0  # connections to drop before the first byte (serve killed)
        self.notify: Callable[[], None] = lambda: None  # told of each hit
        self.app = web.Application()
        for path in ("/api/generate", "/api/chat"):
            self.app.router.add_post(path, self._infer)
        self.app.router.add_get("/api/tags", self._tags)
        self.app.router.add_get("/api/ps", self._ps)
        self.app.router.add_get("/v1/models", self._openai_models)
        self.app.router.add_get("/api/version", self._version)

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": self.installed})

    async def _ps(self, request: web.Request) -> web.Response:
        return web.json_response({"models": self.loaded})

    async def _version(self, request: web.Request) -> web.Response:
        self.hits.append(("/api/version", ""))
        return web.json_response({"version": "0.13.5"})

    async def _openai_models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m["name"], "object": "model", "created": created(m), "owned_by": "library"}
            for m in self.installed
        ]
        return web.json_response({"object": "list", "data": data or None})

    async def _infer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        if self.drop_next:
            self.drop_next -= 1
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError
        self.hits.append((request.path, model))
        self.notify()
        if self.release is not None:
            await self.release.wait()
        elif self.delay_s:
            await anyio.sleep(self.delay_s)
        reply = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await reply.prepare(request)
        chunk = {"model": model, "created_at": "x", "response": self.name, "done": False}
        final = {"model": model, "created_at": "x", "response": "", "done": True,
                 "prompt_eval_count": 1, "eval_count": 1, "eval_duration": 1_000_000}  # fmt: skip
        await reply.write(json.dumps(chunk).encode() + b"\n" + json.dumps(final).encode() + b"\n")
        await reply.write_eof()
        return reply

    def served(self) -> list[str]:
        """The models of the inference requests this server answered, in order."""
        return [model for route, model in self.hits if route != "/api/version"]


@dataclass
class Fleet:
    """A proxy in front of several :class:`FakeOllama`, each with its :class:`Server` state."""

    proxy: Proxy
    ollamas: dict[str, FakeOllama]
    servers: dict[str, Server]
    loaded: dict[str, frozenset[str] | None]
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    _hit: anyio.Event = field(default_factory=anyio.Event)

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10.0, **kw)

    def requests(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["topic"] == "request"]

    def poke(self) -> None:
        hit, self._hit = self._hit, anyio.Event()
        hit.set()

    async def wait_hits(self, count: int) -> None:
        """Return once the servers have answered (or begun to) ``count`` inference requests."""
        while sum(len(o.served()) for o in self.ollamas.values()) < count:
            await self._hit.wait()


@pytest.fixture
async def fleet() -> AsyncIterator[Callable[..., Any]]:
    """``await fleet(["a", "b"], pinned={"b": {"llama3.1:70b"}})``: the proxy before them."""
    runners: list[web.AppRunner] = []
    async with anyio.create_task_group() as tg:

        async def make(names: list[str], pinned: dict[str, set[str]] | None = None) -> Fleet:
            ollamas = {name: FakeOllama(name) for name in names}
            servers, views = {}, []
            loaded: dict[str, frozenset[str] | None] = dict.fromkeys(names)
            pins = {name: frozenset((pinned or {}).get(name, ())) for name in names}
            for name, ollama in ollamas.items():
                runner = web.AppRunner(ollama.app)
                runners.append(runner)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                server = servers[name] = Server(f"http://127.0.0.1:{port}")
                views.append(
                    ServerLink(
                        name=name,
                        base_url=f"http://127.0.0.1:{port}",
                        snapshot=server.snapshot,
                        wait_for=server.wait_for,
                        on_output=lambda model, name=name: f.outputs.append((name, model)),
                        loaded=lambda name=name: loaded[name],
                        pinned=lambda name=name: pins[name],
                    )
                )
            options = {"hold_timeout_s": 5.0, "drain_timeout_s": 5.0, "retry": True}
            f = Fleet(None, ollamas, servers, loaded, "", options=options)  # type: ignore[arg-type]
            for ollama in ollamas.values():
                ollama.notify = f.poke
            f.proxy = Proxy(
                "127.0.0.1:0",
                views,
                options=lambda: ProxyOptions(**f.options),
                publish=lambda topic, payload: f.events.append({"topic": topic, **payload}),
                render_metrics=lambda: "",
            )
            await tg.start(f.proxy.run)
            assert f.proxy.address is not None
            f.url = f"http://127.0.0.1:{f.proxy.address[1]}"
            return f

        yield make
        tg.cancel_scope.cancel()
    for runner in runners:
        await runner.cleanup()
