"""What a hostile local client sends (issue 13): refused where it enters, never run, never echoed.

Every test keeps a :class:`Steady` client calling ``echo`` throughout where the
trouble could reach others; ``stop()`` fails the test if any of its calls failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from .support import Raw, Running, Steady

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
SERVER_BUSY = -32000


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
    client.send_raw(
        b'[{"jsonrpc":"2.0","method":"update","id":-1e400},'
        b'{"jsonrpc":"2.0","method":"get_data","id":2}]\n'
    )
    batch = strict_json(read_line(client))
    assert sorted(json.dumps(r, sort_keys=True) for r in batch) == sorted(
        json.dumps(r, sort_keys=True)
        for r in (
            {
                "jsonrpc": "2.0",
                "error": {"code": INVALID_REQUEST, "message": "Invalid Request"},
                "id": None,
            },
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
    client.send_raw(
        b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)) + body
    )
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
            "jsonrpc": "2.0",
            "result": {"notified": True},
            "id": 1,
        }
    assert any(e["event"] == "rpc.notification_not_json" for e in logs)


# -- batches and the reply cap ---------------------------------------------------------


def _echo(value: Any, request_id: Any) -> bytes:
    message = {"jsonrpc": "2.0", "method": "echo", "params": {"value": value}, "id": request_id}
    return json.dumps(message).encode()


def _batch(members: list[bytes]) -> bytes:
    return b"[" + b",".join(members) + b"]\n"


def _busy_then_closed(client: Raw, request_id: Any) -> dict[str, Any]:
    reply: dict[str, Any] = client.recv()
    assert reply["id"] == request_id and reply["error"]["code"] == SERVER_BUSY, reply
    assert "closing it" in reply["error"]["message"]
    client.expect_closed()
    return reply


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_a_batch_whose_replies_pass_the_cap_ends_that_connection_with_an_error(
    dial: Callable[..., Raw], start_server: Callable[..., Running], framing: str
) -> None:
    running = start_server(max_outgoing_bytes=64 * 1024)
    with steady(running), capture_logs() as logs:
        attacker = dial(running, framing)
        # 2 000 replies of ~150 bytes: 300 KB of reply for a 140 KB request.
        attacker.send(_batch([_echo("x" * 100, i) for i in range(2000)]))
        _busy_then_closed(attacker, None)
    assert any(e["event"] == "rpc.reply_too_large" for e in logs)


def test_a_reply_larger_than_the_cap_ends_the_connection_even_with_nothing_unread(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_outgoing_bytes=64 * 1024)
    with steady(running):
        client = dial(running)
        assert client.call(json.loads(_echo("small", 1)))["result"] == {"value": "small"}
        client.send_raw(_echo("x" * 100_000, 2) + b"\n")
        _busy_then_closed(client, 2)


def test_a_batch_within_the_cap_is_answered_whole(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_outgoing_bytes=64 * 1024, max_inflight=4)
    client = dial(running)
    client.send_raw(
        b'[1,{"jsonrpc":"2.0","method":"update"},'
        + b",".join(_echo(i, i) for i in range(300))
        + b"]\n"
    )
    reply = client.recv()
    assert len(reply) == 301  # the invalid member's error, 300 results, no notification
    assert sorted(r["id"] for r in reply if "result" in r) == list(range(300))


def test_batch_members_count_toward_the_connections_in_flight_limit(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_inflight=4)
    client = dial(running)
    gauges = [
        b'{"jsonrpc":"2.0","method":"gauge","params":{"seconds":0.002},"id":%d}' % i
        for i in range(200)
    ]
    # Two batches and single requests pipelined: together never more than 4 at once.
    client.send_raw(
        _batch(gauges[:100]) + b"\n".join(gauges[100:150]) + b"\n" + _batch(gauges[150:])
    )
    replies = [client.recv() for _ in range(52)]
    flat = [r for reply in replies for r in (reply if isinstance(reply, list) else [reply])]
    assert sorted(r["id"] for r in flat) == list(range(200))
    assert running.record.most_concurrent == 4


def test_a_batch_of_10000_slow_calls_is_not_10000_tasks(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_inflight=8)
    client = dial(running)
    client.send_raw(
        _batch(
            [
                b'{"jsonrpc":"2.0","method":"sleep","params":{"seconds":30,"tag":"t%d"},"id":%d}'
                % (i, i)
                for i in range(10_000)
            ]
        )
    )
    _wait_for(lambda: len(running.record.started) == 8)
    tasks = running.portal.call(lambda: len(asyncio.all_tasks()))
    assert tasks < 50  # a pool of 8 workers and the server's own, not one per member
    assert running.record.started == [f"t{i}" for i in range(8)]
    client.close()  # hanging up cancels the batch
    _wait_for(lambda: len(running.record.cancelled) == 8)


# -- idle connections at max_connections -------------------------------------------------


def _status(request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "status", "id": request_id}


def _served_newcomer(running: Running, dial: Callable[..., Raw]) -> Raw:
    """A new connection whose `status` is answered, retried while n3d says busy."""
    deadline = time.monotonic() + 10
    while True:
        client = dial(running)
        with contextlib.suppress(EOFError, ConnectionResetError, BrokenPipeError):
            reply = client.call(_status("new"))
            if "result" in reply:
                return client
            assert reply["error"]["code"] == SERVER_BUSY and reply["id"] == "new"
        client.close()
        assert time.monotonic() < deadline, "a new client was never served"
        time.sleep(0.05)


def test_idle_connections_filling_the_limit_make_room_for_a_new_client(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_connections=8, evict_idle_after_s=0.2)
    leaked = [dial(running) for _ in range(8)]  # a leaking plugin: one call each, then nothing
    for i, conn in enumerate(leaked):
        assert conn.call(_status(i))["id"] == i
    with capture_logs() as logs:
        newcomer = _served_newcomer(running, dial)
    # The one idle longest (the first) was told why, then closed.
    notice = leaked[0].recv()
    assert notice["id"] is None and notice["error"]["code"] == SERVER_BUSY
    assert "is closed to make room" in notice["error"]["message"]
    leaked[0].expect_closed()
    evicted = [e for e in logs if e["event"] == "rpc.evicted"]
    assert len(evicted) == 1 and evicted[0]["pid"] is not None
    assert leaked[1].call(_status("still"))["id"] == "still"  # the others are untouched
    assert newcomer.call(_status("again"))["id"] == "again"


def test_connections_with_calls_in_flight_or_subscriptions_are_never_evicted(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_connections=3, evict_idle_after_s=0.2)
    subscriber, busy, idle = dial(running), dial(running), dial(running)
    assert subscriber.call({"jsonrpc": "2.0", "method": "events.subscribe", "id": 1})["id"] == 1
    busy.send({"jsonrpc": "2.0", "method": "sleep", "params": {"seconds": 30, "tag": "b"}, "id": 2})
    running.record.wait_started("b")
    assert idle.call(_status(3))["id"] == 3
    newcomer = _served_newcomer(running, dial)  # only `idle` could make room
    assert idle.recv()["error"]["code"] == SERVER_BUSY
    idle.expect_closed()
    newcomer.send(
        {"jsonrpc": "2.0", "method": "sleep", "params": {"seconds": 30, "tag": "n"}, "id": 4}
    )
    running.record.wait_started("n")
    refused = dial(running)  # nobody is idle now: the newcomer is refused, nobody evicted
    assert refused.call(_status("late"))["error"]["code"] == SERVER_BUSY
    refused.expect_closed()
    assert running.broadcast("health", {"ok": True}) == 1
    assert subscriber.recv()["params"] == {"topic": "health", "ok": True}
    busy.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}})
    assert busy.recv()["error"]["code"] == -32800


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)
