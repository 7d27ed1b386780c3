"""A synchronous client for n3d's control socket; standard library only (n3ctl's hot path).

::

    with Connection() as conn:                 # N3D_SOCKET, else the default path
        status = conn.call("status")
        conn.call("models.pull", {"model": "llama3"}, progress=print)

It speaks NDJSON (one JSON line each way). Failures are exceptions a caller can
tell apart:

- :class:`RpcError` — the daemon answered with a JSON-RPC error (``code``,
  ``message``, ``data``); application errors carry ``data.suggestion``.
- :class:`DaemonUnreachable` — no answer at all; ``reason`` says why and ``str()``
  ends with a hint. Subclasses: :class:`DaemonNotRunning` (no socket file),
  :class:`StaleSocket` (a socket nobody listens on), :class:`SocketPermissionDenied`,
  :class:`DaemonTimeout`, :class:`ConnectionLost` (closed mid-call), and
  :class:`UntrustedSocket`: the socket is not n3d's to trust (see below).

Every connection is checked before a byte is sent (:mod:`n3d.trust`, the rules
the daemon applies to itself): a socket in the default runtime directory is used
only if that directory is private and ours, and the process that accepts the
connection must run as our uid or as root. Otherwise someone who created
``/tmp/n3-$UID`` first would answer `status`, read every request and inject
answers.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from n3d.paths import configured_socket, runtime_dir, socket_path
from n3d.trust import peer_credentials, private_dir_problem, trusted_uid

# n3ctl's hot path: keep `typing` and `pathlib` off it at run time (type checkers
# still see them); paths are plain strings here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType
    from typing import Any

__all__ = [
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

_START_HINT = "Start it with: n3d run (or: systemctl --user start n3d)"
_MAX_REPLY_BYTES = 64 * 1_048_576  # a reply this large is a bug, not a status


class RpcError(Exception):
    """The daemon answered a call with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code, self.message, self.data = code, message, data

    @property
    def suggestion(self) -> str | None:
        data = self.data
        return data.get("suggestion") if isinstance(data, dict) else None


class DaemonUnreachable(Exception):
    """No usable connection to n3d at ``path``; ``reason`` is a short machine word."""

    reason = "unreachable"

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = os.fspath(path)
        self.detail = detail
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"n3d is not reachable at {self.path}: {self.detail}\n{_START_HINT}"


class DaemonNotRunning(DaemonUnreachable):
    reason = "missing"


class StaleSocket(DaemonUnreachable):
    reason = "refused"


class SocketPermissionDenied(DaemonUnreachable):
    reason = "permission"


class DaemonTimeout(DaemonUnreachable):
    reason = "timeout"


class ConnectionLost(DaemonUnreachable):
    reason = "closed"


class UntrustedSocket(DaemonUnreachable):
    """The socket's directory or the process behind it is not ours (nor root's): refused.

    Nothing was sent on it. ``detail`` says what is wrong and what to do.
    """

    reason = "untrusted"

    def _describe(self) -> str:
        return f"refusing the n3d socket at {self.path}: {self.detail}"


def check_socket_dir(path: str) -> None:
    """Refuse a socket in the default runtime dir unless that dir passes the daemon's check.

    Only that directory: the daemon itself refuses to run from an unsafe one, so
    a socket there was made by someone else. Other directories (``N3D_SOCKET``,
    ``--socket``, ``[socket].path``) are the user's choice and may well be shared
    ones like /tmp; for them the peer check (:func:`check_peer`) is what protects.
    A directory that does not exist is no daemon, which connecting reports.
    """
    directory = os.path.normpath(os.path.dirname(path))
    if directory != os.path.normpath(runtime_dir(os.environ)):
        return
    try:
        problem = private_dir_problem(directory)
    except OSError:
        return  # missing or unreadable: connecting says what that means
    if problem is not None:
        raise UntrustedSocket(path, problem)


def check_peer(sock: socket.socket, path: str) -> None:
    """Refuse a connection whose other end runs as neither our uid nor root."""
    try:
        uid, pid = peer_credentials(sock)
    except OSError as exc:
        raise UntrustedSocket(path, f"cannot tell who answers ({exc.strerror or exc})") from exc
    if not trusted_uid(uid):
        raise UntrustedSocket(
            path,
            f"it is served by uid {uid} (pid {pid if pid is not None else '?'}), "
            f"not by you (uid {os.geteuid()}) or root: another user may be posing as n3d. "
            "Remove it, or set XDG_RUNTIME_DIR / N3D_SOCKET elsewhere.",
        )


def moved_socket(tried: str, *, explicit: bool) -> str:
    """Where the config file's `[socket].path` puts n3d, when ``tried`` had no socket.

    "" unless the path was the default one (not given, no ``N3D_SOCKET``) and the
    config names another: n3d listens where its config says, and a client should
    find it there without being told twice.
    """
    if explicit or os.environ.get("N3D_SOCKET"):
        return ""
    configured = configured_socket(os.environ)
    return configured if configured != tried else ""


def _connect_error(path: str, exc: OSError) -> DaemonUnreachable:
    if isinstance(exc, FileNotFoundError):
        return DaemonNotRunning(path, "no socket file (n3d is not running)")
    if isinstance(exc, ConnectionRefusedError):
        return StaleSocket(path, "connection refused (a stale socket: n3d is not running)")
    if isinstance(exc, PermissionError):
        return SocketPermissionDenied(path, "permission denied (the socket is another user's)")
    if isinstance(exc, TimeoutError):
        return DaemonTimeout(path, "timed out connecting")
    return DaemonUnreachable(path, exc.strerror or str(exc))


class Connection:
    """One connection to n3d; not thread-safe. ``timeout`` (seconds) bounds each wait.

    Notifications that arrive while a call waits (events, progress for other
    tokens) are kept, in order, for :meth:`notifications`.
    """

    def __init__(self, path: Path | str | None = None, timeout: float | None = 5.0) -> None:
        self.path = os.fspath(path) if path is not None else socket_path("", os.environ)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        self._pending: deque[dict[str, Any]] = deque()
        try:
            self._dial(timeout)
        except FileNotFoundError as exc:
            moved = moved_socket(self.path, explicit=path is not None)
            if not moved:
                raise _connect_error(self.path, exc) from exc
            self.path = moved
            try:
                self._dial(timeout)
            except OSError as again:
                raise _connect_error(self.path, again) from again
        except OSError as exc:
            raise _connect_error(self.path, exc) from exc

    def _dial(self, timeout: float | None) -> None:
        """A new socket connected to :attr:`path` and checked (closed again if that fails)."""
        check_socket_dir(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._connect(timeout)
            check_peer(self._sock, self.path)
        except (OSError, UntrustedSocket):
            self._sock.close()
            raise

    def _connect(self, timeout: float | None) -> None:
        # A Unix socket whose backlog is full refuses with EAGAIN at once instead
        # of waiting like TCP; retry briefly within the timeout.
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        while True:
            try:
                self._sock.connect(str(self.path))
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("the daemon's connection backlog stayed full") from None
                time.sleep(0.01)

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
        request_id = next(self._ids)
        token = f"n3ctl-{request_id}"
        if progress is not None:
            if isinstance(params, list):
                raise ValueError("progress needs named params (a mapping), not a list")
            params = {**(params or {}), "workDoneToken": token}
        self._send({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})
        while True:
            message = self._receive()
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    err = message["error"]
                    raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
                return message.get("result")
            params_in = message.get("params")
            if (
                progress is not None
                and message.get("method") == "$/progress"
                and isinstance(params_in, dict)
                and params_in.get("token") == token
            ):
                progress(params_in.get("value", {}))
            elif "method" in message:
                self._pending.append(message)

    def notify(self, method: str, params: Mapping[str, Any] | list[Any] | None = None) -> None:
        """Send a notification (no reply)."""
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def notifications(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(method, params)`` of server notifications, waiting for more forever
        (or until ``timeout`` between two of them: DaemonTimeout)."""
        while True:
            message = self._pending.popleft() if self._pending else self._receive()
            if "method" in message:
                yield message["method"], message.get("params")

    def _send(self, message: dict[str, Any]) -> None:
        if message.get("params") is None:
            message.pop("params", None)
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise DaemonTimeout(self.path, "timed out sending") from exc
        except OSError as exc:
            raise ConnectionLost(self.path, f"connection lost ({exc.strerror or exc})") from exc

    def _receive(self) -> dict[str, Any]:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError as exc:
                    raise ConnectionLost(self.path, f"unreadable reply: {line[:80]!r}") from exc
                if isinstance(message, dict):
                    return message
                continue  # a batch reply: this client never sends batches
            if len(self._buffer) > _MAX_REPLY_BYTES:
                raise ConnectionLost(self.path, "reply larger than 64 MiB")
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise DaemonTimeout(self.path, f"no reply within {self.timeout:g} s") from exc
            except OSError as exc:
                raise ConnectionLost(self.path, f"connection lost ({exc.strerror or exc})") from exc
            if not chunk:
                raise ConnectionLost(self.path, "the daemon closed the connection")
            self._buffer += chunk
