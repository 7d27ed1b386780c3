"""Progress, cancellation, events and disconnects on a running server."""

from __future__ import annotations

import json
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


def _cancel_token(token: object) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "method": "window/workDoneProgress/cancel",
        "params": {"token": token},
    }


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_work_done_progress_cancel_cancels_the_request_with_that_token(
    raw: Callable[..., Raw], running: Running, framing: str
) -> None:
    # What an LSP client's cancel button sends: the progress token, not the request id.
    client = raw(framing)
    client.send(_req("progress", {"steps": 1, "hold": 30, "workDoneToken": "pull-1"}, 7))
    assert [client.recv()["params"]["value"]["kind"] for _ in range(2)] == ["begin", "report"]
    client.send(_cancel_token("pull-1"))
    assert client.recv()["params"] == {"token": "pull-1", "value": {"kind": "end"}}
    assert client.recv() == {
        "jsonrpc": "2.0",
        "error": {"code": -32800, "message": "Request cancelled"},
        "id": 7,
    }
    # The token is free again: a new request may use it and is not cancelled by the old one.
    client.send(_req("progress", {"steps": 1, "workDoneToken": "pull-1"}, 8))
    assert [client.recv()["params"]["value"]["kind"] for _ in range(3)] == [
        "begin",
        "report",
        "end",
    ]
    assert client.recv() == {"jsonrpc": "2.0", "result": {"steps": 1}, "id": 8}


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_work_done_progress_cancel_reaches_a_request_behind_a_busy_worker(
    raw: Callable[..., Raw], running: Running, framing: str
) -> None:
    client = raw(framing)
    client.send(_req("sleep", {"seconds": 30, "tag": "worker"}, 1))
    client.send(_req("sleep", {"seconds": 30, "tag": "task", "workDoneToken": 5}, 2))
    running.record.wait_started("task")
    client.send(_cancel_token(5))
    assert client.recv() == {
        "jsonrpc": "2.0",
        "error": {"code": -32800, "message": "Request cancelled"},
        "id": 2,
    }
    assert running.record.cancelled == ["task"]
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}})
    assert client.recv()["id"] == 1


def test_work_done_progress_cancel_ignores_tokens_that_are_not_running(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send(_req("sleep", {"seconds": 30, "tag": "int", "workDoneToken": 1}, "a"))
    running.record.wait_started("int")
    for token in ["1", True, None, [1], {"t": 1}, 2]:  # "1" is not 1, true is not 1
        client.send(_cancel_token(token))
    client.send({"jsonrpc": "2.0", "method": "window/workDoneProgress/cancel"})
    client.send({"jsonrpc": "2.0", "method": "window/workDoneProgress/cancel", "params": [1]})
    # As a request (not LSP's way) it says whether it hit; the notifications above did not.
    assert client.call({**_cancel_token("nope"), "id": "c1"}) == {
        "jsonrpc": "2.0",
        "result": {"cancelled": False},
        "id": "c1",
    }
    assert running.record.cancelled == []
    assert client.call({**_cancel_token(1), "id": "c2"})["result"] == {"cancelled": True}
    assert client.recv()["error"]["code"] == -32800
    assert running.record.cancelled == ["int"]


def test_work_done_progress_cancel_in_a_batch(raw: Callable[..., Raw], running: Running) -> None:
    client = raw("lsp")
    client.send(_req("sleep", {"seconds": 30, "tag": "batched", "workDoneToken": "b"}, 1))
    running.record.wait_started("batched")
    client.send([_cancel_token("b"), _req("echo", {"value": 2}, 2)])
    replies = [client.recv(), client.recv()]
    assert sorted(json.dumps(r, sort_keys=True) for r in replies) == sorted(
        json.dumps(r, sort_keys=True)
        for r in [
            {"jsonrpc": "2.0", "error": {"code": -32800, "message": "Request cancelled"}, "id": 1},
            [{"jsonrpc": "2.0", "result": {"value": 2}, "id": 2}],
        ]
    )
    assert running.record.cancelled == ["batched"]


def test_null_params_are_accepted_like_no_params(raw: Callable[..., Raw]) -> None:
    # Emacs jsonrpc.el sends "params": null for nil, in LSP framing.
    client = raw("lsp")
    assert client.call({"jsonrpc": "2.0", "method": "get_data", "params": None, "id": 1}) == {
        "jsonrpc": "2.0",
        "result": ["hello", 5],
        "id": 1,
    }


def test_a_client_that_hangs_up_mid_request_costs_nothing(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send(_req("sleep", {"seconds": 30, "tag": "orphan"}, 1))
    _wait_for(lambda: running.server.connection_count == 1)
    running.record.wait_started("orphan")
    client.close()
    _wait_for(lambda: running.record.cancelled == ["orphan"], timeout=10)
    _wait_for(lambda: running.server.connection_count == 0)


def test_a_half_closed_client_that_then_hangs_up_costs_nothing(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send(_req("sleep", {"seconds": 30, "tag": "half"}, 1))
    running.record.wait_started("half")
    client.sock.shutdown(socket.SHUT_WR)  # still waiting for its answer
    time.sleep(0.2)
    assert running.record.cancelled == [] and running.server.connection_count == 1
    client.close()  # now gone both ways
    _wait_for(lambda: running.record.cancelled == ["half"], timeout=10)
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
