"""The JSON-RPC server on the control socket: accept, check the peer, serve, broadcast.

:meth:`RpcServer.run` opens the socket (:mod:`n3d.rpc.listener`), reports
``task_status.started(server)`` once connections are accepted, and serves until
cancelled; then it stops accepting, cancels every connection and unlinks the
socket if it is still ours. Shutdown drains first (:meth:`RpcServer.drain`): the
socket stops accepting and is removed, each connection stops reading and answers
what it has read, and drain returns once every connection has closed; the caller
bounds that with a deadline, then cancels :meth:`RpcServer.run`.

Each accepted connection is checked before anything is read from it:

- a peer with another uid (root aside) is closed without a word and logged
  ``rpc.peer_refused`` (``peer_credentials`` is injectable so tests can play a
  stranger without root);
- at ``max_connections``, the connection idle longest makes room, if it has
  been idle at least ``evict_idle_after_s`` (:func:`~n3d.rpc.bounds.longest_idle`):
  it gets ``-32000 Server busy`` (``id: null``) and is closed, logged
  ``rpc.evicted`` with its pid. Idle means no call in flight, no frame read or
  half-read, no reply unread, and no event subscription: a connection with any
  of these is never evicted. So a leaking client (an editor plugin that opens
  connections and forgets them) cannot lock n3ctl out for longer than that;
- when no connection can make room the newcomer gets ``-32000 Server busy`` in
  its own framing (for the id of its first request when that arrives within a
  second) and is closed; at most ``_MAX_REFUSING`` such goodbyes run at once,
  the rest are closed at once.

Accepting is :class:`~n3d.rpc.listener.Listener`'s; each connection an asyncio
protocol (:mod:`n3d.rpc.connection` says why); a "server busy" goodbye an
``anyio.abc.SocketStream.from_socket`` (a transport too). Not anyio's UNIX
listener and streams: in anyio 4.16 a wait cancelled in the same loop pass as its
socket became ready still errs in a loop callback (tests/rpc/test_transport.py).

Events: :meth:`broadcast` sends the notification ``event {topic, ...payload}`` to
every connection subscribed to ``topic``; handlers subscribe their connection
through ``ctx.subscribe(topics)`` (see :class:`~n3d.rpc.dispatch.Context`).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import structlog

from n3d.jsonrpc.protocol import encode, notification
from n3d.rpc.bounds import Limits, longest_idle
from n3d.rpc.busy import say_busy
from n3d.rpc.connection import Connection
from n3d.rpc.dispatch import MethodTable
from n3d.rpc.listener import BoundSocket, Listener, peer_credentials
from n3d.trust import trusted_uid

__all__ = ["PeerCredentials", "RpcServer", "serve"]

log = structlog.get_logger(__name__)

PeerCredentials = Callable[[socket.socket], tuple[int | None, int | None]]
_MAX_REFUSING = 32
# Long enough that a burst of newcomers never evicts itself (they all arrive within
# a second or two) and that a client between two calls is not taken for a leak;
# short enough that n3ctl is not locked out for long by a leaking client.
EVICT_IDLE_AFTER_S = 10.0


class RpcServer:
    """Serves a :class:`MethodTable` on a Unix socket; see the module docstring."""

    def __init__(
        self,
        path: Path | str,
        table: MethodTable,
        *,
        max_message_bytes: int = 1_048_576,
        max_connections: int = 256,
        frame_timeout_s: float = 10.0,
        max_outgoing_bytes: int = 8 * 1_048_576,
        max_inflight: int = 64,
        evict_idle_after_s: float = EVICT_IDLE_AFTER_S,
        env: Mapping[str, str] | None = None,
        peer_credentials: PeerCredentials = peer_credentials,
    ) -> None:
        self.path = Path(path)
        self.table = table
        self.max_connections = max_connections
        self.evict_idle_after_s = evict_idle_after_s
        self.limits = Limits(max_message_bytes, frame_timeout_s, max_outgoing_bytes, max_inflight)
        self._listener = Listener(self.path, env)
        self._peer_credentials = peer_credentials
        self._ids = itertools.count(1)
        self._connections: dict[int, Connection] = {}
        self._subscribers: dict[int, frozenset[str] | None] = {}
        self._refusing = 0
        self._accepting: anyio.CancelScope | None = None  # made in run(): needs the event loop
        self._draining = False
        self._all_closed: anyio.Event | None = None  # set when draining and none are left

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def activated(self) -> bool:
        """True when serving a socket inherited from systemd (never unlinked)."""
        return self._listener.activated

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[RpcServer] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled. Raises AlreadyRunning/PathError before starting.

        Binds first unless :meth:`bind` already did; either way the socket is
        removed (if still ours) and closed when this returns.
        """
        bound = self.bind()
        try:
            async with anyio.create_task_group() as tg:
                log.info("rpc.listening", path=str(self.path), activated=bound.activated)
                task_status.started(self)
                self._accepting = anyio.CancelScope()
                if self._draining:
                    self._accepting.cancel()
                with self._accepting:
                    await self._listener.serve(lambda sock: tg.start_soon(self._handle, sock))
                self.close()  # draining: a new client is refused at once, not left in the backlog
        finally:
            self.close()

    async def drain(self) -> None:
        """Stop accepting; let each connection answer what it has read, then close.

        Returns once every connection has closed, which a call that never
        finishes would postpone forever: the daemon bounds it with a deadline
        and then cancels :meth:`run` (docs/behavior.md, "Shutdown order").
        """
        self._draining = True
        if self._accepting is not None:
            self._accepting.cancel()
        for conn in list(self._connections.values()):
            conn.drain()
        log.info("rpc.draining", connections=len(self._connections))
        while self._connections:
            self._all_closed = anyio.Event()
            await self._all_closed.wait()

    def bind(self) -> BoundSocket:
        """Claim the socket now (idempotent): refuses a live daemon, replaces a stale
        socket, binds 0600. Connections wait in the backlog until :meth:`run` serves.

        The daemon calls this before it starts anything else, so a second n3d on the
        same socket fails before it could touch an Ollama server.
        """
        return self._listener.bind()

    def socket_lost(self) -> bool:
        """Whether the socket file was removed while serving (a ``/tmp`` cleaner took the
        runtime dir, say); never while shutting down, which removes it on purpose."""
        return not self._draining and self._listener.lost()

    def rebind(self) -> None:
        """A fresh socket at the path (after :meth:`socket_lost`); connections already
        open keep working. Raises AlreadyRunning/PathError as :meth:`bind` does."""
        self._listener.rebind()

    def close(self) -> None:
        """Give up the socket: removed if still ours (also one :meth:`run` never served)."""
        self._listener.close()

    def broadcast(self, topic: str, payload: Mapping[str, Any] | None = None) -> int:
        """Send ``event {topic, ...payload}`` to subscribers of ``topic``; returns how many."""
        try:
            body = encode(notification("event", {"topic": topic, **(payload or {})}))
        except ValueError as exc:  # a payload that is not JSON: n3d's bug, not the publisher's end
            log.error("rpc.event_not_json", topic=topic, error=str(exc))
            return 0
        sent = 0
        for cid, topics in list(self._subscribers.items()):
            conn = self._connections.get(cid)
            if conn is not None and (topics is None or topic in topics):
                conn.push(conn.framer.frame(body))
                sent += 1
        return sent

    def subscribe(self, connection_id: int, topics: Iterable[str] | None) -> None:
        """Deliver ``topics`` (None: all) to the connection, replacing earlier topics."""
        if connection_id in self._connections:
            self._subscribers[connection_id] = None if topics is None else frozenset(topics)

    def unsubscribe(self, connection_id: int) -> None:
        self._subscribers.pop(connection_id, None)

    async def _handle(self, sock: socket.socket) -> None:
        if self._draining:  # accepted just before the socket stopped accepting
            sock.close()
            return
        try:
            uid, pid = self._peer_credentials(sock)
        except OSError as exc:
            uid, pid = -1, None
            log.warning("rpc.peer_unknown", error=str(exc))
        if not trusted_uid(uid):
            log.warning("rpc.peer_refused", uid=uid, pid=pid, our_uid=os.geteuid())
            sock.close()
            return
        sock.setblocking(False)
        if len(self._connections) >= self.max_connections and not self._make_room():
            await self._refuse_busy(await anyio.abc.SocketStream.from_socket(sock))
            return
        cid = next(self._ids)
        conn = Connection(cid, sock, self.table, self.limits, self.subscribe, self.unsubscribe)
        conn.peer_pid = pid
        self._connections[cid] = conn
        log.debug("rpc.connected", connection=cid, pid=pid)
        try:
            await conn.serve()
        finally:
            del self._connections[cid]
            self._subscribers.pop(cid, None)
            log.debug("rpc.disconnected", connection=cid)
            if not self._connections and self._all_closed is not None:
                self._all_closed.set()

    def _make_room(self) -> bool:
        """Evict the connection idle longest, if one has been idle long enough."""
        now = time.monotonic()
        idle = (
            (cid, since)
            for cid, conn in self._connections.items()
            if cid not in self._subscribers and (since := conn.idle_since) is not None
        )
        victim = longest_idle(idle, now, self.evict_idle_after_s)
        if victim is None:
            return False
        conn = self._connections[victim]
        idle_s = now - (conn.idle_since or now)
        log.warning(
            "rpc.evicted",
            connection=victim,
            pid=conn.peer_pid,
            idle_s=round(idle_s, 1),
            max_connections=self.max_connections,
        )
        conn.evict(
            f"Server busy: {self.max_connections} connections open; this one, idle for "
            f"{idle_s:.0f} s, is closed to make room for a new one"
        )
        return True

    async def _refuse_busy(self, stream: anyio.abc.SocketStream) -> None:
        """Tell an over-limit client it is refused (at most ``_MAX_REFUSING`` at once)."""
        log.warning("rpc.busy", max_connections=self.max_connections)
        if self._refusing >= _MAX_REFUSING:
            await stream.aclose()
            return
        self._refusing += 1
        try:
            await say_busy(
                stream,
                self.limits.max_message_bytes,
                f"Server busy: {self.max_connections} connections already open; try again later",
            )
        finally:
            self._refusing -= 1


async def serve(
    path: Path | str,
    table: MethodTable,
    *,
    max_message_bytes: int = 1_048_576,
    max_connections: int = 256,
    task_status: anyio.abc.TaskStatus[RpcServer] = anyio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """``RpcServer(path, table, ...).run()``; ``await tg.start(serve, ...)`` gives the server."""
    server = RpcServer(
        path, table, max_message_bytes=max_message_bytes, max_connections=max_connections, **options
    )
    await server.run(task_status=task_status)
