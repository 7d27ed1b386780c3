"""The client side of a connection to n3d, sans-IO: calls in, bytes out; bytes in, results out.

Both Python clients are this session plus a socket: :mod:`n3d.client` (blocking,
and so n3ctl) and :mod:`n3d.client.aio` (anyio) only write the bytes it returns
and feed it the bytes they read. The rules, once for every client:

- **Calls.** :meth:`ClientSession.call` gives a call the next integer id and
  returns it with its request, framed as NDJSON. The reply with that id completes
  it: :meth:`Call.result` returns its ``result`` or raises
  :class:`~n3d.errors.RpcError` for an ``error``.
- **Progress.** A call with ``progress`` gets a ``workDoneToken``
  (``<token_prefix>-<id>``) in its params, which must then be named (a mapping);
  each ``$/progress`` for that token is passed to ``progress`` as it is fed,
  before the reply.
- **Notifications.** Whatever else the daemon sends unasked (events, progress of
  a call nobody waits for any more) is returned by :meth:`ClientSession.feed`,
  in order, for the client to queue.
- **Abandoned calls.** :meth:`ClientSession.cancel` forgets a call: a reply that
  still comes is dropped. It returns the ``$/cancelRequest`` for the call, which
  a client sends when the daemon should stop the work too.
- **The end.** When its stream ends or fails, a client calls
  :meth:`ClientSession.lost`: every waiting call fails with the error it returns,
  and every later call raises it. When n3d said why before closing, with an
  error whose ``id`` is null (it evicted this idle connection at
  ``max_connections``, or could not frame what it read), that error is
  :class:`~n3d.errors.ClosedByDaemon` carrying n3d's code and message; otherwise
  :class:`~n3d.errors.ConnectionLost`. A reply that cannot be read (not JSON,
  or over :data:`MAX_REPLY_BYTES`) ends the session the same way.

n3d sends an error with a null id only when it closes the connection after it:
the other cases (a line that is not JSON, a request that is not valid) cannot
come from this session, which writes only valid requests. Batch replies are
ignored for the same reason: it never sends a batch.

Standard library only, and no ``typing``, ``dataclasses`` or ``pathlib`` at run
time: `n3ctl status` imports it.
"""

from __future__ import annotations

import itertools

from n3d.errors import ClosedByDaemon, ConnectionLost, DaemonUnreachable, RpcError
from n3d.jsonrpc.framing import FrameError, Framer
from n3d.jsonrpc.messages import decode, encode, notification, request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from n3d.jsonrpc.messages import JsonObject

    Progress = Callable[[dict[str, Any]], object]

__all__ = ["MAX_REPLY_BYTES", "Call", "ClientSession"]

# A reply this large is a bug, not a status; the cap bounds what a client buffers.
MAX_REPLY_BYTES = 64 * 1_048_576


class Call:
    """One call of a session; :attr:`done` once it has its reply or its connection ended."""

    __slots__ = ("_error", "_reply", "done", "id", "on_done", "progress", "token")

    def __init__(
        self,
        call_id: int,
        token: str | None,
        progress: Progress | None,
        on_done: Callable[[], object] | None,
    ) -> None:
        self.id = call_id
        self.token = token
        self.progress = progress
        self.on_done = on_done  # the client's wake-up (an async client's event), if any
        self.done = False
        self._reply: JsonObject | None = None
        self._error: DaemonUnreachable | None = None

    def result(self) -> Any:
        """The reply's ``result``; RpcError for an error reply; the session's end if first."""
        if self._error is not None:
            raise self._error
        if self._reply is None:
            raise RuntimeError(f"call {self.id} has no reply yet")
        if "error" in self._reply:
            error = self._reply["error"]
            if not isinstance(error, dict):
                error = {"message": str(error)}
            raise RpcError(error.get("code", 0), error.get("message", ""), error.get("data"))
        return self._reply.get("result")

    def _finish(self, reply: JsonObject | None, error: DaemonUnreachable | None) -> None:
        self._reply, self._error, self.done = reply, error, True
        if self.on_done is not None:
            self.on_done()


class ClientSession:
    """The client's half of one connection; ``path`` names it in errors.

    Not thread-safe; an async client uses it from one event loop.
    """

    def __init__(
        self, path: str, *, token_prefix: str = "n3d", max_reply_bytes: int = MAX_REPLY_BYTES
    ) -> None:
        self.path = path
        self.token_prefix = token_prefix
        self.ended: DaemonUnreachable | None = None
        self._framer = Framer(max_reply_bytes)
        self._ids = itertools.count(1)
        self._calls: dict[int, Call] = {}
        self._tokens: dict[str, Call] = {}
        self._parting: JsonObject | None = None  # n3d's error with a null id, if it sent one

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | list[Any] | None = None,
        *,
        progress: Progress | None = None,
        on_done: Callable[[], object] | None = None,
    ) -> tuple[Call, bytes]:
        """Start a call: the :class:`Call` to wait on and the bytes to send.

        ``on_done`` is called once when the call completes or fails. Raises the
        session's end if it has ended, ValueError if the params are not JSON.
        """
        if self.ended is not None:
            raise self.ended
        call_id = next(self._ids)
        token = None
        if progress is not None:
            if isinstance(params, list):
                raise ValueError("progress needs named params (a mapping), not a list")
            token = f"{self.token_prefix}-{call_id}"
            params = {**(params or {}), "workDoneToken": token}
        data = self._framer.frame(encode(request(method, params, call_id)))
        call = self._calls[call_id] = Call(call_id, token, progress, on_done)
        if token is not None:
            self._tokens[token] = call
        return call, data

    def notify(self, method: str, params: Mapping[str, Any] | list[Any] | None = None) -> bytes:
        """The bytes of a notification (no reply comes); raises the session's end if it ended."""
        if self.ended is not None:
            raise self.ended
        return self._framer.frame(encode(notification(method, params)))

    def cancel(self, call: Call) -> bytes | None:
        """Forget ``call``; the ``$/cancelRequest`` for it if it was still waiting, else None.

        A reply that still comes is dropped and its progress becomes notifications.
        Sending the bytes is the client's choice: a call interrupted by its caller
        should be cancelled in the daemon too; one given up after a timeout may not.
        """
        if self._calls.pop(call.id, None) is None:
            return None
        if call.token is not None:
            self._tokens.pop(call.token, None)
        if self.ended is not None:
            return None
        return self._framer.frame(encode(notification("$/cancelRequest", {"id": call.id})))

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        """Take bytes read from the connection; the notifications they complete, in order.

        Replies complete their calls and progress goes to its call's callback
        meanwhile. A reply that cannot be read ends the session: its error is raised.
        """
        notes: list[tuple[str, Any]] = []
        for body in self._framer.feed(data):
            if isinstance(body, FrameError):
                raise self.lost(f"unreadable reply from the daemon ({body.message})")
            try:
                message = decode(body)
            except (ValueError, RecursionError):
                raise self.lost(f"unreadable reply from the daemon: {body[:80]!r}") from None
            if isinstance(message, dict):  # not a batch reply: this session sends none
                note = self._route(message)
                if note is not None:
                    notes.append(note)
        return notes

    def lost(self, detail: str) -> DaemonUnreachable:
        """The connection ended (``detail`` says how): end the session, fail its waiting calls.

        Returns the error they fail with, which every later call raises too: n3d's
        own words when it sent an error with a null id first. Only the first call counts.
        """
        if self.ended is None:
            parting = self._parting
            if parting is None:
                self.ended = ConnectionLost(self.path, detail)
            else:
                code = parting.get("code")
                self.ended = ClosedByDaemon(
                    self.path, code if isinstance(code, int) else 0, str(parting.get("message", ""))
                )
            waiting = list(self._calls.values())
            self._calls.clear()
            self._tokens.clear()
            for call in waiting:
                call._finish(None, self.ended)
        return self.ended

    def _route(self, message: JsonObject) -> tuple[str, Any] | None:
        """Complete a call with a reply, pass progress on; a notification is returned."""
        if "method" in message:
            method, params = message["method"], message.get("params")
            if method == "$/progress" and isinstance(params, dict):
                token = params.get("token")
                call = self._tokens.get(token) if isinstance(token, str) else None
                if call is not None and call.progress is not None:
                    call.progress(params.get("value", {}))
                    return None
            return method, params
        reply_id = message.get("id")
        if reply_id is None:
            if isinstance(message.get("error"), dict):
                self._parting = message["error"]  # n3d closes the connection after it
            return None
        # type(): True == 1 in Python, but a JSON true is no reply to call 1.
        call = self._calls.pop(reply_id, None) if type(reply_id) is int else None
        if call is not None:
            if call.token is not None:
                self._tokens.pop(call.token, None)
            call._finish(message, None)
        return None
