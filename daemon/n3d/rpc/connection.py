"""One client connection: read frames, hand them to its runner, write replies, within bounds.

- Reading: bytes go through the connection's :class:`~n3d.jsonrpc.framing.Framer`.
  A frame that has started must complete within ``frame_timeout_s`` (a slow
  trickle does not reset the clock), else ``-32700`` and close. A fatal framing
  error is answered ``-32700`` and the connection closed.
- Running: frames with requests go to the connection's
  :class:`~n3d.rpc.running.Runner` (worker, in-flight table, cancellation). At
  most ``max_inflight`` calls run at once, batch members included, and one
  batch at a time; beyond that the connection stops reading (the kernel buffer
  then pushes back on the client).
  ``$/cancelRequest {id}`` and ``window/workDoneProgress/cancel {token}`` are
  handled as they are read, so they are never stuck behind the work they cancel.
- Writing: replies go to the transport, which sends at once what the kernel
  takes and buffers the rest. Every reply is checked against
  ``max_outgoing_bytes`` *before* it is buffered, together with what is still
  unread and what a batch has assembled (:class:`~n3d.rpc.bounds.ReplyBudget`):
  past it the client gets ``-32000`` and the connection is closed, its handlers
  cancelled, so no client can grow the daemon's memory, by not reading or by
  asking for a huge reply.
- End of input: a half-closed client (``socat`` after its stdin ends) still gets
  the answers to what it sent; a client that hung up gets nothing and its
  handlers are cancelled at once (checked with ``poll`` for ``POLLHUP``). At
  shutdown (:meth:`Connection.drain`) input ends the same way: what was read is
  answered, then the connection closes.

Why an asyncio protocol: the event loop keeps the socket registered and hands
each chunk straight to :meth:`Connection.data_received`, which frames, parses and
dispatches it without a task switch; only the handlers run in tasks. A reader
task waiting on the socket (a stream's ``receive``, or ``anyio.wait_readable``)
costs a registration, a wake-up and an unregistration for every request, which
was half the time of a small call. n3d runs on anyio's asyncio backend.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from n3d.jsonrpc.framing import FrameError, Framer
from n3d.jsonrpc.protocol import (
    PARSE_ERROR,
    SERVER_BUSY,
    Incoming,
    JsonObject,
    RequestId,
    encode,
    error_response,
    parse,
)
from n3d.rpc.bounds import ReplyBudget
from n3d.rpc.dispatch import MethodTable
from n3d.rpc.listener import peer_hung_up
from n3d.rpc.running import CANCEL_METHODS, Runner

__all__ = ["Connection", "Limits"]

log = structlog.get_logger(__name__)

_FLUSH_TIMEOUT_S = 2.0  # writing the last replies of a closing connection
_HANGUP_POLL_S = 0.1  # how often a half-closed connection checks whether the peer left


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds (bytes, seconds, counts)."""

    max_message_bytes: int = 1_048_576
    frame_timeout_s: float = 10.0
    max_outgoing_bytes: int = 8 * 1_048_576
    max_inflight: int = 64


class Connection(asyncio.Protocol):
    """Implements :class:`~n3d.rpc.dispatch.Session` for the handlers it runs.

    :meth:`serve` owns ``sock`` (connected, non-blocking) and closes it when it
    returns; the ``asyncio.Protocol`` methods are the event loop's side of it.
    """

    def __init__(
        self,
        connection_id: int,
        sock: socket.socket,
        table: MethodTable,
        limits: Limits,
        on_subscribe: Callable[[int, frozenset[str] | None], None],
        on_unsubscribe: Callable[[int], None],
    ) -> None:
        self.id = connection_id
        self.peer_pid: int | None = None  # for the logs: which process a connection is
        self.framer = Framer(limits.max_message_bytes)
        self._sock = sock
        self._limits = limits
        self._budget = ReplyBudget(limits.max_outgoing_bytes)
        self._runner = Runner(self, table, limits.max_inflight, self, self._frame_done)
        self._on_subscribe, self._on_unsubscribe = on_subscribe, on_unsubscribe
        self._transport: asyncio.Transport | None = None
        self._scope = anyio.CancelScope()
        # Input: complete frames not yet dispatched, and one parsed frame waiting
        # for a slot (reading is paused meanwhile).
        self._frames: deque[bytes | FrameError] = deque()
        self._waiting: Incoming | None = None
        self._paused = False
        self._frame_timer: asyncio.TimerHandle | None = None
        self._input_done = False  # EOF, hang-up or a fatal error: nothing more is read
        self._input_ended = anyio.Event()  # set along with _input_done, for serve to wait on
        self._peer_eof = anyio.Event()  # the client sent EOF or the connection is gone
        # Output.
        self._write_paused = False
        self._drained = anyio.Event()
        self._closing = False
        self._closed = False
        self._fatal = False
        self._abandon = False  # over the reply cap: in-flight work is cancelled, not awaited
        self._slot_freed: anyio.Event | None = None  # set while serve waits for the last ones
        self._last_active = time.monotonic()  # bytes read or a frame answered (for eviction)

    # -- Session ------------------------------------------------------------------

    def send(self, message: JsonObject | list[Any]) -> None:
        try:
            body = encode(message)
        except ValueError as exc:
            # Only a notification can fail (a reply falls back to an error): dropped
            # and logged, never raised into the pull or handler that reported it.
            log.error("rpc.notification_not_json", connection=self.id, error=str(exc))
            return
        reply_to: RequestId = None
        if isinstance(message, dict) and "method" not in message:
            reply_to = message.get("id")  # a response: an over-cap error answers its id
        self._write(self.framer.frame(body), reply_to)

    def subscribe(self, topics: frozenset[str] | None) -> None:
        self._on_subscribe(self.id, topics)

    def unsubscribe(self) -> None:
        self._on_unsubscribe(self.id)

    def push(self, data: bytes) -> None:
        """Send framed bytes (an event); never blocks. Past the reply cap: see :meth:`_write`."""
        self._write(data, None)

    # -- Outbox (the runner's batches) ----------------------------------------------

    def send_body(self, body: bytearray) -> None:
        self._write(self.framer.frame_in_place(body), None)

    def hold(self, size: int) -> bool:
        transport = self._transport
        if transport is None or self._closed or self._abandon:
            return False
        unread = transport.get_write_buffer_size()
        if self._budget.hold(unread, size):
            return True
        self._over_cap(size, unread, None)
        return False

    def release(self, size: int) -> None:
        self._budget.release(size)

    # -- output -----------------------------------------------------------------------

    def _write(self, data: bytes | bytearray, reply_to: RequestId) -> None:
        """Write framed bytes, checked against the reply cap before they are buffered."""
        transport = self._transport
        if transport is None or self._closed or self._scope.cancel_called:
            return
        if transport.is_closing():
            return  # lost: connection_lost is on its way and will abort
        unread = transport.get_write_buffer_size()
        if not self._budget.admits(unread, len(data)):
            self._over_cap(len(data), unread, reply_to)
            return
        transport.write(data)

    def _over_cap(self, size: int, unread: int, reply_to: RequestId) -> None:
        """A reply that would pass the cap: -32000, then close; its work is abandoned."""
        cap, assembling = self._budget.cap, self._budget.assembling
        if unread:
            log.warning("rpc.client_too_slow", connection=self.id, queued_bytes=unread, cap=cap)
        else:
            log.warning("rpc.reply_too_large", connection=self.id, reply_bytes=assembling + size,
                        cap=cap)
        message = (
            f"Server busy: the replies would leave {unread + assembling + size} bytes unread on "
            f"this connection, over its cap of {cap}; closing it"
        )
        self._end_with(error_response(reply_to, SERVER_BUSY, message), abandon=True)

    def abort(self) -> None:
        """Drop the connection now: stop reading and writing, cancel its handlers."""
        self._closing = True
        self._scope.cancel()

    @property
    def idle_since(self) -> float | None:
        """When it last read a byte or answered a frame (``time.monotonic``), if it has
        nothing to do now: no call in flight, no frame read or half-read, no reply
        unread, not closing. None otherwise: such a connection is never evicted."""
        transport = self._transport
        if (
            transport is None
            or self._fatal
            or self._input_done
            or self._closing
            or self._runner.running
            or self._waiting is not None
            or self._frames
            or self.framer.pending
            or transport.get_write_buffer_size()
        ):
            return None
        return self._last_active

    def drain(self) -> None:
        """Shutdown: read nothing more; what was read is run and answered, then close."""
        self._end_input()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def evict(self, message: str) -> None:
        """Close an idle connection to make room: ``-32000`` with ``message``, then close."""
        self._end_with(error_response(None, SERVER_BUSY, message), abandon=True)

    # -- lifecycle ----------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until the client leaves or breaks a rule; never raises but cancellation."""
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._runner.start_worker(tg)
                    loop = asyncio.get_running_loop()
                    await loop.connect_accepted_socket(lambda: self, self._sock)
                    await self._input_ended.wait()
                    await self._finish_inflight()
                    self._closing = True
                    tg.cancel_scope.cancel()  # the idle worker, or an abandoned connection's work
                with anyio.move_on_after(_FLUSH_TIMEOUT_S):
                    if self._write_paused:
                        await self._drained.wait()
                    if self._fatal:
                        await self._linger()
        finally:
            self._closed = True
            self._end_input()
            if self._transport is not None:
                self._transport.abort()
            else:
                self._sock.close()

    async def _finish_inflight(self) -> None:
        """After input ends: let in-flight work answer, unless the peer has left."""
        while self._runner.running and not self._abandon:
            if peer_hung_up(self._sock):
                self.abort()
                return
            self._slot_freed = anyio.Event()
            with anyio.move_on_after(_HANGUP_POLL_S):
                await self._slot_freed.wait()

    async def _linger(self) -> None:
        """After a fatal error reply: close our side, then discard input for a moment.

        Closing with unread input makes the kernel reset the connection, and the
        client, still sending its oversized frame, would lose the error reply.
        Bounded by the caller's flush timeout.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._closed = True  # nothing may be written after the EOF
        transport.write_eof()
        transport.resume_reading()  # data_received discards it: input has ended
        await self._peer_eof.wait()

    # -- asyncio.Protocol: the event loop calls these --------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # Told when the kernel has not taken everything (pause) and when it has (resume).
        transport.set_write_buffer_limits(high=0)

    def data_received(self, data: bytes) -> None:
        if self._input_done:
            return  # after a fatal error: discarded while lingering
        self._last_active = time.monotonic()
        items = self.framer.feed(data)
        self._frames.extend(items)
        self._dispatch()
        if not self._input_done and not self._paused:
            self._watch_partial_frame(completed=bool(items))

    def eof_received(self) -> bool:
        self._peer_eof.set()
        self._end_input()
        return True  # keep the transport: a half-closed client still gets its answers

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_eof.set()
        self._drained.set()
        self._end_input()
        if not self._closed:
            self.abort()  # the peer is gone: nothing it asked for matters any more

    def pause_writing(self) -> None:
        self._write_paused = True
        self._drained = anyio.Event()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._drained.set()

    # -- input ----------------------------------------------------------------------

    def _end_input(self) -> None:
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
        self._input_done = True
        self._input_ended.set()

    def _fail(self, message: str) -> None:
        """A fatal framing error: answer -32700, stop reading, then close (see serve)."""
        self._end_with(error_response(None, PARSE_ERROR, message), abandon=False)

    def _end_with(self, error: JsonObject, *, abandon: bool) -> None:
        """Send ``error``, stop reading, then close (see serve); with ``abandon``,
        nothing more is run or written: the work in flight is cancelled unanswered."""
        transport = self._transport
        if not self._fatal:  # the first error is the one the client is told
            self._fatal = True
            self._frames.clear()
            if transport is not None and not self._closed and not transport.is_closing():
                transport.write(self.framer.frame(encode(error)))  # small: past the cap on purpose
            self._end_input()
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
        if abandon and not self._abandon:
            self._abandon = self._closed = True
            self._waiting = None
            if self._slot_freed is not None:
                self._slot_freed.set()  # serve stops waiting for the work in flight

    def _watch_partial_frame(self, *, completed: bool) -> None:
        """Arm the partial-frame clock at a frame's first byte; a trickle does not reset it."""
        if not self.framer.pending:
            if self._frame_timer is not None:
                self._frame_timer.cancel()
                self._frame_timer = None
        elif completed or self._frame_timer is None:
            if self._frame_timer is not None:
                self._frame_timer.cancel()
            loop = asyncio.get_running_loop()
            self._frame_timer = loop.call_later(
                self._limits.frame_timeout_s, self._on_frame_timeout
            )

    def _on_frame_timeout(self) -> None:
        self._frame_timer = None
        timeout_s = self._limits.frame_timeout_s
        log.info("rpc.frame_timeout", connection=self.id, timeout_s=timeout_s)
        self._fail(f"Parse error: message incomplete after {timeout_s:g} s")

    def _dispatch(self) -> None:
        """Run the frames read so far, in order, until they are done or the slots are."""
        while True:
            if self._waiting is not None:
                if not self._runner.can_start(self._waiting):
                    self._pause_reading()  # the kernel buffer then pushes back on the client
                    return
                incoming, self._waiting = self._waiting, None
                self._runner.start(incoming)
            if not self._frames:
                break
            item = self._frames.popleft()
            if isinstance(item, FrameError):
                log.info("rpc.frame_error", connection=self.id, reason=item.message)
                self._fail(item.message)
                return
            incoming = parse(item)
            if incoming.batch:
                self._waiting = incoming  # even all-invalid: its errors count against the cap
            elif not incoming.requests:
                reply = incoming.reply()
                if reply is not None:
                    self.send(reply)
            elif not incoming.batch and incoming.requests[0].method in CANCEL_METHODS:
                reply = incoming.reply([self._runner.cancel(incoming.requests[0])])
                if reply is not None:
                    self.send(reply)
            else:
                self._waiting = incoming
        if self._paused:
            self._paused = False
            if self._transport is not None and not self._input_done:
                self._transport.resume_reading()
                self._watch_partial_frame(completed=True)  # the clock restarts now

    def _pause_reading(self) -> None:
        if self._paused:
            return
        self._paused = True
        if self._frame_timer is not None:  # waiting for a slot is not the client's delay
            self._frame_timer.cancel()
            self._frame_timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def _frame_done(self) -> None:
        """The runner answered a frame: a slot is free."""
        self._last_active = time.monotonic()
        if self._waiting is not None and not self._closing:
            self._dispatch()  # go on with what was read
        if self._slot_freed is not None:
            self._slot_freed.set()  # wakes the final drain
