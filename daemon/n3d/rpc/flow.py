"""Flow control of one connection's asyncio transport, both directions (as uvicorn's).

- :class:`FlowControl`: reading paused and resumed (while no slot is free, at
  shutdown, after a fatal error); every write checked against the reply cap
  *before* it is buffered (:class:`~n3d.rpc.bounds.ReplyBudget`, reading the
  transport's unsent bytes); told by the transport when the kernel has not taken
  everything and when it has, so a closing connection can wait for its last
  replies to leave.
- :class:`FrameClock`: the partial-frame deadline, armed at a frame's first
  byte; a slow trickle does not reset it, and it does not run while reading is
  paused (waiting for a slot is not the client's delay).

Only the connection uses these; they hold no rule of the protocol, only the
mechanics of asyncio's transport and timers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import structlog

from n3d.jsonrpc.protocol import SERVER_BUSY, JsonObject, RequestId, error_response
from n3d.rpc.bounds import ReplyBudget

__all__ = ["FlowControl", "FrameClock"]

log = structlog.get_logger(__name__)


class FlowControl:
    """Both directions of ``transport``; ``cap``: the bytes of replies a client may leave unread."""

    def __init__(self, transport: asyncio.Transport, cap: int) -> None:
        self.budget = ReplyBudget(cap)
        self.reading_paused = False
        self._transport = transport
        self._drained = anyio.Event()
        self._drained.set()
        # Told when the kernel has not taken everything (pause) and when it has (resume).
        transport.set_write_buffer_limits(high=0)

    @property
    def closing(self) -> bool:
        return self._transport.is_closing()

    @property
    def unsent(self) -> int:
        """Bytes handed to the transport that the kernel has not taken yet."""
        return self._transport.get_write_buffer_size()

    def admits(self, size: int) -> bool:
        """Whether ``size`` more bytes of reply stay within the cap."""
        return self.budget.admits(self.unsent, size)

    def hold(self, size: int) -> bool:
        """Count ``size`` bytes of a batch reply being assembled; False (none counted) if over."""
        return self.budget.hold(self.unsent, size)

    def refusal(self, size: int, reply_to: RequestId, connection_id: int) -> JsonObject:
        """The ``-32000`` that answers a reply of ``size`` bytes past the cap; logged."""
        budget, unsent = self.budget, self.unsent
        if unsent:
            log.warning(
                "rpc.client_too_slow", connection=connection_id, queued_bytes=unsent, cap=budget.cap
            )
        else:
            log.warning(
                "rpc.reply_too_large",
                connection=connection_id,
                reply_bytes=budget.assembling + size,
                cap=budget.cap,
            )
        return error_response(reply_to, SERVER_BUSY, budget.refusal(unsent, size))

    def write(self, data: bytes | bytearray) -> None:
        """Hand ``data`` to the transport (the caller has checked the cap); never blocks."""
        if not self._transport.is_closing():
            self._transport.write(data)

    def close_writing(self) -> None:
        if not self._transport.is_closing():
            self._transport.write_eof()

    def abort(self) -> None:
        """Close the connection now, dropping what is unsent."""
        self._transport.abort()

    def pause_reading(self) -> None:
        if not self.reading_paused and not self._transport.is_closing():
            self.reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self._transport.is_closing():
            self.reading_paused = False
            self._transport.resume_reading()

    # The protocol's pause_writing, resume_writing and connection_lost call these.

    def pause_writing(self) -> None:
        self._drained = anyio.Event()

    def resume_writing(self) -> None:
        self._drained.set()

    async def drain(self) -> None:
        """Until the kernel has taken every byte written (or the connection is lost)."""
        await self._drained.wait()


class FrameClock:
    """Calls ``on_timeout`` when a frame stays incomplete for ``timeout_s`` seconds."""

    def __init__(self, timeout_s: float, on_timeout: Callable[[], None]) -> None:
        self.timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None

    def after_read(self, *, pending: bool, completed: bool) -> None:
        """Bytes were read: ``pending`` if a frame is half-read now, ``completed`` if one or
        more frames were completed by them (the half-read one is then new)."""
        if not pending:
            self.stop()
        elif completed or self._timer is None:
            self.start()

    def start(self) -> None:
        self.stop()
        self._timer = asyncio.get_running_loop().call_later(self.timeout_s, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._on_timeout()
