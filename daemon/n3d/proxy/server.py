"""The proxy listener: Ollama's HTTP API on ``[proxy] listen``, forwarded to the servers.

:class:`Proxy` is one long-running part of the daemon (``run(task_status=...)``,
ready once the port is bound). It is given narrow things, never a supervisor: one
:class:`~n3d.proxy.view.ServerView` per server (name, address, pinned models, the
supervisor's ``snapshot`` and ``wait_for``, the loaded models, liveness's
``on_output`` and ``saw_rate``), ``publish(topic, payload)`` (the ``request`` event) and
``render_metrics()`` (the Prometheus text of ``GET /metrics``). Each supervisor
reaches it through one hook, :meth:`Proxy.drain` of its server, awaited before a
planned stop or restart.

One server is still made from callables, as the daemon has always passed them
(``Proxy(listen, base_url, server_state=..., wait_state=..., on_output=...)``).
With ``[[servers]]``, daemon.py passes the views instead (``Proxy.from_settings(
settings, servers=[ServerLink(...), ...], publish=...)``, one
:class:`~n3d.proxy.view.ServerLink` per supervisor, in the config's order) and
sets each supervisor's hook to ``functools.partial(proxy.drain, server=name)``.

aiohttp's low-level server parses HTTP (its C parser, llhttp) and the same
library's client talks to Ollama: docs/proxy.md "Why these libraries" has the
measurements that chose them.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import structlog
from aiohttp import web
from anyio.abc import TaskStatus

from n3d.config import Settings
from n3d.errors import ConfigError
from n3d.proxy.exposition import CONTENT_TYPE, render_prometheus
from n3d.proxy.forward import Forwarder, ProxyOptions
from n3d.proxy.gate import WaitState
from n3d.proxy.records import Publish, RequestRecord, RequestTable
from n3d.proxy.router import Router
from n3d.proxy.view import ServerLink, ServerView
from n3d.state import Snapshot

__all__ = ["Proxy", "split_listen"]

log = structlog.get_logger("n3d.proxy")
# Go's net/http accepts request headers up to 1 MiB (DefaultMaxHeaderBytes);
# aiohttp's default line limit (8 KiB) would refuse what Ollama takes.
_MAX_HEADER_BYTES = 1 << 20


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) → (host, port); an empty host is loopback."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class Proxy:
    """The listener, the request table and the router; see the module docstring."""

    def __init__(
        self,
        listen: str,
        servers: Sequence[ServerView] | str,
        *,
        options: Callable[[], ProxyOptions],
        publish: Publish,
        render_metrics: Callable[[], str],
        server_state: Callable[[], Snapshot] | None = None,
        wait_state: WaitState | None = None,
        on_output: Callable[[str], None] | None = None,
        saw_rate: Callable[[str, float, int], None] = lambda model, tokens_per_second, n: None,
        server: str = "default",
    ) -> None:
        """``servers``: the views, in the config's order; or one server's ``base_url``,
        with its ``server_state``, ``wait_state``, ``on_output`` and ``saw_rate``
        (named ``server``)."""
        if isinstance(servers, str):
            assert server_state is not None and wait_state is not None and on_output is not None
            servers = [
                ServerLink(server, servers, server_state, wait_state, on_output, saw_rate=saw_rate)
            ]
        self.listen = listen
        self.options = options
        self.render_metrics = render_metrics
        self.table = RequestTable(publish, server=servers[0].name)
        self.router = Router(servers, self.table.in_flight)
        self.forwarder = Forwarder(self.router, self.table, options)
        self.address: tuple[str, int] | None = None  # bound (host, port), once running
        self._tg: anyio.abc.TaskGroup | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Callable[[], Settings],
        *,
        publish: Publish,
        servers: Sequence[ServerView] | None = None,
        server_state: Callable[[], Snapshot] | None = None,
        wait_state: WaitState | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> Proxy | None:
        """The daemon's proxy as `[proxy]` configures it; None when ``listen`` is off.

        ``servers`` (several servers), else one server at ``[ollama] base_url``
        from ``server_state``, ``wait_state`` and ``on_output``. ``settings`` is
        read per request, so a reload's hold, drain and retry apply at once
        (``listen`` and the servers' addresses wait for a restart of n3d).
        """
        first = settings()
        if not first.proxy.listen:
            return None

        def options() -> ProxyOptions:
            p = settings().proxy
            return ProxyOptions(p.hold_timeout_s, p.drain_timeout_s, p.retry)

        return cls(
            first.proxy.listen,
            first.ollama.base_url if servers is None else servers,
            options=options,
            publish=publish,
            render_metrics=render_prometheus,
            server_state=server_state,
            wait_state=wait_state,
            on_output=on_output,
        )

    # -- what the daemon and the API use -------------------------------------------

    def requests(self) -> list[RequestRecord]:
        """The requests in flight (held, sent or streaming), oldest first."""
        return list(self.table.records.values())

    def cancel(self, request_id: str) -> bool:
        """End one request on both sides; False when no such request is in flight."""
        return self.table.cancel(request_id)

    async def drain(self, deadline_s: float | None = None, *, server: str | None = None) -> None:
        """Before a planned stop or restart: hold new requests, wait for those in flight.

        Of ``server`` (every server when None: n3d's own shutdown). Bounded by
        ``deadline_s`` (default ``[proxy] drain_timeout``). Requests that arrive
        meanwhile for that server wait and go to it once it is back; others go
        to the other servers.
        """
        timeout_s = self.options().drain_timeout_s if deadline_s is None else deadline_s
        lanes = self.router.lanes_named(server)
        in_flight = self.table.in_flight(server)
        named = {} if server is None else {"server": server}
        log.info("proxy.draining", in_flight=in_flight, drain_timeout_s=timeout_s, **named)
        for lane in lanes:
            lane.gate.close()
        if in_flight and math.isfinite(timeout_s):
            with anyio.move_on_after(timeout_s):
                await self.table.idle(server)
        if self.table.in_flight(server):
            log.warning(
                "proxy.drain_timeout",
                in_flight=self.table.in_flight(server),
                detail="requests still in flight go down with the server",
                **named,
            )
        if self._tg is not None:
            for lane in lanes:
                self._tg.start_soon(lane.gate.release_later, timeout_s + 5.0)

    # -- the listener --------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ready once the port is bound."""
        host, port = split_listen(self.listen)
        server = web.Server(
            self._handle,
            handler_cancellation=True,  # a client that leaves ends its upstream request
            max_line_size=_MAX_HEADER_BYTES,
            max_field_size=_MAX_HEADER_BYTES,
            access_log=None,
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        await self.forwarder.open()
        try:
            site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {self.listen}: {exc.strerror or exc}; is another "
                    "server (Ollama itself?) on that port? See docs/proxy.md",
                    key="proxy.listen",
                ) from None
            self.address = _bound(site)
            log.info("proxy.listening", listen=f"{host}:{self.address[1]}")
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                await runner.cleanup()  # stop accepting, close connections
                await self.forwarder.close()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/metrics" and request.method in ("GET", "HEAD"):
            return await self._metrics()
        return await self.forwarder.handle(request)

    async def _metrics(self) -> web.Response:
        text = await asyncio.to_thread(self.render_metrics)  # sorting reservoirs: off the loop
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def _bound(site: web.TCPSite) -> tuple[str, int]:
    server: Any = site._server  # aiohttp keeps the asyncio server here; only to read the port
    sock: socket.socket = server.sockets[0]
    host, port = sock.getsockname()[:2]
    return str(host), int(port)
