"""The clients' sans-IO session, no sockets: requests out, results and errors from bytes in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from n3d.errors import ClosedByDaemon, ConnectionLost, DaemonUnreachable, N3dError, RpcError
from n3d.jsonrpc.session import Call, ClientSession


def _sent(data: bytes) -> Any:
    assert data.endswith(b"\n") and data.count(b"\n") == 1  # one NDJSON line
    return json.loads(data)


def _line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _result(request_id: Any, result: Any) -> bytes:
    return _line({"jsonrpc": "2.0", "result": result, "id": request_id})


def test_calls_are_numbered_requests_and_params_none_is_left_out() -> None:
    session = ClientSession("/s")
    first, data = session.call("status")
    assert _sent(data) == {"jsonrpc": "2.0", "method": "status", "id": 1}
    assert b" " not in data  # compact
    second, data = session.call("models.pull", {"model": "llama3"})
    assert _sent(data) == {
        "jsonrpc": "2.0",
        "method": "models.pull",
        "params": {"model": "llama3"},
        "id": 2,
    }
    assert (first.id, second.id) == (1, 2) and not first.done


def test_a_reply_completes_its_call_whatever_the_order_and_however_it_is_cut() -> None:
    session = ClientSession("/s")
    one, _ = session.call("a")
    two, _ = session.call("b")
    wire = _result(2, "second") + b"\r\n\n" + _result(1, {"first": True})
    for i in range(len(wire)):
        assert session.feed(wire[i : i + 1]) == []
    assert one.done and two.done
    assert (one.result(), two.result()) == ({"first": True}, "second")


def test_an_error_reply_raises_rpc_error_with_its_data() -> None:
    session = ClientSession("/s")
    call, _ = session.call("models.ensure", {"model": "x"})
    data = {"kind": "model_not_found", "suggestion": "Run: ollama pull x"}
    session.feed(
        _line(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "error": {"code": 1002, "message": "not here", "data": data},
            }
        )
    )
    with pytest.raises(RpcError, match=r"not here \(code 1002\)") as caught:
        call.result()
    assert (caught.value.code, caught.value.data) == (1002, data)
    assert caught.value.suggestion == "Run: ollama pull x"
    assert isinstance(caught.value, N3dError)  # one exception tree


def test_progress_goes_to_its_call_and_other_notifications_are_returned_in_order() -> None:
    session = ClientSession("/s", token_prefix="n3ctl")
    seen: list[Any] = []
    call, data = session.call("models.pull", {"model": "m"}, progress=seen.append)
    assert _sent(data)["params"] == {"model": "m", "workDoneToken": "n3ctl-1"}
    wire = b"".join(
        [
            _line(
                {
                    "jsonrpc": "2.0",
                    "method": "$/progress",
                    "params": {"token": "n3ctl-1", "value": {"kind": "begin"}},
                }
            ),
            _line({"jsonrpc": "2.0", "method": "event", "params": {"topic": "pull"}}),
            _line(
                {
                    "jsonrpc": "2.0",
                    "method": "$/progress",
                    "params": {"token": "someone-else", "value": {"kind": "begin"}},
                }
            ),
            _line(
                {
                    "jsonrpc": "2.0",
                    "method": "$/progress",
                    "params": {"token": "n3ctl-1", "value": {"kind": "end"}},
                }
            ),
            _result(1, {"status": "success"}),
        ]
    )
    assert session.feed(wire) == [
        ("event", {"topic": "pull"}),
        ("$/progress", {"token": "someone-else", "value": {"kind": "begin"}}),
    ]
    assert seen == [{"kind": "begin"}, {"kind": "end"}]
    assert call.result() == {"status": "success"}
    # The call is over: later progress for its token is a plain notification.
    late = {"token": "n3ctl-1", "value": {"kind": "report"}}
    assert session.feed(_line({"jsonrpc": "2.0", "method": "$/progress", "params": late})) == [
        ("$/progress", late)
    ]


def test_progress_needs_named_params() -> None:
    with pytest.raises(ValueError, match="named params"):
        ClientSession("/s").call("x", [1], progress=print)


def test_params_that_are_not_json_raise_and_leave_no_call_waiting() -> None:
    session = ClientSession("/s")
    with pytest.raises(ValueError, match="not JSON"):
        session.call("x", {"when": float("nan")})
    call, data = session.call("y")
    assert _sent(data)["id"] == 2
    session.lost("gone")
    assert call.done  # the only call that was waiting


def test_replies_nobody_waits_for_are_dropped() -> None:
    session = ClientSession("/s")
    call, _ = session.call("a")
    wire = b"".join(
        [
            _result(7, "unknown id"),
            _result(True, "true is not 1"),
            _line([{"jsonrpc": "2.0", "result": 1, "id": 1}]),  # a batch: never sent, so not ours
            _result("1", "a string id is not ours"),
        ]
    )
    assert session.feed(wire) == []
    assert not call.done


def test_a_cancelled_call_sends_cancel_request_and_its_late_reply_is_dropped() -> None:
    session = ClientSession("/s")
    seen: list[Any] = []
    call, _ = session.call("models.pull", {"model": "m"}, progress=seen.append)
    cancel = session.cancel(call)
    assert cancel is not None
    assert _sent(cancel) == {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}}
    progress = {"token": "n3d-1", "value": {"kind": "end"}}
    notes = session.feed(
        _line({"jsonrpc": "2.0", "method": "$/progress", "params": progress}) + _result(1, "late")
    )
    assert notes == [("$/progress", progress)] and seen == [] and not call.done
    assert session.cancel(call) is None  # already forgotten


def test_a_finished_call_needs_no_cancel() -> None:
    session = ClientSession("/s")
    call, _ = session.call("a")
    session.feed(_result(1, None))
    assert call.done and session.cancel(call) is None


def test_when_the_connection_ends_every_waiting_call_and_every_later_one_fails() -> None:
    session = ClientSession("/run/n3/n3d.sock")
    woken: list[int] = []
    calls = [session.call("a", on_done=lambda i=i: woken.append(i))[0] for i in range(3)]
    session.feed(_result(2, "done before the end"))
    error = session.lost("the daemon closed the connection")
    assert type(error) is ConnectionLost and error.reason == "closed"
    assert error.path == "/run/n3/n3d.sock" and "the daemon closed the connection" in str(error)
    assert sorted(woken) == [0, 1, 2]
    assert calls[1].result() == "done before the end"
    for call in (calls[0], calls[2]):
        with pytest.raises(ConnectionLost):
            call.result()
    with pytest.raises(ConnectionLost):
        session.call("b")
    with pytest.raises(ConnectionLost):
        session.notify("c")
    assert session.lost("another way") is error  # the first end is the one told


def test_an_eviction_is_told_with_the_daemons_own_words() -> None:
    """n3d evicts an idle connection at max_connections with an id-null error, then closes."""
    session = ClientSession("/s")
    message = (
        "Server busy: 256 connections open; this one, idle for 12 s, "
        "is closed to make room for a new one"
    )
    parting = _line({"jsonrpc": "2.0", "error": {"code": -32000, "message": message}, "id": None})
    assert session.feed(parting) == []
    call, _ = session.call("status")  # sent before the client saw the connection end
    error = session.lost("connection lost (Broken pipe)")
    assert isinstance(error, ClosedByDaemon) and isinstance(error, ConnectionLost)
    assert isinstance(error, DaemonUnreachable) and error.reason == "closed"
    assert (error.code, error.message) == (-32000, message)
    assert str(error) == f"n3d at /s closed the connection: {message} (code -32000)"
    with pytest.raises(ClosedByDaemon, match="Server busy"):
        call.result()
    with pytest.raises(ClosedByDaemon, match="Server busy"):
        session.call("status")


@pytest.mark.parametrize(
    "wire",
    [b"{not json}\n", b'{"jsonrpc":"2.0","result":NaN,"id":1}\n', b"<html>\n"],
    ids=["not-json", "nan", "not-a-frame"],
)
def test_an_unreadable_reply_ends_the_session(wire: bytes) -> None:
    session = ClientSession("/s")
    call, _ = session.call("status")
    with pytest.raises(ConnectionLost, match="unreadable reply"):
        session.feed(wire)
    assert session.ended is not None
    with pytest.raises(ConnectionLost, match="unreadable reply"):
        call.result()


def test_a_reply_over_the_cap_ends_the_session_before_it_is_buffered_whole() -> None:
    session = ClientSession("/s", max_reply_bytes=1000)
    call, _ = session.call("status")
    assert session.feed(b'{"jsonrpc":"2.0","result":"' + b"x" * 900) == []
    with pytest.raises(ConnectionLost, match="exceeds"):
        session.feed(b"x" * 200)
    assert call.done


def test_a_call_has_no_result_before_its_reply() -> None:
    call, _ = ClientSession("/s").call("status")
    assert isinstance(call, Call)
    with pytest.raises(RuntimeError, match="no reply yet"):
        call.result()
