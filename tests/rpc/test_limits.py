"""Bad input and greedy clients: answered or dropped; the server stays up, others never notice.

Every test keeps a :class:`Steady` client calling ``echo`` throughout; ``stop()``
fails the test if any of its calls failed.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from n3d.rpc.listener import peer_credentials

from .support import Raw, Running, Steady

PARSE_ERROR = -32700


@contextlib.contextmanager
def steady(running: Running) -> Iterator[Steady]:
    client = Steady(running.path)
    try:
        yield client
        time.sleep(0.05)  # a few calls after the trouble, too
    finally:
        client.stop()


def _parse_error_then_closed(client: Raw, why: str) -> None:
    reply = client.recv()
    assert reply["error"]["code"] == PARSE_ERROR and reply["id"] is None
    assert why in reply["error"]["message"]
    client.expect_closed()


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_garbage_bytes_get_a_parse_error_and_the_door(
    dial: Callable[..., Raw], running: Running, framing: str
) -> None:
    with steady(running):
        client = dial(running)
        client.send_raw(b"\x00\xff\x13garbage" if framing == "ndjson" else b"\x16\x03\x01TLS")
        _parse_error_then_closed(client, "starts with")


def test_a_10_mib_line_is_refused_at_the_limit(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_message_bytes=1_048_576)
    with steady(running):
        client = dial(running)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.send_raw(
                b'{"jsonrpc":"2.0","method":"echo","params":{"value":"' + b"x" * (10 << 20)
            )
        _parse_error_then_closed(client, "exceeds max_message_bytes")


@pytest.mark.parametrize(
    "partial",
    [b'{"jsonrpc": "2.0", "method": "ec', b"Content-Length: 100\r\n\r\n{", b"Content-Len"],
)
def test_unterminated_frame_held_open_times_out(
    dial: Callable[..., Raw], start_server: Callable[..., Running], partial: bytes
) -> None:
    running = start_server(frame_timeout_s=0.5)
    with steady(running):
        client = dial(running, "lsp" if partial.startswith(b"C") else "ndjson")
        client.send_raw(partial)
        # A trickle does not reset the clock: a byte every 0.1 s for as long as it takes
        # still times out (were the clock reset, this would go on until the deadline).
        deadline = time.monotonic() + 30
        while not select.select([client.sock], [], [], 0.1)[0]:
            assert time.monotonic() < deadline, "a trickle kept the frame open"
            client.send_raw(b" ")
        _parse_error_then_closed(client, "incomplete after 0.5 s")


def test_idle_connection_between_frames_is_not_timed_out(
    dial: Callable[..., Raw],
    start_server: Callable[..., Running],
) -> None:
    running = start_server(frame_timeout_s=0.2)
    client = dial(running)
    time.sleep(0.4)
    assert client.call({"jsonrpc": "2.0", "method": "get_data", "id": 1})["result"] == ["hello", 5]


@pytest.mark.parametrize(
    "length", [b"-1", b"-99999999", b"99999999999999999999999", b"2000000", b"x1"]
)
def test_bad_content_length_is_refused(
    dial: Callable[..., Raw], running: Running, length: bytes
) -> None:
    with steady(running):
        client = dial(running, "lsp")
        client.send_raw(b"Content-Length: " + length + b"\r\n\r\n{}")
        reply = client.recv()
        assert reply["error"]["code"] == PARSE_ERROR and reply["id"] is None
        client.expect_closed()


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_deep_json_nesting_is_a_parse_error_and_the_connection_lives(
    dial: Callable[..., Raw], running: Running, framing: str
) -> None:
    with steady(running):
        client = dial(running, framing)
        deep = b"[" * 200_000 + b"]" * 200_000
        nested_params = (
            b'{"jsonrpc":"2.0","method":"echo","params":{"value":'
            + b"[" * 50_000
            + b"]" * 50_000
            + b'},"id":7}'
        )
        for body in (deep, nested_params):
            client.send(body)
            reply = client.recv()
            assert reply["error"]["code"] == PARSE_ERROR and reply["id"] is None
        assert client.call({"jsonrpc": "2.0", "method": "get_data", "id": 8})["id"] == 8


def test_300_simultaneous_connections_beyond_max_connections(
    dial: Callable[..., Raw],
    start_server: Callable[..., Running],
) -> None:
    running = start_server(max_connections=50)
    with steady(running):
        clients = [dial(running) for _ in range(300)]
        for i, client in enumerate(clients):
            # Beyond the refusals n3d bothers to word, a connection is closed at once.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                client.send({"jsonrpc": "2.0", "method": "echo", "params": {"value": i}, "id": i})
        served = busy = closed = 0
        for i, client in enumerate(clients):
            try:
                reply = client.recv()
            except (EOFError, ConnectionResetError):
                closed += 1
                continue
            if "result" in reply:
                assert reply == {"jsonrpc": "2.0", "result": {"value": i}, "id": i}
                served += 1
            else:
                assert reply["error"]["code"] == -32000 and reply["id"] == i
                assert "busy" in reply["error"]["message"]
                busy += 1
                client.expect_closed()
        assert served == 49  # the steady client holds the 50th place
        assert busy >= 1 and served + busy + closed == 300
        for client in clients:
            client.close()
        _wait_for(lambda: running.server.connection_count == 1)


@pytest.mark.slow
def test_a_client_that_never_reads_is_dropped_and_memory_stays_bounded(
    dial: Callable[..., Raw],
    start_server: Callable[..., Running],
) -> None:
    running = start_server(max_outgoing_bytes=64 * 1024)
    with steady(running), capture_logs() as logs:
        hog = dial(running, timeout=10)
        request = {"jsonrpc": "2.0", "method": "echo", "params": {"value": "x" * 4096}, "id": 1}
        line = Raw.ndjson(request)
        dropped = False
        for _ in range(20_000):  # ≈ 80 MiB of replies if nothing stopped it
            try:
                hog.send_raw(line * 16)
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
        assert dropped
        assert any(e["event"] == "rpc.client_too_slow" for e in logs)


class _Impostors:
    """The peer-credential seam: the next ``pending`` connections look like uid ``uid``."""

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.pending = 0

    def __call__(self, sock: Any) -> tuple[int | None, int | None]:
        if self.pending:
            self.pending -= 1
            return self.uid, 4242
        return None, None  # "the OS cannot say": allowed, the 0700 directory protects


def test_a_peer_with_another_uid_is_refused_and_logged(
    dial: Callable[..., Raw],
    start_server: Callable[..., Running],
) -> None:
    impostors = _Impostors(uid=54321)
    running = start_server(peer_credentials=impostors)
    with steady(running), capture_logs() as logs:
        impostors.pending = 1
        stranger = dial(running)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may be gone already
            stranger.send({"jsonrpc": "2.0", "method": "get_data", "id": 1})
        stranger.expect_closed()
        refused = [e for e in logs if e["event"] == "rpc.peer_refused"]
        assert refused and refused[0]["uid"] == 54321 and refused[0]["pid"] == 4242


def test_root_peer_is_allowed(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    impostors = _Impostors(uid=0)
    running = start_server(peer_credentials=impostors)
    impostors.pending = 1
    client = dial(running)
    assert client.call({"jsonrpc": "2.0", "method": "get_data", "id": 1})["result"] == ["hello", 5]


def test_real_peer_credentials_are_ours() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        uid, pid = peer_credentials(left)
    assert uid == os.geteuid() and pid == os.getpid()
