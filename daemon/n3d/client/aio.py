"""An anyio client for n3d's control socket: concurrent calls, progress, events.

::

    async with connect() as conn:                       # N3D_SOCKET, else the default
        print(await conn.call("status"))
        await conn.call("models.pull", {"model": "llama3"}, progress=show)
        await conn.call("events.subscribe", {"topics": ["server.state"]})
        async for method, params in conn.notifications():
            ...

Calls may run concurrently on one connection (matched by id). Cancelling a
waiting :meth:`AsyncConnection.call` sends ``$/cancelRequest`` so the daemon
stops the work too. Errors are the ones of :mod:`n3d.client`: RpcError for a
JSON-RPC error, DaemonUnreachable (and subclasses) when there is no answer, and
its subclass UntrustedSocket for a socket that is not n3d's to trust (the same
checks as the synchronous client, made before a byte is sent). A connection n3d
closed after saying why (evicted while idle at ``max_connections``) makes every
later call raise ClosedByDaemon with n3d's message.

Like :mod:`n3d.client`, this is :class:`n3d.jsonrpc.session.ClientSession` plus
a socket: one task reads and feeds the session, calls write.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from n3d.client.dial import Dialer
from n3d.errors import DaemonUnreachable, N3dError
from n3d.jsonrpc.session import ClientSession

__all__ = ["AsyncConnection", "connect"]

ProgressCallback = Callable[[dict[str, Any]], object]
_NOTIFICATION_BUFFER = 1024  # beyond this, unread notifications are dropped (newest first)
_READ_BYTES = 65536


class AsyncConnection:
    """One connection; create it with :func:`connect`."""

    def __init__(self, path: Path, stream: anyio.abc.SocketStream) -> None:
        self.path = path
        self._stream = stream
        self._session = ClientSession(str(path), token_prefix="n3d-async")
        self._send_lock = anyio.Lock()
        self.dropped_notifications = 0
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](_NOTIFICATION_BUFFER)
        self._note_send: MemoryObjectSendStream[tuple[str, Any]] = send
        self._note_receive: MemoryObjectReceiveStream[tuple[str, Any]] = receive

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | list[Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """Call ``method``; ``progress`` gets each ``$/progress`` value of this call."""
        answered = anyio.Event()
        call, request = self._session.call(
            method, params, progress=progress, on_done=answered.set
        )
        try:
            await self._send(request)
        except BaseException:
            self._session.cancel(call)
            raise
        try:
            await answered.wait()
        except anyio.get_cancelled_exc_class():
            cancel = self._session.cancel(call)
            if cancel is not None:
                # Shielded and bounded; a lost connection is no news to a cancelled caller.
                with anyio.move_on_after(1, shield=True), suppress(N3dError):
                    await self._send(cancel)
            raise
        return call.result()

    async def notify(
        self, method: str, params: Mapping[str, Any] | list[Any] | None = None
    ) -> None:
        await self._send(self._session.notify(method, params))

    async def notifications(self) -> AsyncIterator[tuple[str, Any]]:
        """``(method, params)`` of each server notification (events, unclaimed progress)."""
        async for item in self._note_receive:
            yield item

    async def _send(self, data: bytes) -> None:
        try:
            async with self._send_lock:
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise self._session.lost(f"connection lost ({exc})") from exc

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._stream.receive(_READ_BYTES)
                for note in self._session.feed(data):
                    try:
                        self._note_send.send_nowait(note)
                    except anyio.WouldBlock:
                        self.dropped_notifications += 1
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        except DaemonUnreachable:
            pass  # a reply that could not be read: the session has ended
        finally:
            self._session.lost("the daemon closed the connection")  # wakes every waiting call
            self._note_send.close()


async def _open_stream(path: str | None, timeout_s: float) -> tuple[Path, anyio.abc.SocketStream]:
    # A stdlib socket wrapped as an asyncio-transport stream rather than
    # anyio.connect_unix: see n3d.rpc.server for the cancellation race this avoids.
    dialer = Dialer(path, timeout_s, blocking=False)
    while (pause := dialer.attempt()) is not None:  # noqa: ASYNC110 - no event says a backlog drained
        await anyio.sleep(pause)
    return Path(dialer.path), await anyio.abc.SocketStream.from_socket(dialer.take())


@asynccontextmanager
async def connect(
    path: Path | str | None = None, *, timeout_s: float = 5.0
) -> AsyncIterator[AsyncConnection]:
    """Connect to n3d (``N3D_SOCKET`` or the default path); raises DaemonUnreachable.

    ``timeout_s`` bounds the connect only (a full backlog makes Unix connects fail
    with EAGAIN at once, so they are retried until then); calls have no timeout of
    their own: wrap them in ``anyio.fail_after``.
    """
    where, stream = await _open_stream(os.fspath(path) if path is not None else None, timeout_s)
    async with stream, anyio.create_task_group() as tg:
        conn = AsyncConnection(where, stream)
        tg.start_soon(conn._read_loop)
        try:
            yield conn
        finally:
            tg.cancel_scope.cancel()
            conn._note_receive.close()
