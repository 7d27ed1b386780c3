"""Progress, cancellation, events and disconnects on a running server."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from .support import Raw, Running


def _req(method: str, params: object, request_id: object) -> dict[str, object]:
    request = {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
    return request if params is not None else {k: v for k, v in request.items() if k != "params"}


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_progress_notifications_precede_the_response(raw: Callable[..., Raw], framing: str) -> None:
    client = raw(framing)
    client.send(_req("progress", {"steps": 3, "workDoneToken": "tok-1"}, 1))
    messages = [client.recv() for _ in range(6)]
    progress, response = messages[:5], messages[5]
    assert all(m["method"] == "$/progress" and m["params"]["token"] == "tok-1" for m in progress)
    assert [m["params"]["value"]["kind"] for m in progress] == ["begin"] + ["report"] * 3 + ["end"]
    assert [m["params"]["value"].get("percentage") for m in progress[1:4]] == [33, 66, 100]
    assert response == {"jsonrpc": "2.0", "result": {"steps": 3}, "id": 1}


def test_cancel_request_answers_32800_and_stops_the_handler(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw("lsp")
    client.send(_req("sleep", {"seconds": 30, "tag": "long"}, 5))
    client.send(_req("echo", {"value": 1}, 6))
    assert client.recv()["id"] == 6  # the sleep is running, the connection is not blocked
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 5}})
    reply = client.recv()
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32800, "message": "Request cancelled"},
        "id": 5,
    }
    assert running.record.cancelled == ["long"]


def test_cancel_of_unknown_id_is_ignored(raw: Callable[..., Raw]) -> None:
    client = raw()
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 99}})
    client.send({"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}})
    assert client.call(_req("get_data", None, 1))["result"] == ["hello", 5]


def test_cancel_with_progress_closes_the_progress_first(raw: Callable[..., Raw]) -> None:
    client = raw()
    client.send(_req("progress", {"steps": 1, "hold": 30, "workDoneToken": 9}, "p"))
    assert [client.recv()["params"]["value"]["kind"] for _ in range(2)] == ["begin", "report"]
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "p"}})
    assert client.recv()["params"] == {"token": 9, "value": {"kind": "end"}}
    assert client.recv()["error"]["code"] == -32800


def test_a_client_that_hangs_up_mid_request_costs_nothing(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send(_req("sleep", {"seconds": 30, "tag": "orphan"}, 1))
    _wait_for(lambda: running.server.connection_count == 1)
    time.sleep(0.05)
    client.close()
    _wait_for(lambda: running.record.cancelled == ["orphan"], timeout=2)
    _wait_for(lambda: running.server.connection_count == 0)


def test_a_half_closed_client_still_gets_its_answers(running: Running) -> None:
    # What `echo '{...}' | socat - UNIX-CONNECT:...` does: send, shut down writing, read.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(running.path))
        sock.sendall(b'{"jsonrpc":"2.0","method":"sleep","params":{"seconds":0.2},"id":1}\n')
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data == b'{"jsonrpc":"2.0","result":{"slept":0.2},"id":1}\n'


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_events_reach_subscribers_of_their_topic_only(
    raw: Callable[..., Raw], running: Running, framing: str
) -> None:
    health, everything, nobody = raw(framing), raw(), raw()
    assert health.call(_req("events.subscribe", {"topics": ["health"]}, 1))["id"] == 1
    assert everything.call(_req("events.subscribe", {}, 1))["id"] == 1
    assert running.broadcast("server.state", {"from": "starting", "to": "running"}) == 1
    assert running.broadcast("health", {"ok": True}) == 2
    assert everything.recv()["params"] == {
        "topic": "server.state",
        "from": "starting",
        "to": "running",
    }
    assert everything.recv()["params"] == {"topic": "health", "ok": True}
    event = health.recv()
    assert event == {"jsonrpc": "2.0", "method": "event", "params": {"topic": "health", "ok": True}}
    assert nobody.call(_req("get_data", None, 2))["id"] == 2  # and received no event first
    assert health.call(_req("events.unsubscribe", None, 3))["result"] == {}
    assert running.broadcast("health", {"ok": False}) == 1
