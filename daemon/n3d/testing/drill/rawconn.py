"""A bare NDJSON (or LSP-framed) connection, for what :class:`n3d.client.Connection` won't send.

The subscriber, the raw pulls (cancelled with ``$/cancelRequest``, abandoned) and the
bad-frame drill talk to n3d's socket through :class:`RawConn`: it sends any bytes, reads
one message at a time with a deadline, and reports EOF or a reset as None.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _not_json(name: str) -> Any:
    raise ValueError(f"n3d wrote {name}, which is not JSON")


class RawConn:
    """A bare NDJSON connection, for what :class:`Connection` will not send."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.sock.connect(str(path))
                    break
                except BlockingIOError:  # a full backlog refuses at once; retry
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        except OSError:
            self.sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message).encode() + b"\n")

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None at EOF (or reset); TimeoutError if none in time.

        Strict JSON: ``NaN`` or ``Infinity`` from n3d raise ValueError.
        """
        deadline = time.monotonic() + timeout
        while True:
            head = self.buf.find(b"\r\n\r\n")
            if self.buf[:15].lower() == b"content-length:" and head >= 0:  # LSP framing
                length = int(self.buf[15:head].split(b"\r\n")[0])
                if len(self.buf) >= head + 4 + length:
                    body = bytes(self.buf[head + 4 : head + 4 + length])
                    del self.buf[: head + 4 + length]
                    lsp: dict[str, Any] = json.loads(body, parse_constant=_not_json)
                    return lsp
            nl = -1 if bytes(self.buf[:1]) in (b"C", b"c") else self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[: nl + 1]
                if line.strip():
                    message: dict[str, Any] = json.loads(line, parse_constant=_not_json)
                    return message
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def read_until(
        self, want: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            message = self.read(max(0.01, deadline - time.monotonic()))
            if message is None or want(message):
                return message

    def close(self) -> None:
        self.sock.close()
