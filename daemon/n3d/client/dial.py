"""Opening a connection to n3d that a client may trust, for both clients; stdlib only.

A :class:`Dialer` holds every rule of the connect step; a client only sleeps
between its attempts, blocking (:mod:`n3d.client`) or not (:mod:`n3d.client.aio`)::

    dialer = Dialer(path, timeout_s, blocking=True)
    while (pause := dialer.attempt()) is not None:
        time.sleep(pause)
    sock = dialer.take()

- **Where.** ``path``, else ``N3D_SOCKET``, else the default path; when the
  default one has no socket and the config file's ``[socket].path`` names
  another (:func:`moved_socket`), that one, since n3d listens where its config says.
- **Whom to trust** (:mod:`n3d.trust`, the rules the daemon applies to itself),
  before a byte is sent: a socket in the default runtime directory is used only
  if that directory is private and ours (:func:`check_socket_dir`), and the
  process that accepts must run as our uid or as root (:func:`check_peer`).
  Otherwise someone who created ``/tmp/n3-$UID`` first would answer `status`,
  read every request and inject answers.
- **A full backlog.** A Unix socket whose listen backlog is full refuses with
  EAGAIN at once instead of waiting like TCP: the attempt is repeated every
  10 ms until ``timeout_s``.
- **Failures** become the :class:`~n3d.errors.DaemonUnreachable` kind that says
  what happened (:func:`connect_error`); the socket is closed again.
"""

from __future__ import annotations

import os
import socket
import time

from n3d.errors import (
    DaemonNotRunning,
    DaemonTimeout,
    DaemonUnreachable,
    SocketPermissionDenied,
    StaleSocket,
    UntrustedSocket,
)
from n3d.paths import configured_socket, runtime_dir, socket_path
from n3d.trust import peer_credentials, private_dir_problem, trusted_uid

__all__ = ["Dialer", "check_peer", "check_socket_dir", "connect_error", "moved_socket"]

_BACKLOG_RETRY_S = 0.01
_NO_TIMEOUT_S = 3600.0  # "wait forever" still ends a backlog that never drains


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


def connect_error(path: str, exc: OSError) -> DaemonUnreachable:
    """The DaemonUnreachable kind that says what ``exc``, raised connecting, means."""
    if isinstance(exc, FileNotFoundError):
        return DaemonNotRunning(path, "no socket file (n3d is not running)")
    if isinstance(exc, ConnectionRefusedError):
        return StaleSocket(path, "connection refused (a stale socket: n3d is not running)")
    if isinstance(exc, PermissionError):
        return SocketPermissionDenied(path, "permission denied (the socket is another user's)")
    if isinstance(exc, TimeoutError):
        return DaemonTimeout(path, "timed out connecting")
    return DaemonUnreachable(path, exc.strerror or str(exc))


class Dialer:
    """Connects to n3d's socket in attempts; see the module docstring.

    ``blocking``: the socket is left blocking with ``timeout_s`` as its timeout
    (the synchronous client's reads use it); otherwise non-blocking, for an event loop.
    """

    def __init__(self, path: str | None, timeout_s: float | None, *, blocking: bool) -> None:
        self.path = path if path is not None else socket_path("", os.environ)
        self._explicit = path is not None
        self._timeout_s = timeout_s
        self._blocking = blocking
        self._deadline = time.monotonic() + (timeout_s if timeout_s is not None else _NO_TIMEOUT_S)
        self._sock: socket.socket | None = None
        self._connected = False

    def attempt(self) -> float | None:
        """Try to connect: None once connected and trusted, else the seconds to wait first.

        Raises the DaemonUnreachable (UntrustedSocket included) that explains a failure.
        """
        if self._sock is None:
            check_socket_dir(self.path)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if self._blocking:
                self._sock.settimeout(self._timeout_s)
            else:
                self._sock.setblocking(False)
        try:
            self._sock.connect(self.path)
        except BlockingIOError:
            if time.monotonic() < self._deadline:
                return _BACKLOG_RETRY_S
            self._close()
            raise DaemonTimeout(self.path, "timed out connecting") from None
        except FileNotFoundError as exc:
            self._close()
            moved = moved_socket(self.path, explicit=self._explicit)
            if not moved:
                raise connect_error(self.path, exc) from exc
            self.path, self._explicit = moved, True  # moved once, never twice
            return 0.0
        except OSError as exc:
            self._close()
            raise connect_error(self.path, exc) from exc
        try:
            check_peer(self._sock, self.path)
        except UntrustedSocket:
            self._close()
            raise
        self._connected = True
        return None

    def take(self) -> socket.socket:
        """The connected, trusted socket (after :meth:`attempt` returned None)."""
        if self._sock is None or not self._connected:
            raise RuntimeError("not connected")
        return self._sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
