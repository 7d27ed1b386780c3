"""What a hostile local client sends (issue 13): refused where it enters, never run, never echoed.

Every test keeps a :class:`Steady` client calling ``echo`` throughout where the
trouble could reach others; ``stop()`` fails the test if any of its calls failed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from structlog.testing import capture_logs

from .support import Raw, Running, Steady

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


@contextlib.contextmanager
def steady(running: Running) -> Iterator[Steady]:
    client = Steady(running.path)
    try:
        yield client
    finally:
        client.stop()


def strict_json(data: bytes) -> Any:
    """``json.loads`` that refuses NaN and Infinity, as every other JSON parser does."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(data, parse_constant=refuse)


def read_line(client: Raw) -> bytes:
    while b"\n" not in client.buf:
        chunk = client.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        client.buf += chunk
    line, _, client.buf = client.buf.partition(b"\n")
    return line


def test_request_id_1e400_is_refused_with_null_id_and_the_method_never_runs(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send_raw(b'{"jsonrpc":"2.0","method":"update","params":[1],"id":1e400}\n')
    reply = strict_json(read_line(client))
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": INVALID_REQUEST, "message": "Invalid Request"},
        "id": None,
    }
    client.send_raw(b'[{"jsonrpc":"2.0","method":"update","id":-1e400},'
                    b'{"jsonrpc":"2.0","method":"get_data","id":2}]\n')
    batch = strict_json(read_line(client))
    assert sorted(json.dumps(r, sort_keys=True) for r in batch) == sorted(
        json.dumps(r, sort_keys=True)
        for r in (
            {"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": "Invalid Request"},
             "id": None},
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": 2},
        )
    )
    assert running.record.notified == []  # `update` never ran


def test_differing_content_length_headers_get_a_parse_error_and_the_door(
    dial: Callable[..., Raw], running: Running
) -> None:
    with steady(running):
        client = dial(running, "lsp")
        body = b'{"jsonrpc":"2.0","method":"get_data","id":1}'
        client.send_raw(b"Content-Length: 2\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        reply = client.recv()
        assert reply["error"]["code"] == PARSE_ERROR and reply["id"] is None
        assert "conflicting Content-Length" in reply["error"]["message"]
        client.expect_closed()


def test_identical_repeated_content_length_headers_are_one_length(
    dial: Callable[..., Raw], running: Running
) -> None:
    client = dial(running, "lsp")
    body = b'{"jsonrpc":"2.0","method":"get_data","id":1}'
    client.send_raw(b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body))
                    + body)
    assert client.recv() == {"jsonrpc": "2.0", "result": ["hello", 5], "id": 1}


def test_an_event_that_is_not_json_is_dropped_and_logged_not_raised_or_sent(
    raw: Callable[..., Raw], running: Running
) -> None:
    subscriber = raw()
    assert subscriber.call({"jsonrpc": "2.0", "method": "events.subscribe", "id": 1})["id"] == 1
    with capture_logs() as logs:
        assert running.broadcast("health", {"latency_ms": float("nan")}) == 0
    assert [e["event"] for e in logs] == ["rpc.event_not_json"]
    assert running.broadcast("health", {"ok": True}) == 1
    assert strict_json(read_line(subscriber))["params"] == {"topic": "health", "ok": True}


def test_a_notification_that_is_not_json_is_dropped_and_the_call_still_answers(
    raw: Callable[..., Raw],
) -> None:
    client = raw()
    with capture_logs() as logs:
        client.send_raw(b'{"jsonrpc":"2.0","method":"notify_nan","id":1}\n')
        assert strict_json(read_line(client)) == {
            "jsonrpc": "2.0", "result": {"notified": True}, "id": 1
        }
    assert any(e["event"] == "rpc.notification_not_json" for e in logs)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
