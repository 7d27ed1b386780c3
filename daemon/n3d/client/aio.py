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
checks as the synchronous client, made before a byte is sent).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from n3d.client import (
    ConnectionLost,
    DaemonNotRunning,
    RpcError,
    UntrustedSocket,
    _connect_error,
    check_peer,
    check_socket_dir,
    moved_socket,
)
from n3d.paths import socket_path

__all__ = ["AsyncConnection", "connect"]

ProgressCallback = Callable[[dict[str, Any]], object]
_NOTIFICATION_BUFFER = 1024  # beyond this, unread notifications are dropped (newest first)


class _Pending:
    __slots__ = ("done", "message")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.message: dict[str, Any] | None = None


class AsyncConnection:
    """One connection; create it with :func:`connect`."""

    def __init__(self, path: Path, stream: anyio.abc.SocketStream) -> None:
        self.path = path
        self._stream = stream
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._progress: dict[str, ProgressCallback] = {}
        self._send_lock = anyio.Lock()
        self._lost: str | None = None
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
        request_id = next(self._ids)
        token = f"n3d-async-{request_id}"
        if progress is not None:
            if isinstance(params, list):
                raise ValueError("progress needs named params (a mapping), not a list")
            params = {**(params or {}), "workDoneToken": token}
            self._progress[token] = progress
        pending = self._pending[request_id] = _Pending()
        try:
            await self._send(
                {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
            )
            try:
                await pending.done.wait()
            except anyio.get_cancelled_exc_class():
                with anyio.move_on_after(1, shield=True):
                    await self.notify("$/cancelRequest", {"id": request_id})
                raise
        finally:
            self._pending.pop(request_id, None)
            self._progress.pop(token, None)
        message = pending.message
        if message is None:
            raise ConnectionLost(self.path, self._lost or "the daemon closed the connection")
        if "error" in message:
            err = message["error"]
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return message.get("result")

    async def notify(
        self, method: str, params: Mapping[str, Any] | list[Any] | None = None
    ) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def notifications(self) -> AsyncIterator[tuple[str, Any]]:
        """``(method, params)`` of each server notification (events, unclaimed progress)."""
        async for item in self._note_receive:
            yield item

    async def _send(self, message: dict[str, Any]) -> None:
        if self._lost is not None:
            raise ConnectionLost(self.path, self._lost)
        if message.get("params") is None:
            message.pop("params", None)
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            async with self._send_lock:
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise ConnectionLost(self.path, f"connection lost ({exc})") from exc

    async def _read_loop(self) -> None:
        buffer = bytearray()
        try:
            while True:
                buffer += await self._stream.receive(65536)
                *lines, rest = buffer.split(b"\n")
                buffer = bytearray(rest)
                for line in lines:
                    if line.strip():
                        self._dispatch(json.loads(line))
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._lost = "the daemon closed the connection"
        except ValueError:
            self._lost = "unreadable reply from the daemon"
        finally:
            self._note_send.close()
            for pending in self._pending.values():
                pending.done.set()

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method is None:
            pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if pending is not None:
                pending.message = message
                pending.done.set()
            return
        params = message.get("params")
        if method == "$/progress" and isinstance(params, dict):
            callback = self._progress.get(params.get("token"))  # type: ignore[arg-type]
            if callback is not None:
                callback(params.get("value", {}))
                return
        try:
            self._note_send.send_nowait((method, params))
        except anyio.WouldBlock:
            self.dropped_notifications += 1


async def _open_stream(path: Path, timeout_s: float) -> anyio.abc.SocketStream:
    # A stdlib socket wrapped as an asyncio-transport stream rather than
    # anyio.connect_unix: see n3d.rpc.server for the cancellation race this avoids.
    check_socket_dir(str(path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    deadline = anyio.current_time() + timeout_s
    try:
        while True:
            try:
                sock.connect(str(path))
                break
            except BlockingIOError:
                if anyio.current_time() >= deadline:
                    raise TimeoutError("the daemon's connection backlog stayed full") from None
                await anyio.sleep(0.01)
    except OSError as exc:
        sock.close()
        raise _connect_error(str(path), exc) from exc
    try:
        check_peer(sock, str(path))
    except UntrustedSocket:
        sock.close()
        raise
    return await anyio.abc.SocketStream.from_socket(sock)


@asynccontextmanager
async def connect(
    path: Path | str | None = None, *, timeout_s: float = 5.0
) -> AsyncIterator[AsyncConnection]:
    """Connect to n3d (``N3D_SOCKET`` or the default path); raises DaemonUnreachable.

    ``timeout_s`` bounds the connect only (a full backlog makes Unix connects fail
    with EAGAIN at once, so they are retried until then); calls have no timeout of
    their own: wrap them in ``anyio.fail_after``.
    """
    where = Path(path if path is not None else socket_path("", os.environ))
    try:
        stream = await _open_stream(where, timeout_s)
    except DaemonNotRunning:
        moved = moved_socket(str(where), explicit=path is not None)
        if not moved:
            raise
        where = Path(moved)
        stream = await _open_stream(where, timeout_s)
    async with stream, anyio.create_task_group() as tg:
        conn = AsyncConnection(where, stream)
        tg.start_soon(conn._read_loop)
        try:
            yield conn
        finally:
            tg.cancel_scope.cancel()
            conn._note_receive.close()
