"""Random input never crashes the protocol module or makes it say something the spec forbids."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from n3d.jsonrpc.protocol import (
    FrameError,
    Framer,
    JsonObject,
    Request,
    encode,
    error_response,
    parse,
    result_response,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.none() | st.integers() | st.text(max_size=4) | st.floats(allow_nan=False) | st.booleans()
request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "method": st.sampled_from(["echo", "nope", "$/cancelRequest"]) | json_values,
        "params": json_values,
        "id": ids,
        "result": json_values,
    },
)
messages = request_like | st.lists(request_like | json_values, max_size=5) | json_values


def _answer(request: Request) -> JsonObject | None:
    """A stand-in dispatcher: ``echo`` succeeds, everything else is not found."""
    if request.is_notification:
        return None
    if request.method == "echo":
        return result_response(request.id, request.params)
    return error_response(request.id, -32601)


def _is_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def assert_valid_response(obj: Any) -> None:
    assert isinstance(obj, dict) and obj.get("jsonrpc") == "2.0"
    assert "id" in obj and _is_id(obj["id"])
    assert ("result" in obj) != ("error" in obj)
    if "error" in obj:
        error = obj["error"]
        assert isinstance(error["code"], int) and not isinstance(error["code"], bool)
        assert isinstance(error["message"], str) and error["message"]
        assert set(error) <= {"code", "message", "data"}
    assert set(obj) <= {"jsonrpc", "id", "result", "error"}


def _runs(obj: Any) -> bool | None:
    """The oracle: True if ``obj`` is a request or notification to run, None if ignored.

    The specification's rules, plus one leniency: ``"params": null`` is read as
    no params (Emacs jsonrpc.el sends it), so only other non-structured params
    make a request invalid.
    """
    if not isinstance(obj, dict):
        return False
    if "method" not in obj and ("result" in obj or "error" in obj):
        return None  # a response: ignored
    params = obj.get("params")
    return (
        obj.get("jsonrpc") == "2.0"
        and isinstance(obj.get("method"), str)
        and _is_id(obj.get("id"))
        and (params is None or isinstance(params, list | dict))
    )


def check_validity(message: Any) -> None:
    """What :func:`parse` runs, answers as invalid and ignores, against :func:`_runs`."""
    try:
        body = json.dumps(message, allow_nan=False).encode()
    except ValueError:
        return  # infinity: not JSON, a parse error (check_body covers it)
    incoming = parse(body)
    members = message if isinstance(message, list) and message else [message]
    verdicts = [_runs(m) for m in members]
    assert [(r.method, r.params) for r in incoming.requests] == [
        (m["method"], m.get("params")) for m, ok in zip(members, verdicts, strict=True) if ok
    ]
    assert len(incoming.errors) == verdicts.count(False)
    assert incoming.batch == (isinstance(message, list) and bool(message))


def check_body(body: bytes) -> None:
    incoming = parse(body)
    responses = [_answer(r) for r in incoming.requests]
    reply = incoming.reply(responses)
    expected = len(incoming.errors) + sum(not r.is_notification for r in incoming.requests)
    if reply is None:
        assert expected == 0
        return
    wire = json.loads(encode(reply))
    if incoming.batch:
        assert isinstance(wire, list) and len(wire) == expected > 0
        for member in wire:
            assert_valid_response(member)
    else:
        assert expected == 1
        assert_valid_response(wire)


def feed_all(data: bytes, cuts: list[int], limit: int) -> list[bytes | FrameError]:
    framer = Framer(limit)
    out: list[bytes | FrameError] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in zip(points, points[1:], strict=False):
        out += framer.feed(data[start:end])
    errors = [i for i, item in enumerate(out) if isinstance(item, FrameError)]
    assert errors in ([], [len(out) - 1])  # at most one, and nothing after it
    assert framer.failed == bool(errors)
    return out


@FUZZ
@given(st.binary(max_size=512), st.lists(st.integers(0, 600), max_size=6))
def test_random_bytes_never_crash_and_replies_follow_the_spec(data: bytes, cuts: list[int]) -> None:
    for item in feed_all(data, cuts, limit=256):
        if isinstance(item, bytes):
            check_body(item)


@FUZZ
@given(
    st.lists(messages, min_size=1, max_size=4),
    st.booleans(),
    st.lists(st.integers(0, 4000), max_size=8),
)
def test_random_messages_over_either_framing(batch: list[Any], lsp: bool, cuts: list[int]) -> None:
    # The first byte of a connection must be '{', '[' or 'C'; later lines may be anything.
    first = {"jsonrpc": "2.0", "method": "echo", "id": 0}
    bodies = [json.dumps(m).encode() for m in [first, *batch]]
    if lsp:
        data = b"".join(b"Content-Length: %d\r\n\r\n%b" % (len(b), b) for b in bodies)
    else:
        data = b"".join(b + b"\n" for b in bodies)
    frames = feed_all(data, cuts, limit=1 << 20)
    assert frames == bodies  # lossless: the framer returns exactly what was framed
    for body in frames:
        check_body(body)
    for message in batch:
        check_validity(message)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([b"{", b"[", b"Content-Length: ", b"c"]))
def test_random_tails_after_a_valid_start(tail: bytes, start: bytes) -> None:
    for item in feed_all(start + tail, [], limit=128):
        if isinstance(item, bytes):
            check_body(item)
