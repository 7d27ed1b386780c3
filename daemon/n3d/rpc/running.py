"""Running one connection's requests: the worker, the in-flight table, cancellation.

- A per-connection worker task runs a frame when it is idle; a frame that
  arrives while the worker is busy gets a task of its own, so a slow request
  never holds up the next one. :attr:`Runner.running` counts the frames accepted
  and not yet answered; the connection stops reading at ``max_inflight``.
- Every request runs in a cancel scope, entered in the in-flight table under its
  id and, when its named params carry one, under its ``workDoneToken``.
  ``$/cancelRequest {id}`` and LSP's ``window/workDoneProgress/cancel {token}``
  (the notification an editor's cancel button sends) cancel that scope, and the
  request is answered ``-32800 Request cancelled``. The connection handles both
  as they are read (:meth:`Runner.cancel`), so they are never stuck behind the
  work they cancel; an id or token that is not running is ignored.
- A batch's members run concurrently within the same in-flight bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from n3d.rpc.dispatch import MethodTable, Session
from n3d.rpc.protocol import (
    REQUEST_CANCELLED,
    Incoming,
    JsonObject,
    Request,
    RequestId,
    error_response,
    result_response,
)

__all__ = ["CANCEL_METHODS", "Runner"]

CANCEL_BY_ID = "$/cancelRequest"
CANCEL_BY_TOKEN = "window/workDoneProgress/cancel"
CANCEL_METHODS = frozenset({CANCEL_BY_ID, CANCEL_BY_TOKEN})


class Runner:
    """Runs the frames a connection hands over (:meth:`start`); see the module docstring.

    ``send`` writes a reply; ``on_done`` is called each time a frame has been
    answered (a slot is free).
    """

    def __init__(
        self,
        session: Session,
        table: MethodTable,
        max_inflight: int,
        send: Callable[[JsonObject | list[Any]], None],
        on_done: Callable[[], None],
    ) -> None:
        self.running = 0  # frames accepted and not yet answered
        self._session = session
        self._table = table
        self._max_inflight = max_inflight
        self._send = send
        self._on_done = on_done
        self._tg: anyio.abc.TaskGroup | None = None
        # Running requests: id → cancel scope, workDoneToken → cancel scope.
        self._inflight: dict[Any, anyio.CancelScope] = {}
        self._by_token: dict[Any, anyio.CancelScope] = {}
        self._worker_wake: anyio.Event | None = None  # set while the worker is idle
        self._worker_next: Incoming | None = None
        self._worker_request: tuple[Incoming, Request] | None = None  # running in the worker

    def start_worker(self, tg: anyio.abc.TaskGroup) -> None:
        """Run frames in ``tg`` from now on (the worker, and tasks for the overflow)."""
        self._tg = tg
        tg.start_soon(self._work_loop)

    def start(self, incoming: Incoming) -> None:
        """Run a frame with requests: in the worker when it is idle, else in a task."""
        self.running += 1
        wake = self._worker_wake
        if wake is not None and self._worker_next is None:
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
            requests = incoming.requests
            if len(requests) > 1:
                responses = await self._run_batch(requests)
            elif worker_scope is None or requests[0].is_notification:
                responses = [await self._run_one(requests[0])]
            else:
                responses = [await self._run_in_worker(incoming, requests[0], worker_scope)]
            reply = incoming.reply(responses)
            if reply is not None:
                self._send(reply)
        finally:
            self.running -= 1
            self._on_done()

    async def _run_batch(self, requests: list[Request]) -> list[JsonObject | None]:
        # Members run concurrently (the spec allows any order) but within the same
        # in-flight bound as separate frames, so a 50 000-member batch is not 50 000 tasks.
        responses: list[JsonObject | None] = [None] * len(requests)
        limiter = anyio.CapacityLimiter(self._max_inflight)

        async def one(index: int, request: Request) -> None:
            async with limiter:
                responses[index] = await self._run_one(request)

        async with anyio.create_task_group() as tg:
            for index, request in enumerate(requests):
                tg.start_soon(one, index, request)
        return responses

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
