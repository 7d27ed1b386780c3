"""A real n3d beside a hostile "Ollama": poisoned JSON is error 1010, and n3d lives on.

In `auto` or `external` mode any local user who binds Ollama's port first is the
server n3d talks to. This one answers `/` and `/api/version` like Ollama, and
`/api/tags` and `/api/ps` with a size of `1e400` (a double's overflow), then with
JSON nested 100 000 deep. Before the fix either one ended n3d from a background task.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from n3d.client import RpcError
from n3d.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.slow

DEEP = 100_000
POISONS = {
    "overflow": b'{"models":[{"name":"m:latest","model":"m:latest","size":1e400,'
    b'"size_vram":1e400,"expires_at":"2026-01-01T00:00:00Z"}]}',
    "deep": b'{"models":' + b"[" * DEEP + b"]" * DEEP + b"}",
}


class HostileOllama(BaseHTTPRequestHandler):
    """Ollama's `/` and `/api/version`; poisoned `/api/tags` and `/api/ps`."""

    protocol_version = "HTTP/1.1"
    server: HostileServer

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # http.server's naming
        self.do_GET()

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif self.path == "/api/version":
            self._send(200, b'{"version":"0.13.5"}')
        elif self.path in ("/api/tags", "/api/ps"):
            self._send(200, POISONS[self.server.poison])
        else:
            self._send(404, b"404 page not found", "text/plain")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits.append(self.path)
        self._send(200, POISONS[self.server.poison])

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the test reads ``hits`` instead


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), HostileOllama)
        self.poison = "overflow"
        self.hits: list[str] = []


@pytest.fixture
def daemon_beside_hostile_server(short_dir: Path) -> Iterator[tuple[DaemonProcess, HostileServer]]:
    home = short_dir
    d = DaemonProcess(home, config={"server": {"mode": "external"}})
    server = HostileServer(d.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield d, server
    finally:
        d.cleanup()
        server.shutdown()
        server.server_close()


def test_poisoned_json_from_a_hostile_server_is_1010_and_n3d_lives_on(
    daemon_beside_hostile_server: tuple[DaemonProcess, HostileServer],
) -> None:
    d, server = daemon_beside_hostile_server
    d.start().wait_ready("external")
    for poison in POISONS:
        server.poison = poison
        polls = server.hits.count("/api/ps")

        def polled_twice_more(polls: int = polls) -> bool:
            assert d.proc is not None and d.proc.poll() is None, d.describe()
            return server.hits.count("/api/ps") >= polls + 2

        # keep-warm polls /api/ps in the background (at least every 10 s): let it
        # read the poison a few times, as the model-list refresh read /api/tags.
        wait_until(polled_twice_more, 40, "keep-warm polls")
        for method in ("models.list", "models.loaded"):
            params = {"refresh": True} if method == "models.list" else None
            with pytest.raises(RpcError) as info:
                d.call(method, params)
            assert info.value.code == 1010, (poison, method, info.value)
            assert info.value.data["kind"] == "ollama_error"
        assert d.proc is not None and d.proc.poll() is None, d.describe()
        status = d.call("status")
        assert status["server"]["state"] == "external"
    warnings = [e for e in d.events("ollama.unusable_answer") if e["level"] == "warning"]
    assert {e["request"] for e in warnings} >= {"GET /api/tags", "GET /api/ps"}
    assert "Traceback" not in d.stderr(), d.stderr()
    assert d.stop() == 0
