"""Whom n3d and its clients trust: a private runtime directory, a peer that is us or root.

The one place these two rules live, shared by the daemon (before it creates
its lock and socket; on every accepted connection) and by its clients (before
they connect to the default socket; right after they connect to any socket):

- :func:`private_dir_problem`: a runtime directory is safe when it is a real
  directory (not a symlink), owned by the effective uid, with no permission bits
  for group or others. ``/tmp/n3-$UID`` is the case that matters: when
  ``XDG_RUNTIME_DIR`` is unset anyone can create that name first, and whoever
  owns the directory owns the socket inside it.
- :func:`peer_credentials` and :func:`trusted_uid`: the process at the other
  end of a Unix socket must run as the same uid or as root (SO_PEERCRED on
  Linux, LOCAL_PEERCRED, which is getpeereid() underneath, on macOS).

Standard library only, and cheap to import (``os`` already loads ``stat``):
`n3ctl status` runs it on every call.
"""

from __future__ import annotations

import os
import socket
import stat
import sys

__all__ = ["peer_credentials", "private_dir_problem", "trusted_uid"]

# macOS: getsockopt(SOL_LOCAL=0, LOCAL_PEERCRED=1) → struct xucred {u_int version; uid_t uid; ...}
_SOL_LOCAL, _LOCAL_PEERCRED, _LOCAL_PEERPID = 0, 1, 2
_XUCRED_SIZE = 76


def private_dir_problem(path: str) -> str | None:
    """Why ``path`` is not a safe private directory (what is wrong, what to do), or None.

    Raises ``OSError`` when ``path`` cannot be inspected: callers decide what a
    missing directory means (the daemon has just created it; a client finds no
    daemon there).
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink; refusing to use it. Remove it and try again."
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} exists and is not a directory. Remove it and try again."
    euid = os.geteuid()
    if st.st_uid != euid:
        return (
            f"{path} is owned by uid {st.st_uid}, not by you (uid {euid}); "
            "refusing to use it. Remove it, or set XDG_RUNTIME_DIR / N3D_SOCKET elsewhere."
        )
    if st.st_mode & 0o077:
        return (
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be private (0700). "
            f"Fix it with: chmod 700 {path}"
        )
    return None


def trusted_uid(uid: int | None) -> bool:
    """The peer runs as us or as root; ``None`` (the OS cannot say) is trusted."""
    return uid is None or uid in (os.geteuid(), 0)


def peer_credentials(sock: socket.socket) -> tuple[int | None, int | None]:
    """``(uid, pid)`` of the process at the other end; ``None`` where the OS cannot say.

    Raises ``OSError`` if the socket cannot be asked (closed, not a Unix socket).
    """
    if hasattr(socket, "SO_PEERCRED"):  # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid;}
        # Three native C ints; memoryview reads them without importing struct,
        # which n3ctl status would pay for on every call.
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid, uid, _gid = memoryview(raw).cast("i")
        return uid, pid
    if sys.platform == "darwin":  # getpeereid() is LOCAL_PEERCRED underneath
        import struct

        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
        _version, uid = struct.unpack_from("=II", raw)
        pid: int | None
        try:
            pid = struct.unpack("i", sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERPID, 4))[0]
        except OSError:  # older macOS: no LOCAL_PEERPID; the uid is what matters
            pid = None
        return uid, pid
    return None, None
