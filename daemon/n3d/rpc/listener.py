"""The listening Unix socket: created safely, accepted on, put back, and the peer check.

Order (research/ecosystem.md §7; the caller already holds ``n3d.lock``):

1. systemd socket activation: ``LISTEN_PID`` is our pid and ``LISTEN_FDS >= 1``
   → use fd 3 as is; it belongs to systemd, so it is never unlinked.
2. Otherwise, if something exists at the path: a socket that accepts a connect
   is a live daemon (:class:`~n3d.errors.AlreadyRunning`); a socket that refuses
   is stale and is unlinked; anything that is not a socket is left alone
   (:class:`~n3d.errors.PathError`).
3. bind under ``umask(0o177)``, so the file is 0600 from its first instant (a
   chmod after bind leaves a window), then listen.

The socket is made with the standard library, not ``anyio.create_unix_listener``,
because that unlinks whatever is at the path and chmods only after binding. A
:class:`Listener` accepts on it with the public ``anyio.wait_readable`` (see
:mod:`n3d.rpc.server` for why not ``SocketListener.from_socket``), and binds a
fresh socket at the path when the file is removed while n3d runs (a ``/tmp``
cleaner taking the runtime dir): :meth:`Listener.rebind`. Connections already
accepted are not touched. :meth:`BoundSocket.remove` unlinks the path only if it
is still our inode, so a newer daemon's socket is never removed by an older one
exiting.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog

from n3d.errors import AlreadyRunning, PathError
from n3d.trust import peer_credentials  # one implementation, shared with the clients

__all__ = [
    "SD_LISTEN_FDS_START",
    "BoundSocket",
    "Listener",
    "open_listening_socket",
    "peer_credentials",
    "peer_hung_up",
    "wait_hung_up",
]

log = structlog.get_logger(__name__)

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed fd
_CONNECT_PROBE_S = 1.0
_HANG_UP_POLL_S = 0.1  # where there is no epoll
_ACCEPT_RETRY_S = 0.1  # after EMFILE and friends: let connections close, do not spin
_ACCEPT_BURST = 64  # connections accepted per wake-up before yielding to the others
# Unix-socket connects fail at once (EAGAIN) on a full backlog; make bursts fit.
_BACKLOG = socket.SOMAXCONN

_OnAccept = Callable[[socket.socket], object]  # takes each accepted connection


@dataclass(slots=True)
class BoundSocket:
    """A listening socket and how to clean up after it."""

    sock: socket.socket
    path: Path | None  # None for an inherited (socket-activated) socket: never unlinked
    inode: tuple[int, int] | None = None

    @property
    def activated(self) -> bool:
        return self.path is None

    def present(self) -> bool:
        """Whether the socket file is still there: the path names our inode (for an
        inherited socket: a socket file is at its address)."""
        try:
            if self.path is None:
                name = self.sock.getsockname()
                if not isinstance(name, str) or not name:
                    return True  # abstract or unnamed: there is no file to lose
                return stat.S_ISSOCK(os.lstat(name).st_mode)
            st = os.lstat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.inode

    def remove(self) -> None:
        """Unlink our socket file if the path still names our inode; never raises."""
        if self.path is None or self.inode is None:
            return
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self.inode:
                os.unlink(self.path)


def _activated_socket(env: Mapping[str, str]) -> socket.socket | None:
    try:
        pid, count = int(env.get("LISTEN_PID", "")), int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return None
    if pid != os.getpid() or count < 1:
        return None
    fd = SD_LISTEN_FDS_START
    # systemd hands the fd over inheritable; ollama serve (our child) must not get it.
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise PathError(f"socket activation: fd {fd} is not a Unix stream socket")
    return sock


def _clear_stale(path: Path) -> None:
    """Unlink ``path`` only if it is a socket nobody listens on."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise PathError(
            f"{path} exists and is not a socket; refusing to remove it. "
            "Remove it yourself or choose another [socket].path / N3D_SOCKET."
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_CONNECT_PROBE_S)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            os.unlink(path)  # stale: its daemon died without cleaning up
            log.info("rpc.stale_socket_removed", path=str(path))
            return
        except (TimeoutError, BlockingIOError):
            pass  # a full backlog: someone is listening but busy — still live
        except OSError as exc:
            raise PathError(f"cannot probe existing socket {path}: {exc.strerror or exc}") from exc
    raise AlreadyRunning(f"another n3d is listening on {path}")


def open_listening_socket(path: Path, env: Mapping[str, str] | None = None) -> BoundSocket:
    """The listening socket at ``path`` (or the socket-activated one), ready to accept."""
    environ = os.environ if env is None else env
    inherited = _activated_socket(environ)
    if inherited is not None:
        if env is None:  # as sd_listen_fds(unset_environment=1): children must not see them
            for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                os.environ.pop(name, None)
        inherited.setblocking(False)
        return BoundSocket(inherited, None)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # umask is process-wide; the window is this one call, before any thread serves.
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
        st = os.lstat(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AlreadyRunning(f"another process created {path} while n3d was starting") from exc
        raise PathError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    return BoundSocket(sock, path, (st.st_dev, st.st_ino))


class Listener:
    """The listening socket at ``path`` while n3d serves; ``env`` for socket activation.

    :meth:`bind` claims it (idempotent; the order above), :meth:`serve` accepts
    until cancelled, :meth:`lost` says whether its file was removed and
    :meth:`rebind` puts a fresh one at the path, :meth:`close` removes it if it
    is still ours.
    """

    def __init__(self, path: Path, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._env = env
        self._bound: BoundSocket | None = None
        self._wait: anyio.CancelScope | None = None  # serve's wait: rebind wakes it

    @property
    def activated(self) -> bool:
        """True when serving a socket inherited from systemd (never unlinked)."""
        return self._bound is not None and self._bound.activated

    def bind(self) -> BoundSocket:
        if self._bound is None:
            self._bound = open_listening_socket(self.path, self._env)
        return self._bound

    def lost(self) -> bool:
        """Whether the socket file was removed (or replaced) since it was bound."""
        return self._bound is not None and not self._bound.present()

    def rebind(self) -> None:
        """Bind a fresh socket at the path, as :meth:`bind` does (raises likewise); the
        old one's backlog is still accepted, then it is closed. Not for an inherited
        socket: its file is systemd's to make."""
        self._bound = open_listening_socket(self.path, {})
        if self._wait is not None:
            self._wait.cancel()

    async def serve(self, on_accept: _OnAccept) -> None:
        """Accept until cancelled; each connection goes to ``on_accept``."""
        bound = self.bind()
        try:
            while True:
                if bound is not self._bound:  # rebound: the old backlog was taken below
                    bound.sock.close()
                    bound = self.bind()
                with anyio.CancelScope() as self._wait:
                    await anyio.wait_readable(bound.sock)
                await self._accept(bound.sock, on_accept)
        finally:
            if bound is not self._bound:
                bound.sock.close()

    async def _accept(self, sock: socket.socket, on_accept: _OnAccept) -> None:
        for _ in range(_ACCEPT_BURST):
            try:
                conn, _addr = sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE, ENFILE, ENOMEM: the server stays up
                log.warning("rpc.accept_failed", error=str(exc))
                await anyio.sleep(_ACCEPT_RETRY_S)
                return
            on_accept(conn)

    def close(self) -> None:
        """Give up the socket: removed if the path still names it, and closed."""
        bound, self._bound = self._bound, None
        if bound is not None:
            bound.remove()
            bound.sock.close()


def peer_hung_up(sock: socket.socket) -> bool:
    """True once the peer has closed both directions, not just its writing side.

    POLLHUP is reported only when both are shut; a client that merely shut down
    writing (``socat`` after its input ends) still wants its answers.
    """
    with contextlib.suppress(OSError, ValueError):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR) for _fd, ev in poller.poll(0))
    return False


async def wait_hung_up(sock: socket.socket) -> None:
    """Return once the peer has closed both directions (see :func:`peer_hung_up`).

    On Linux an epoll instance that watches ``sock`` for nothing but the hang-up
    (``EPOLLHUP`` and ``EPOLLERR`` are always reported) becomes readable when it
    comes, so this waits without polling; elsewhere it looks every 0.1 s.
    """
    if not hasattr(select, "epoll"):
        while not peer_hung_up(sock):  # noqa: ASYNC110 - nothing to wait on but time
            await anyio.sleep(_HANG_UP_POLL_S)
        return
    with select.epoll(1) as hang_ups:
        hang_ups.register(sock.fileno(), 0)
        while not hang_ups.poll(0):
            await anyio.wait_readable(hang_ups.fileno())
