"""A synchronous client for n3d's control socket; standard library only (n3ctl's hot path).

::

    with Connection() as conn:                 # N3D_SOCKET, else the default path
        status = conn.call("status")
        conn.call("models.pull", {"model": "llama3"}, progress=print)

It speaks NDJSON (one JSON line each way). Failures are exceptions a caller can
tell apart, all in n3d's one tree (:mod:`n3d.errors`) and importable from here:

- :class:`RpcError` — the daemon answered with a JSON-RPC error (``code``,
  ``message``, ``data``); application errors carry ``data.suggestion``.
- :class:`DaemonUnreachable` — no answer at all; ``reason`` says why and ``str()``
  ends with a hint. Subclasses: :class:`DaemonNotRunning` (no socket file),
  :class:`StaleSocket` (a socket nobody listens on), :class:`SocketPermissionDenied`,
  :class:`DaemonTimeout`, :class:`ConnectionLost` (closed mid-call) and its
  :class:`ClosedByDaemon` (n3d said why: evicted while idle at
  ``max_connections``; the next call raises it, with n3d's message), and
  :class:`UntrustedSocket`: the socket is not n3d's to trust.

Every connection is checked before a byte is sent (:mod:`n3d.client.dial`). The
protocol (ids, progress by token, replies to results or errors, the end of a
connection) is :class:`n3d.jsonrpc.session.ClientSession`'s; this module only
moves its bytes through a blocking socket. :mod:`n3d.client.aio` is the same
over anyio.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from n3d.client.dial import Dialer, check_peer, check_socket_dir, moved_socket
from n3d.errors import (
    ClosedByDaemon,
    ConnectionLost,
    DaemonNotRunning,
    DaemonTimeout,
    DaemonUnreachable,
    N3dError,
    RpcError,
    SocketPermissionDenied,
    StaleSocket,
    UntrustedSocket,
)
from n3d.jsonrpc.session import ClientSession

# n3ctl's hot path: keep `typing` and `pathlib` off it at run time (type checkers
# still see them); paths are plain strings here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType
    from typing import Any

__all__ = [
    "ClosedByDaemon",
    "Connection",
    "ConnectionLost",
    "DaemonNotRunning",
    "DaemonTimeout",
    "DaemonUnreachable",
    "RpcError",
    "SocketPermissionDenied",
    "StaleSocket",
    "UntrustedSocket",
    "check_peer",
    "check_socket_dir",
    "moved_socket",
]

_READ_BYTES = 65536


class Connection:
    """One connection to n3d; not thread-safe. ``timeout`` (seconds) bounds each wait.

    Notifications that arrive while a call waits (events, progress for other
    tokens) are kept, in order, for :meth:`notifications`. A call interrupted by
    Ctrl-C (KeyboardInterrupt) sends ``$/cancelRequest`` for itself before the
    interrupt goes on, so the daemon stops work that nobody waits for.
    """

    def __init__(self, path: Path | str | None = None, timeout: float | None = 5.0) -> None:
        self.timeout = timeout
        dialer = Dialer(os.fspath(path) if path is not None else None, timeout, blocking=True)
        while (pause := dialer.attempt()) is not None:
            time.sleep(pause)
        self.path = dialer.path
        self._sock = dialer.take()
        self._session = ClientSession(self.path, token_prefix="n3ctl")
        self._notes: deque[tuple[str, Any]] = deque()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | list[Any] | None = None,
        *,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Call ``method`` and return its result; raises RpcError or DaemonUnreachable.

        With ``progress``, a ``workDoneToken`` is added to the (named) params and
        each ``$/progress`` value for it is passed to ``progress`` as it arrives.
        """
        call, request = self._session.call(method, params, progress=progress)
        sent = False
        try:
            self._send(request)
            sent = True
            while not call.done:
                self._receive()
        except BaseException as exc:
            cancel = self._session.cancel(call)  # a reply that still comes is dropped
            if isinstance(exc, KeyboardInterrupt) and sent and cancel is not None:
                self._send_quietly(cancel)
            raise
        return call.result()

    def notify(self, method: str, params: Mapping[str, Any] | list[Any] | None = None) -> None:
        """Send a notification (no reply)."""
        self._send(self._session.notify(method, params))

    def notifications(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(method, params)`` of server notifications, waiting for more forever
        (or until ``timeout`` between two of them: DaemonTimeout)."""
        while True:
            while self._notes:
                yield self._notes.popleft()
            self._receive()

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise DaemonTimeout(self.path, "timed out sending") from exc
        except OSError as exc:
            # n3d may have said why before it closed (an eviction): read that first.
            self._read_what_is_left()
            raise self._session.lost(f"connection lost ({exc.strerror or exc})") from exc

    def _send_quietly(self, data: bytes) -> None:
        """Send if the connection still takes it; the caller is already raising."""
        try:
            self._sock.sendall(data)
        except OSError:
            return

    def _receive(self) -> None:
        """Read once and feed the session; DaemonTimeout or the session's end if nothing came."""
        try:
            data = self._sock.recv(_READ_BYTES)
        except TimeoutError as exc:
            raise DaemonTimeout(self.path, f"no reply within {self.timeout:g} s") from exc
        except OSError as exc:
            raise self._session.lost(f"connection lost ({exc.strerror or exc})") from exc
        if not data:
            raise self._session.lost("the daemon closed the connection")
        self._notes.extend(self._session.feed(data))

    def _read_what_is_left(self) -> None:
        """Feed the session what arrived before the connection broke, without waiting."""
        try:
            while data := self._sock.recv(_READ_BYTES, socket.MSG_DONTWAIT):
                self._notes.extend(self._session.feed(data))
        except (OSError, N3dError):
            pass  # nothing more (BlockingIOError), or the session has ended
