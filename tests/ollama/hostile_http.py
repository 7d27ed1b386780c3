"""A hostile "Ollama" on a real socket, and the process's peak memory, for the size tests.

Whoever binds Ollama's port first is the server n3d talks to, so it may answer with
a body that never ends, a line that never breaks, or one byte at a time. The server
here does each, writing until the client hangs up (:meth:`HostileServer.hung_up`) or ``ceiling``
bytes have gone out: an endless body as far as a client can tell, but a safe one
when a test runs against code that reads everything.
"""

from __future__ import annotations

import contextlib
import resource
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
CHUNK = b"a" * MiB


class HostileHandler(BaseHTTPRequestHandler):
    """Serves the answer its server has for ``METHOD /path``; the rest are 404."""

    protocol_version = "HTTP/1.1"
    server: HostileServer

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.headers[self.path] = dict(self.headers)
        self.server.hits.append(self.path)
        answer = self.server.routes.get(f"{self.command} {self.path}")
        if answer is None:
            answer = self.server.routes.get(self.path, not_found)
        try:
            answer(self)
        except (BrokenPipeError, ConnectionResetError):
            self.server.hung_up(self.path).set()
        self.close_connection = True

    do_GET = do_POST = do_HEAD = do_DELETE = _answer  # http.server's naming

    def head(self, status: int = 200, length: int | None = None, **extra: str) -> None:
        """Status and headers; without ``length`` the body runs until the connection
        closes. ``extra`` headers are named with underscores (``content_encoding``)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Connection", "close")
        self.end_headers()

    def endless(self, prefix: bytes) -> None:
        """``prefix``, then ``a`` until the client hangs up or the ceiling is reached."""
        sent = self.server.sent[self.path] = len(prefix)
        self.wfile.write(prefix)
        while sent < self.server.ceiling:
            sent = self.server.sent[self.path] = sent + len(CHUNK)
            self.wfile.write(CHUNK)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        return


Answer = Callable[[HostileHandler], None]


def not_found(h: HostileHandler) -> None:
    h.head(404, 18)
    h.wfile.write(b"404 page not found")


def json_answer(body: bytes) -> Answer:
    def answer(h: HostileHandler) -> None:
        h.head(200, len(body))
        if h.command != "HEAD":
            h.wfile.write(body)

    return answer


def endless_body(prefix: bytes = b'{"models":[{"name":"') -> Answer:
    """200 with a body that never ends (no Content-Length): a JSON string that grows."""

    def answer(h: HostileHandler) -> None:
        h.head(200)
        h.endless(prefix)

    return answer


def endless_line(first_lines: bytes = b'{"status":"pulling manifest"}\n') -> Answer:
    """200 with NDJSON whose next line never breaks."""

    def answer(h: HostileHandler) -> None:
        h.head(200)
        h.endless(first_lines + b'{"status":"')

    return answer


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, *, ceiling: int = 512 * MiB) -> None:
        super().__init__(("127.0.0.1", port), HostileHandler)
        self.ceiling = ceiling
        self.routes: dict[str, Answer] = {
            "/": json_answer(b"Ollama is running"),
            "/api/version": json_answer(b'{"version":"0.13.5"}'),
        }
        self._hangups: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.sent: dict[str, int] = {}  # bytes of the last endless answer per path
        self.headers: dict[str, dict[str, str]] = {}  # the last request's, per path
        self.hits: list[str] = []  # every path asked for, in order
        self.stop = threading.Event()  # ends slow answers at teardown

    def hung_up(self, path: str) -> threading.Event:
        """Set once a client hung up on ``path`` mid-answer."""
        with self._lock:
            return self._hangups.setdefault(path, threading.Event())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(server: HostileServer) -> Iterator[HostileServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


# -- peak memory ---------------------------------------------------------------------


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def peak_rss(pid: int | str = "self") -> int:
    """The peak resident memory of ``pid`` in bytes (Linux VmHWM; else our ru_maxrss)."""
    kib = _status_kib(pid, "VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * 1024


def reset_peak(pid: int | str = "self") -> None:
    """Start ``pid``'s peak afresh from its current RSS, where Linux allows it."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset VmHWM (Linux 4.0+)


@contextmanager
def peak_growth() -> Iterator[Callable[[], int]]:
    """Yields a function giving how far this process's peak RSS rose inside the block."""
    reset_peak()
    before = peak_rss()
    yield lambda: peak_rss() - before
