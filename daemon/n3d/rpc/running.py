"""Running one connection's requests: in order as read, the worker, cancellation.

- Frames read (:meth:`Runner.take`) are started in order (:meth:`Runner.pump`)
  while slots are free: at most ``max_inflight`` calls run at once
  (:class:`~n3d.rpc.bounds.Slots`), batch members included, and one batch at a
  time; a frame that must wait stops the rest (:attr:`Runner.blocked`: the
  connection stops reading). ``$/cancelRequest {id}`` and LSP's
  ``window/workDoneProgress/cancel {token}`` (an editor's cancel button) are
  handled as they are taken, so they are never stuck behind the work they cancel;
  an id or token that is not running is ignored.
- A per-connection worker task runs a single request when it is idle; one that
  arrives while the worker is busy gets a task of its own, so a slow request
  never holds up the next one. Every request runs in a cancel scope, entered in
  the in-flight table under its id and its ``workDoneToken``; a cancelled one is
  answered ``-32800 Request cancelled``.
- A batch runs in a task of its own. Its members run from a pool of at most
  ``max_inflight`` workers (not a task per member: 20 000 members were 20 000
  tasks up front), each member in a slot of the connection's. Each member's
  response is encoded as it comes and counted against the connection's reply
  budget (:meth:`Outbox.hold`); past it the connection is closed and the batch
  stops, long before its reply could fill the memory. The invalid members'
  errors come first in the reply, as before.

Long because the worker's shared scope and the batch's bounded pool share the
in-flight table and the slots, and each is subtle enough to want its comments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from n3d.jsonrpc.framing import FrameError
from n3d.jsonrpc.protocol import (
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
from n3d.rpc.bounds import Slots
from n3d.rpc.dispatch import MethodTable, Session

__all__ = ["Outbox", "Runner"]

CANCEL_BY_ID = "$/cancelRequest"
CANCEL_BY_TOKEN = "window/workDoneProgress/cancel"
CANCEL_METHODS = frozenset({CANCEL_BY_ID, CANCEL_BY_TOKEN})


_ERRORS_PER_CHECKPOINT = 512  # a batch's invalid members are encoded in turns with others


class Outbox(Protocol):
    """Where a runner's replies go (the connection)."""

    def send(self, message: JsonObject | list[Any]) -> None:
        """Write one reply; never blocks."""

    def send_body(self, body: bytearray) -> None:
        """Write a reply already encoded as JSON (a batch's); framed in place."""

    def hold(self, size: int) -> bool:
        """Count ``size`` bytes of a batch reply being assembled; False: over the
        cap, and the connection is closing (the batch should stop)."""

    def release(self, size: int) -> None: ...


class Runner:
    """Runs the frames a connection reads (:meth:`take`); see the module docstring.

    ``outbox`` takes the replies; ``on_done`` is called each time a slot is free.
    """

    def __init__(
        self,
        session: Session,
        table: MethodTable,
        max_inflight: int,
        outbox: Outbox,
        on_done: Callable[[], None],
    ) -> None:
        self.slots = Slots(max_inflight)
        self._session = session
        self._table = table
        self._max_inflight = max_inflight
        self._outbox = outbox
        self._send = outbox.send
        self._on_done = on_done
        self._slot_freed: anyio.Event | None = None  # set when a batch member may take a slot
        self._tg: anyio.abc.TaskGroup | None = None
        # Running requests: id → cancel scope, workDoneToken → cancel scope.
        self._inflight: dict[Any, anyio.CancelScope] = {}
        self._by_token: dict[Any, anyio.CancelScope] = {}
        self._worker_wake: anyio.Event | None = None  # set while the worker is idle
        self._worker_next: Incoming | None = None
        self._worker_request: tuple[Incoming, Request] | None = None  # running in the worker
        self._frames: deque[bytes | FrameError] = deque()  # taken, not yet started
        self._waiting: Incoming | None = None  # parsed, waiting for a slot

    @property
    def running(self) -> int:
        """Calls in flight (slots in use)."""
        return self.slots.used

    def start_worker(self, tg: anyio.abc.TaskGroup) -> None:
        """Run frames in ``tg`` from now on (the worker, and tasks for the overflow)."""
        self._tg = tg
        tg.start_soon(self._work_loop)

    @property
    def blocked(self) -> bool:
        """A frame waits for a slot: read no more until :meth:`pump` has started it."""
        return self._waiting is not None

    @property
    def pending(self) -> bool:
        """Frames taken and not yet started."""
        return self._waiting is not None or bool(self._frames)

    def take(self, frames: Iterable[bytes | FrameError]) -> None:
        """Frames read, to start in order (:meth:`pump`)."""
        self._frames.extend(frames)

    def drop(self) -> None:
        """Forget the frames not yet started (the connection is closing)."""
        self._frames.clear()
        self._waiting = None

    def pump(self) -> FrameError | None:
        """Start the frames taken, in order, until they are done or a slot is not free
        (:attr:`blocked`); a framing error stops it and is returned, the rest dropped."""
        while True:
            incoming = self._waiting
            if incoming is not None:
                if not self.slots.can_start(batch=incoming.batch):
                    return None
                self._waiting = None
                self._start(incoming)
            if not self._frames:
                return None
            item = self._frames.popleft()
            if isinstance(item, FrameError):
                self.drop()
                return item
            incoming = parse(item)
            if incoming.batch:
                self._waiting = incoming  # even all-invalid: its errors count against the cap
            elif not incoming.requests:  # invalid: answered at once
                reply = incoming.reply()
                if reply is not None:
                    self._send(reply)
            elif incoming.requests[0].method in CANCEL_METHODS:
                reply = incoming.reply([self.cancel(incoming.requests[0])])
                if reply is not None:
                    self._send(reply)
            else:
                self._waiting = incoming

    def _start(self, incoming: Incoming) -> None:
        """Run a frame in a free slot: a single request in the worker when it is
        idle, else in a task; a batch in a task of its own."""
        self.slots.start(batch=incoming.batch)
        wake = self._worker_wake
        if not incoming.batch and wake is not None and self._worker_next is None:
            self._worker_next = incoming  # the idle worker takes it: no task to start
            wake.set()
        else:
            assert self._tg is not None
            self._tg.start_soon(self._run_frame, incoming)

    def cancel(self, request: Request) -> JsonObject | None:
        """``$/cancelRequest {id}`` or ``window/workDoneProgress/cancel {token}``."""
        params = request.params
        if request.method == CANCEL_BY_ID:
            target = params.get("id") if isinstance(params, dict) else None
            scopes = self._inflight
        else:
            target = params.get("token") if isinstance(params, dict) else None
            scopes = self._by_token
        scope = (
            scopes.get(target)
            if isinstance(target, str | int | float) and not isinstance(target, bool)
            else None
        )
        if scope is not None:
            scope.cancel()
        # Also usable as a request (not LSP's way, but harmless): says whether it hit.
        return (
            None
            if request.is_notification
            else result_response(request.id, {"cancelled": scope is not None})
        )

    # -- running ----------------------------------------------------------------------

    async def _work_loop(self) -> None:
        """Run the frames :meth:`start` hands over while idle, one at a time.

        Its single requests share one cancel scope, made anew only after a
        cancellation has used it up (entering a scope per request cost as much
        as a small call). A cancelled request unwinds out of the scope and is
        answered here, exactly as its own scope would have had it answered.
        """
        while True:
            with anyio.CancelScope() as scope:
                # A handler that swallowed its cancellation leaves the scope cancelled:
                # the next request must not inherit that, so take a fresh scope.
                while not scope.cancel_called:
                    incoming, self._worker_next = self._worker_next, None
                    if incoming is not None:
                        await self._run_frame(incoming, scope)
                        continue
                    self._worker_wake = wake = anyio.Event()
                    try:
                        await wake.wait()
                    finally:
                        self._worker_wake = None
            cancelled, self._worker_request = self._worker_request, None
            if cancelled is not None:
                incoming, request = cancelled
                reply = incoming.reply([error_response(request.id, REQUEST_CANCELLED)])
                if reply is not None:
                    self._send(reply)

    async def _run_frame(
        self, incoming: Incoming, worker_scope: anyio.CancelScope | None = None
    ) -> None:
        try:
            if incoming.batch:
                await self._run_batch(incoming)
                return
            request = incoming.requests[0]
            if worker_scope is None or request.is_notification:
                response = await self._run_one(request)
            else:
                response = await self._run_in_worker(incoming, request, worker_scope)
            reply = incoming.reply([response])
            if reply is not None:
                self._send(reply)
        finally:
            self.slots.finish(batch=incoming.batch)
            self._slot_is_free()

    def _slot_is_free(self) -> None:
        if self._slot_freed is not None:
            self._slot_freed.set()
            self._slot_freed = None
        self._on_done()

    async def _take_slot(self) -> None:
        while not self.slots.take():
            if self._slot_freed is None:
                self._slot_freed = anyio.Event()
            await self._slot_freed.wait()

    async def _run_batch(self, incoming: Incoming) -> None:
        """The batch's errors, then its members from a bounded pool; one reply, or none.

        Members run concurrently (the specification allows any order) and their
        responses are encoded as they come into one buffer; nothing else is kept.
        One buffer, not a bytes object per member: a thousand small blocks freed
        between long-lived ones stay in the C heap, and n3d's RSS with them.
        """
        reply = bytearray(b"[")
        held = 0
        outbox = self._outbox

        def add(response: JsonObject) -> bool:
            nonlocal held
            body = encode(response)
            if not outbox.hold(len(body) + 1):  # + its comma or bracket
                return False
            held += len(body) + 1
            reply.extend(body)
            reply.extend(b",")
            return True

        try:
            for count, error in enumerate(incoming.errors, 1):
                if not add(error):
                    return
                if count % _ERRORS_PER_CHECKPOINT == 0:
                    await anyio.lowlevel.checkpoint()
            members = iter(incoming.requests)

            async def worker(own_slot: bool) -> None:
                for request in members:  # shared: each member is taken once
                    if not own_slot:
                        await self._take_slot()
                    try:
                        response = await self._run_one(request)
                    finally:
                        if not own_slot:
                            self.slots.give()
                            self._slot_is_free()
                    if response is not None and not add(response):
                        pool.cancel_scope.cancel()  # over the cap: the connection is closing
                        return
                    await anyio.lowlevel.checkpoint()  # members that never wait take turns

            async with anyio.create_task_group() as pool:
                # The first worker runs in the batch's own slot; the others take one per member.
                for index in range(min(len(incoming.requests), self._max_inflight)):
                    pool.start_soon(worker, index == 0)
            if held and not pool.cancel_scope.cancel_called:
                reply[-1:] = b"]"  # the last comma
                outbox.release(held)
                held = 0
                outbox.send_body(reply)
        finally:
            outbox.release(held)

    async def _run_one(self, request: Request) -> JsonObject | None:
        if request.method in CANCEL_METHODS:
            return self.cancel(request)
        if request.is_notification:
            return await self._table.call(self._session, request)
        scope = anyio.CancelScope()
        token = self._track(request, scope)
        response: JsonObject | None = None
        try:
            with scope:
                response = await self._table.call(self._session, request)
        finally:
            self._untrack(request.id, token, scope)
        if scope.cancelled_caught:
            return error_response(request.id, REQUEST_CANCELLED)
        return response

    async def _run_in_worker(
        self, incoming: Incoming, request: Request, scope: anyio.CancelScope
    ) -> JsonObject | None:
        """:meth:`_run_one` under the worker's shared scope; cancelled: see _work_loop."""
        token = self._track(request, scope)
        self._worker_request = (incoming, request)
        try:
            response = await self._table.call(self._session, request)
        finally:
            self._untrack(request.id, token, scope)
        self._worker_request = None
        return response

    def _track(self, request: Request, scope: anyio.CancelScope) -> str | int | None:
        """Make ``request`` cancellable by its id and its ``workDoneToken`` (returned)."""
        self._inflight[request.id] = scope
        params = request.params
        token = params.get("workDoneToken") if params.__class__ is dict else None
        return None if token is None else self._add_token(token, scope)

    def _untrack(self, key: RequestId, token: str | int | None, scope: Any) -> None:
        # Only our own entries: a later request may have reused the id or token.
        if self._inflight.get(key) is scope:
            del self._inflight[key]
        if token is not None and self._by_token.get(token) is scope:
            del self._by_token[token]

    def _add_token(self, token: Any, scope: anyio.CancelScope) -> str | int | None:
        """Enter a valid ``workDoneToken`` (string or integer) for ``scope``; else None."""
        if not isinstance(token, str | int) or isinstance(token, bool):
            return None  # the method table answers -32602 for it
        self._by_token[token] = scope
        return token
