"""One client connection: read frames, run requests, write replies, within bounds.

- Reading: bytes go through the connection's :class:`~n3d.rpc.framing.Framer`.
  A frame that has started must complete within ``frame_timeout_s`` (a slow
  trickle does not reset the clock), else ``-32700`` and close. A fatal framing
  error is answered ``-32700`` and the connection closed.
- Running: each frame runs in its own task, at most ``max_inflight`` at once;
  beyond that the connection stops reading (the kernel buffer then pushes back
  on the client). ``$/cancelRequest {id}`` is handled as it is read, so it is
  never stuck behind the work it cancels, and the cancelled request is answered
  ``-32800 Request cancelled``.
- Writing: one writer task drains a queue bounded to ``max_outgoing_bytes``; a
  client that does not read its replies fills it and is dropped, so it cannot
  grow the daemon's memory.
- End of input: a half-closed client (``socat`` after its stdin ends) still gets
  the answers to what it sent; a client that hung up gets nothing and its
  handlers are cancelled at once (checked with ``poll`` for ``POLLHUP``).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import structlog

from n3d.rpc.dispatch import MethodTable
from n3d.rpc.framing import FrameError, Framer
from n3d.rpc.listener import peer_hung_up
from n3d.rpc.protocol import (
    PARSE_ERROR,
    REQUEST_CANCELLED,
    Incoming,
    JsonObject,
    Request,
    RequestId,
    encode,
    error_response,
    parse,
    result_response,
)

__all__ = ["Connection", "Limits"]

log = structlog.get_logger(__name__)

_READ_CHUNK = 65536
_FLUSH_TIMEOUT_S = 2.0  # writing the last replies of a closing connection
_HANGUP_POLL_S = 0.1  # how often a half-closed connection checks whether the peer left


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds (bytes, seconds, counts)."""

    max_message_bytes: int = 1_048_576
    frame_timeout_s: float = 10.0
    max_outgoing_bytes: int = 8 * 1_048_576
    max_inflight: int = 64


class Connection:
    """Implements :class:`~n3d.rpc.dispatch.Session` for the handlers it runs."""

    def __init__(
        self,
        connection_id: int,
        stream: anyio.abc.SocketStream,
        table: MethodTable,
        limits: Limits,
        on_subscribe: Callable[[int, frozenset[str] | None], None],
        on_unsubscribe: Callable[[int], None],
    ) -> None:
        self.id = connection_id
        self.framer = Framer(limits.max_message_bytes)
        self._stream = stream
        self._table = table
        self._limits = limits
        self._on_subscribe, self._on_unsubscribe = on_subscribe, on_unsubscribe
        self._outbox: deque[bytes] = deque()
        self._out_bytes = 0
        self._wake = anyio.Event()
        self._flushed = anyio.Event()
        self._closing = False
        self._fatal = False
        self._scope = anyio.CancelScope()
        self._inflight: dict[Any, anyio.CancelScope] = {}
        self._running = 0
        self._idle = anyio.Event()

    # -- Session ------------------------------------------------------------------

    def send(self, message: JsonObject | list[Any]) -> None:
        self.push(self.framer.frame(encode(message)))

    def subscribe(self, topics: frozenset[str] | None) -> None:
        self._on_subscribe(self.id, topics)

    def unsubscribe(self) -> None:
        self._on_unsubscribe(self.id)

    def push(self, data: bytes) -> None:
        """Queue framed bytes; over ``max_outgoing_bytes`` the connection is dropped."""
        if self._scope.cancel_called:
            return
        if self._out_bytes and self._out_bytes + len(data) > self._limits.max_outgoing_bytes:
            log.warning("rpc.client_too_slow", connection=self.id, queued_bytes=self._out_bytes)
            self.abort()
            return
        self._outbox.append(data)
        self._out_bytes += len(data)
        self._wake.set()

    def abort(self) -> None:
        """Drop the connection now: stop reading and writing, cancel its handlers."""
        self._closing = True
        self._scope.cancel()

    # -- lifecycle ----------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until the client leaves or breaks a rule; never raises but cancellation."""
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._write_loop)
                    await self._read_loop(tg)
                    await self._finish_inflight()
                    self._closing = True
                    self._wake.set()
                    with anyio.move_on_after(_FLUSH_TIMEOUT_S):
                        await self._flushed.wait()
                        if self._fatal:
                            await self._linger()
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()

    async def _read_loop(self, tg: anyio.abc.TaskGroup) -> None:
        partial_since: float | None = None
        timeout_s = self._limits.frame_timeout_s
        while True:
            try:
                if partial_since is None:  # between frames: no clock (editors idle for hours)
                    data = await self._stream.receive(_READ_CHUNK)
                else:
                    with anyio.fail_after(partial_since + timeout_s - anyio.current_time()):
                        data = await self._stream.receive(_READ_CHUNK)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            except TimeoutError:
                log.info("rpc.frame_timeout", connection=self.id, timeout_s=timeout_s)
                self._fatal = True
                message = f"Parse error: message incomplete after {timeout_s:g} s"
                self.send(error_response(None, PARSE_ERROR, message))
                return
            completed = False
            for item in self.framer.feed(data):
                if isinstance(item, FrameError):
                    log.info("rpc.frame_error", connection=self.id, reason=item.message)
                    self._fatal = True
                    self.send(error_response(None, PARSE_ERROR, item.message))
                    return
                completed = True
                await self._on_frame(tg, item)
            if not self.framer.pending:
                partial_since = None
            elif completed or partial_since is None:
                partial_since = anyio.current_time()

    async def _on_frame(self, tg: anyio.abc.TaskGroup, body: bytes) -> None:
        incoming = parse(body)
        if not incoming.requests:
            reply = incoming.reply()
            if reply is not None:
                self.send(reply)
            return
        if not incoming.batch and incoming.requests[0].method == "$/cancelRequest":
            reply = incoming.reply([self._cancel(incoming.requests[0])])
            if reply is not None:
                self.send(reply)
            return
        while self._running >= self._limits.max_inflight:
            # Stop reading until a slot frees up: the kernel buffer then pushes back.
            self._idle = anyio.Event()
            await self._idle.wait()
        self._running += 1
        tg.start_soon(self._run_frame, incoming)

    async def _run_frame(self, incoming: Incoming) -> None:
        try:
            if len(incoming.requests) == 1:
                responses = [await self._run_one(incoming.requests[0])]
            else:
                responses = await self._run_batch(incoming.requests)
            reply = incoming.reply(responses)
            if reply is not None:
                self.send(reply)
        finally:
            self._running -= 1
            self._idle.set()  # wakes the reader waiting for a slot, or the final drain

    async def _run_batch(self, requests: list[Request]) -> list[JsonObject | None]:
        # Members run concurrently (the spec allows any order) but within the same
        # in-flight bound as separate frames, so a 50 000-member batch is not 50 000 tasks.
        responses: list[JsonObject | None] = [None] * len(requests)
        limiter = anyio.CapacityLimiter(self._limits.max_inflight)

        async def one(index: int, request: Request) -> None:
            async with limiter:
                responses[index] = await self._run_one(request)

        async with anyio.create_task_group() as tg:
            for index, request in enumerate(requests):
                tg.start_soon(one, index, request)
        return responses

    async def _run_one(self, request: Request) -> JsonObject | None:
        if request.method == "$/cancelRequest":
            return self._cancel(request)
        if request.is_notification:
            return await self._table.call(self, request)
        scope = anyio.CancelScope()
        key: RequestId = request.id
        self._inflight[key] = scope
        response: JsonObject | None = None
        try:
            with scope:
                response = await self._table.call(self, request)
        finally:
            if self._inflight.get(key) is scope:
                del self._inflight[key]
        if scope.cancelled_caught:
            return error_response(request.id, REQUEST_CANCELLED)
        return response

    def _cancel(self, request: Request) -> JsonObject | None:
        params = request.params
        target = params.get("id") if isinstance(params, dict) else None
        scope = self._inflight.get(target) if isinstance(target, str | int | float) else None
        if scope is not None:
            scope.cancel()
        # Also usable as a request (not LSP's way, but harmless): says whether it hit.
        return (
            None
            if request.is_notification
            else result_response(request.id, {"cancelled": scope is not None})
        )

    async def _finish_inflight(self) -> None:
        """After input ends: let in-flight work answer, unless the peer has left."""
        while self._running:
            if peer_hung_up(self._stream.extra(anyio.abc.SocketAttribute.raw_socket)):
                self.abort()
                return
            self._idle = anyio.Event()
            with anyio.move_on_after(_HANGUP_POLL_S):
                await self._idle.wait()

    async def _linger(self) -> None:
        """After a fatal error reply: close our side, then discard input for a moment.

        Closing with unread input makes the kernel reset the connection, and the
        client, still sending its oversized frame, would lose the error reply.
        Bounded by the caller's flush timeout.
        """
        gone = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
        with contextlib.suppress(*gone):
            await self._stream.send_eof()
            while True:
                await self._stream.receive(_READ_CHUNK)

    async def _write_loop(self) -> None:
        try:
            while True:
                if self._outbox:
                    data = b"".join(self._outbox)
                    self._outbox.clear()
                    self._out_bytes = 0
                    await self._stream.send(data)
                elif self._closing:
                    self._flushed.set()
                    return
                else:
                    self._wake = anyio.Event()
                    await self._wake.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.abort()  # the peer is gone: nothing it asked for matters any more
