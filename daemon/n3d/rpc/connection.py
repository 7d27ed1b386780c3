"""One client connection, an asyncio protocol: read frames, run them, write replies, in bounds.

- Reading: bytes go through the connection's :class:`~n3d.jsonrpc.framing.Framer`
  to its :class:`~n3d.rpc.running.Runner`; while a frame waits for a slot,
  reading is paused (the kernel buffer then pushes back on the client). A frame
  that has started must complete within ``frame_timeout_s``
  (:class:`~n3d.rpc.flow.FrameClock`), else ``-32700`` and close, as after any
  fatal framing error.
- Writing never blocks: the transport sends what the kernel takes and buffers
  the rest. Every reply is checked against ``max_outgoing_bytes`` *before* it is
  buffered (:class:`~n3d.rpc.flow.FlowControl`): past it the client gets
  ``-32000`` and the connection is closed, its handlers cancelled, so no client
  can grow the daemon's memory, by not reading or by asking for a huge reply.
- End of input: a half-closed client (``socat`` after its stdin ends) still gets
  the answers to what it sent; a client that hung up gets nothing and its
  handlers are cancelled at once (:func:`~n3d.rpc.listener.wait_hung_up`). At
  shutdown (:meth:`Connection.drain`) input ends the same way.

Its life is :class:`State`. Why asyncio, openly: the event loop keeps the socket
registered and hands each chunk straight to :meth:`Connection.data_received`,
which frames, parses and dispatches it without a task switch; only handlers run
in (anyio) tasks. A reader task per connection, anyio's backend-neutral way,
cost 20 µs more CPU per call (+40 %): a wake-up, and the socket registered and
unregistered, for every request (docs/performance.md).

Long because the event loop's callbacks, the handlers' session and the server's
requests (drain, evict, idle) all meet in one state here; the mechanics are in
:mod:`~n3d.rpc.flow`, the numbers in :mod:`~n3d.rpc.bounds`, the running in
:mod:`~n3d.rpc.running`.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import time
from collections.abc import Callable
from typing import Any

import anyio
import structlog

from n3d.jsonrpc.framing import Framer
from n3d.jsonrpc.protocol import (
    PARSE_ERROR,
    SERVER_BUSY,
    JsonObject,
    RequestId,
    encode,
    error_response,
)
from n3d.rpc.bounds import Limits
from n3d.rpc.dispatch import MethodTable
from n3d.rpc.flow import FlowControl, FrameClock
from n3d.rpc.listener import wait_hung_up
from n3d.rpc.running import Runner

__all__ = ["Connection", "State"]

log = structlog.get_logger(__name__)

_FLUSH_TIMEOUT_S = 2.0  # writing the last replies of a closing connection


class State(enum.Enum):
    """Where a connection is in its life; it only moves down this list."""

    CONNECTING = "connecting"  # made, its transport not yet: nothing is read or written
    OPEN = "open"  # reading, running, answering
    ANSWERING = "answering"  # input ended (EOF, shutdown): what was read is answered, then close
    FAILED = "failed"  # a framing error was answered: the calls in flight answer, then close
    ABANDONED = "abandoned"  # over the cap, evicted or hung up: nothing more runs or is written
    CLOSED = "closed"  # nothing more is written


_WRITABLE = (State.OPEN, State.ANSWERING, State.FAILED)


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
        self.state = State.CONNECTING
        self._sock = sock
        self._limits = limits
        self._flow: FlowControl  # made by connection_made (see _made)
        # connection_made has run: the transport owns the socket. Not the same as
        # leaving CONNECTING: an abort or a drain may come first, and uvloop never
        # calls connection_made for a transport whose accept was cancelled.
        self._made = False
        self._clock = FrameClock(limits.frame_timeout_s, self._on_frame_timeout)
        self._runner = Runner(self, table, limits.max_inflight, self, self._slot_is_free)
        self._on_subscribe, self._on_unsubscribe = on_subscribe, on_unsubscribe
        self._scope = anyio.CancelScope()  # everything it runs: abort() cancels it
        self._peer_done = False  # the client sent EOF or the connection is gone
        self._changed: anyio.Event | None = None  # set on what serve waits for
        self._last_active = time.monotonic()  # bytes read or a frame answered (for eviction)

    # -- Session and the runner's Outbox ----------------------------------------------

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

    def send_body(self, body: bytearray) -> None:
        self._write(self.framer.frame_in_place(body), None)

    def hold(self, size: int) -> bool:
        if self.state not in _WRITABLE:
            return False
        if self._flow.hold(size):
            return True
        self._end_with(self._flow.refusal(size, None, self.id), abandon=True)
        return False

    def release(self, size: int) -> None:
        self._flow.budget.release(size)

    # -- what the server asks -----------------------------------------------------------

    @property
    def idle_since(self) -> float | None:
        """When it last read a byte or answered a frame (``time.monotonic``), if it has
        nothing to do now: no call in flight, no frame read or half-read, no reply
        unsent, still open. None otherwise: such a connection is never evicted."""
        if (
            self.state is not State.OPEN
            or self._runner.running
            or self._runner.pending
            or self.framer.pending
            or self._flow.unsent
        ):
            return None
        return self._last_active

    def drain(self) -> None:
        """Shutdown: read nothing more; what was read is run and answered, then close."""
        if self.state is State.CONNECTING:
            self._set(State.ANSWERING)  # serve never starts reading
        elif self.state is State.OPEN:
            self._end_input(State.ANSWERING)

    def evict(self, message: str) -> None:
        """Close an idle connection to make room: ``-32000`` with ``message``, then close."""
        self._end_with(error_response(None, SERVER_BUSY, message), abandon=True)

    def abort(self) -> None:
        """Drop the connection now: stop reading and writing, cancel its handlers."""
        if self.state is not State.CLOSED:
            self._set(State.ABANDONED)
        self._clock.stop()
        self._scope.cancel()

    # -- life ---------------------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until the client leaves or breaks a rule; never raises but cancellation."""
        loop = asyncio.get_running_loop()
        try:
            with self._scope:
                try:
                    await loop.connect_accepted_socket(lambda: self, self._sock)
                except OSError as exc:  # the client left before it could be served
                    log.debug("rpc.connect_failed", connection=self.id, error=str(exc))
                    return
                async with anyio.create_task_group() as tg:
                    self._runner.start_worker(tg)
                    if self.state is State.OPEN:
                        self._flow.resume_reading()
                    await self._until(lambda: self.state is not State.OPEN)
                    if self._busy():  # a half-closed client waits for these answers
                        tg.start_soon(self._abort_on_hang_up)
                        await self._until(lambda: not self._busy())
                    tg.cancel_scope.cancel()  # the idle worker, or an abandoned connection's work
                with anyio.move_on_after(_FLUSH_TIMEOUT_S):
                    await self._flow.drain()
                    if self.state in (State.FAILED, State.ABANDONED):
                        await self._linger()
        finally:
            self._clock.stop()
            self.state = State.CLOSED
            if self._made:
                self._flow.abort()
            else:
                self._sock.close()

    def _busy(self) -> bool:  # calls in flight that will still be answered
        return self.state is not State.ABANDONED and self._runner.running > 0

    async def _until(self, done: Callable[[], bool]) -> None:
        while not done():
            self._changed = anyio.Event()
            await self._changed.wait()

    def _set(self, state: State) -> None:
        self.state = state
        if self._changed is not None:
            self._changed.set()  # serve looks again at what it waits for

    async def _abort_on_hang_up(self) -> None:
        await wait_hung_up(self._sock)
        self.abort()

    async def _linger(self) -> None:
        """After a fatal error reply: close our side, then discard input for a moment.

        Closing with unread input makes the kernel reset the connection, and the
        client, still sending its oversized frame, would lose the error reply.
        Bounded by the caller's flush timeout.
        """
        if self._flow.closing:
            return
        self._set(State.CLOSED)  # nothing may be written after the EOF
        self._flow.close_writing()
        self._flow.resume_reading()  # data_received discards it: input has ended
        await self._until(lambda: self._peer_done)

    # -- asyncio.Protocol: the event loop calls these -----------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._flow = FlowControl(transport, self._limits.max_outgoing_bytes)
        self._made = True
        self._flow.pause_reading()  # until serve has its worker (and not at all if drained)
        if self.state is State.CONNECTING:
            self.state = State.OPEN

    def data_received(self, data: bytes) -> None:
        if self.state is not State.OPEN:
            return  # discarded while lingering after a fatal error
        self._last_active = time.monotonic()
        items = self.framer.feed(data)
        self._runner.take(items)
        self._dispatch()
        if self.state is State.OPEN and not self._flow.reading_paused:
            self._clock.after_read(pending=self.framer.pending, completed=bool(items))

    def eof_received(self) -> bool:
        self._peer_done = True
        if self.state is State.OPEN:
            self._end_input(State.ANSWERING)
        else:
            self._set(self.state)  # wakes a lingering serve
        return True  # keep the transport: a half-closed client still gets its answers

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_done = True
        self._flow.resume_writing()  # nothing more will leave: do not wait for it
        if self.state is State.CLOSED:
            self._set(State.CLOSED)  # wakes a lingering serve
        else:
            self.abort()  # the peer is gone: nothing it asked for matters any more

    def pause_writing(self) -> None:
        self._flow.pause_writing()

    def resume_writing(self) -> None:
        self._flow.resume_writing()

    # -- input --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start what was read; pause reading while a frame waits for a slot."""
        error = self._runner.pump()
        if error is not None:
            log.info("rpc.frame_error", connection=self.id, reason=error.message)
            self._end_with(error_response(None, PARSE_ERROR, error.message), abandon=False)
        elif self._runner.blocked:
            self._clock.stop()  # waiting for a slot is not the client's delay
            self._flow.pause_reading()
        elif self.state is State.OPEN and self._flow.reading_paused:
            self._flow.resume_reading()
            self._clock.after_read(pending=self.framer.pending, completed=True)  # restarts now

    def _slot_is_free(self) -> None:
        """The runner answered a frame: a slot is free."""
        self._last_active = time.monotonic()
        if self._runner.blocked and self.state in (State.OPEN, State.ANSWERING):
            self._dispatch()  # go on with what was read
        if self.state is not State.OPEN:
            self._set(self.state)  # wakes serve waiting for the last calls

    def _end_input(self, state: State) -> None:
        """Read nothing more (``state`` says why)."""
        self._clock.stop()
        self._flow.pause_reading()
        self._set(state)

    def _on_frame_timeout(self) -> None:
        timeout_s = self._clock.timeout_s
        log.info("rpc.frame_timeout", connection=self.id, timeout_s=timeout_s)
        message = f"Parse error: message incomplete after {timeout_s:g} s"
        self._end_with(error_response(None, PARSE_ERROR, message), abandon=False)

    # -- output -------------------------------------------------------------------------

    def _write(self, data: bytes | bytearray, reply_to: RequestId) -> None:
        """Write framed bytes, checked against the reply cap before they are buffered."""
        if self.state not in _WRITABLE:
            return
        if self._flow.admits(len(data)):
            self._flow.write(data)
        else:  # closed with -32000, and its work abandoned
            self._end_with(self._flow.refusal(len(data), reply_to, self.id), abandon=True)

    def _end_with(self, error: JsonObject, *, abandon: bool) -> None:
        """A fatal error: send ``error`` (small: past the cap on purpose), read nothing
        more, then close (see serve); with ``abandon``, nothing more is run or written:
        the work in flight is cancelled unanswered. The client is told the first error."""
        if self.state in (State.OPEN, State.ANSWERING):
            self._runner.drop()
            self._flow.write(self.framer.frame(encode(error)))
            self._end_input(State.FAILED)
        if abandon and self.state is State.FAILED:
            self._set(State.ABANDONED)
