"""Another user posing as n3d: a forked process that drops to uid 65534 and serves a socket.

It answers any request it reads with one canned reply (id 1, a result that
looks like `status` and `models.default`), the way a local attacker who
created ``/tmp/n3-$UID`` first would. It reports through a pipe what it saw:
``accept`` for each connection and ``recv N`` for the bytes of each read, so
tests can prove a client refused before sending anything. Needs root (to drop
privileges); the tests skip otherwise.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time
import warnings
from pathlib import Path

NOBODY = 65534

ANSWER = {
    "model": "squatter:latest",
    "daemon": {"version": "squatter", "pid": 1, "uptime_s": 1, "socket": "?"},
    "server": {"state": "running", "mode": "managed", "base_url": "http://evil", "pid": 1},
    "health": {},
    "resources": {},
    "models": {},
}
REPLY = json.dumps({"jsonrpc": "2.0", "id": 1, "result": ANSWER}).encode() + b"\n"


def lend(directory: Path, uid: int = NOBODY) -> None:
    """Hand ``directory`` to ``uid`` (0700), as a squatter who created it would have it."""
    os.chown(directory, uid, uid)
    os.chmod(directory, 0o700)


class Squatter:
    """Serves ``path`` as ``uid`` from a forked child until :meth:`stop`.

    The parent of ``path`` must be writable by ``uid`` and every directory
    above it searchable (see :func:`lend`).
    """

    def __init__(self, path: Path, uid: int = NOBODY) -> None:
        self.path = path
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a process with threads; the
            # child below only makes system calls and leaves with os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read_end)
            code = 1
            try:
                self._serve(write_end, uid)
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid = pid
        self._reports = os.fdopen(read_end, "r")
        line = self._reports.readline()
        if line != "ready\n":
            self.stop()
            raise RuntimeError(f"the squatter did not start: {line!r}")
        self.seen: list[str] = []

    def _serve(self, report: int, uid: int) -> None:  # pragma: no cover - the child
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(8)
        os.write(report, b"ready\n")
        while True:
            conn, _ = listener.accept()
            os.write(report, b"accept\n")
            with conn:
                data = conn.recv(65536)
                os.write(report, f"recv {len(data)}\n".encode())
                if data:
                    conn.sendall(REPLY)
                    conn.recv(65536)  # until the client hangs up

    def stop(self, expect: int = 0, within_s: float = 10.0) -> list[str]:
        """Kill the child (ours, by pid); what it reported, line by line. Idempotent.

        ``expect`` lines are waited for first (up to ``within_s``): a client that
        connected and hung up may still sit in the backlog when the test stops the
        squatter, and killing it then would lose that ``accept`` from the record.
        """
        if self._reports.closed:
            return self.seen
        deadline = time.monotonic() + within_s
        early: list[str] = []
        fd = self._reports.fileno()
        pending = b""
        while len(early) < expect and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            pending += chunk
            *lines, rest = pending.split(b"\n")
            pending = rest
            early += [line.decode() for line in lines]
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        tail = (pending + _read_all(fd)).decode()
        self.seen = early + tail.splitlines()
        self._reports.close()
        return self.seen


def _read_all(fd: int) -> bytes:
    """Everything left in the pipe once the writer is gone."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
