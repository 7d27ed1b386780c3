"""A scripted stand-in for n3d's socket: NDJSON JSON-RPC in threads, canned answers.

It lets the CLI tests run the installed `n3ctl` against every method with exact,
known results (the real daemon's answers depend on timing and the simulator).
Handlers get ``(params, session)`` and return a result or raise :class:`Fail`;
``session.notify`` sends notifications (progress, events) mid-call. Every call
and every ``$/cancelRequest`` is recorded for assertions.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], "Session"], Any]


class Fail(Exception):
    """Make the fake answer with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class Session:
    def __init__(self, conn: socket.socket, daemon: FakeDaemon) -> None:
        self.conn = conn
        self.daemon = daemon
        self.lock = threading.Lock()
        self.cancelled = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        # OSError: the client went away; the test looks at what was recorded.
        with self.lock, contextlib.suppress(OSError):
            self.conn.sendall(json.dumps(message).encode() + b"\n")

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})


class FakeDaemon:
    """Listens on ``path`` until :meth:`close`; ``handlers`` maps method → handler."""

    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self.calls: list[tuple[str, Any]] = []
        self.cancelled_ids: list[Any] = []
        self.cancel_seen = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(16)
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        # close() alone does not wake a thread blocked in accept(): knock once.
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as knock,
            contextlib.suppress(OSError),
        ):
            knock.connect(str(self.path))
        self._thread.join(timeout=5)
        self._listener.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        session = Session(conn, self)
        with conn, conn.makefile("rb") as lines:
            try:
                for line in lines:
                    self._receive(session, line)
            except ConnectionResetError:
                # The client closed with an answer of ours still unread (e.g. n3ctl
                # stopped waiting after Ctrl-C, and our reply to its cancel arrived
                # after): on a Unix socket that is ECONNRESET instead of EOF. Every
                # line it sent before closing was read above; this is the end.
                pass

    def _receive(self, session: Session, line: bytes) -> None:
        if not line.strip():
            return
        message = json.loads(line)
        method, params = message.get("method"), message.get("params") or {}
        if method == "$/cancelRequest":
            self.cancelled_ids.append(params.get("id"))
            session.cancelled.set()
            self.cancel_seen.set()
            return
        self.calls.append((method, params))
        threading.Thread(target=self._answer, args=(session, message), daemon=True).start()

    def _answer(self, session: Session, message: dict[str, Any]) -> None:
        method, params = message["method"], message.get("params") or {}
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message.get("id")}
        handler = self.handlers.get(method)
        try:
            if handler is None:
                raise Fail(-32601, "Method not found")
            reply["result"] = handler(params, session)
        except Fail as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                reply["error"]["data"] = exc.data
        if "id" in message:
            session.send(reply)
