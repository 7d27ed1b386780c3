"""The sans-IO protocol and framing, no sockets: the specification's examples, framing rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from n3d.jsonrpc.protocol import (
    INTERNAL_ERROR,
    FrameError,
    Framer,
    Incoming,
    JsonObject,
    Request,
    encode,
    error_response,
    parse,
    result_response,
)

from .spec_examples import EXAMPLES, IDS, canonical, one_line

# The handlers the specification's examples assume, as plain functions.
_SPEC_METHODS: dict[str, Any] = {
    "subtract": lambda a, b: a - b,
    "sum": lambda *xs: sum(xs),
    "get_data": lambda: ["hello", 5],
    "update": lambda *xs: None,
    "notify_hello": lambda *xs: None,
    "notify_sum": lambda *xs: None,
}


def _run(request: Request) -> JsonObject | None:
    fn = _SPEC_METHODS.get(request.method)
    if fn is None:
        response = error_response(request.id, -32601)
    elif isinstance(request.params, dict):
        response = result_response(
            request.id, fn(request.params["minuend"], request.params["subtrahend"])
        )
    else:
        response = result_response(request.id, fn(*(request.params or [])))
    return None if request.is_notification else response


def exchange(body: bytes) -> Any:
    incoming = parse(body)
    return incoming.reply(_run(r) for r in incoming.requests)


@pytest.mark.parametrize(("name", "text", "expected"), EXAMPLES, ids=IDS)
def test_spec_example_sans_io(name: str, text: str, expected: Any) -> None:
    reply = exchange(text.encode())
    if expected is None:
        assert reply is None
    else:
        assert canonical(reply) == canonical(expected)


@pytest.mark.parametrize(("name", "text", "expected"), EXAMPLES, ids=IDS)
@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_spec_example_through_the_framer(name: str, text: str, expected: Any, framing: str) -> None:
    body = one_line(text) if framing == "ndjson" else text.encode()
    wire = (
        body + b"\n" if framing == "ndjson" else b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    framer = Framer(1 << 20)
    frames = [f for i in range(len(wire)) for f in framer.feed(wire[i : i + 1])]  # byte by byte
    assert frames == [body] and framer.framing == framing and not framer.pending
    reply = exchange(frames[0])
    if expected is None:
        assert reply is None
    else:
        framed = framer.frame(encode(reply))
        assert canonical(json.loads(_unframe(framed, framing))) == canonical(expected)


def _unframe(data: bytes, framing: str) -> bytes:
    if framing == "ndjson":
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        return data
    head, _, body = data.partition(b"\r\n\r\n")
    assert head == b"Content-Length: %d" % len(body)
    return body


def test_invalid_request_echoes_a_readable_id_and_nulls_an_unreadable_one() -> None:
    assert exchange(b'{"jsonrpc":"1.0","method":"x","id":7}')["id"] == 7
    assert exchange(b'{"jsonrpc":"2.0","method":"x","id":{"a":1}}')["id"] is None
    assert exchange(b'{"jsonrpc":"2.0","method":"x","id":true}')["error"]["code"] == -32600


def test_null_params_are_read_as_no_params() -> None:
    # Emacs jsonrpc.el sends "params": null for a nil argument.
    assert parse(b'{"jsonrpc":"2.0","method":"get_data","params":null,"id":1}').requests == [
        Request("get_data", None, 1)
    ]
    assert exchange(b'{"jsonrpc":"2.0","method":"get_data","params":null,"id":1}') == {
        "jsonrpc": "2.0",
        "result": ["hello", 5],
        "id": 1,
    }
    assert exchange(b'{"jsonrpc":"2.0","method":"update","params":null}') is None
    batch = b'[{"jsonrpc":"2.0","method":"get_data","params":null,"id":2},{"params":null}]'
    assert canonical(exchange(batch)) == canonical(
        [
            {"jsonrpc": "2.0", "result": ["hello", 5], "id": 2},
            {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
        ]
    )


@pytest.mark.parametrize("params", [b'"bar"', b"1", b"true", b"false", b"0"])
def test_params_that_are_neither_array_object_nor_null_are_invalid(params: bytes) -> None:
    body = b'{"jsonrpc":"2.0","method":"get_data","params":%b,"id":3}' % params
    assert exchange(body) == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request"},
        "id": 3,
    }


def test_responses_from_the_client_are_ignored() -> None:
    assert exchange(b'{"jsonrpc":"2.0","result":1,"id":1}') is None
    assert exchange(b'[{"jsonrpc":"2.0","error":{"code":1,"message":"x"},"id":1}]') is None


@pytest.mark.parametrize(
    "body", [b"NaN", b'{"a": Infinity}', b"[" * 100_000, b"1" * 5000, b"\xff\xfe{", b""]
)
def test_not_json_is_a_parse_error(body: bytes) -> None:
    assert exchange(body) == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }


def test_unencodable_result_becomes_internal_error_for_the_same_id() -> None:
    out = json.loads(encode(result_response(4, float("nan"))))
    assert out["id"] == 4 and out["error"]["code"] == INTERNAL_ERROR
    assert json.loads(encode(result_response(1, "\ud800")))["result"] == "\ud800"


def _strict_json(data: bytes) -> Any:
    """``json.loads`` that refuses NaN and Infinity, as every other JSON parser does."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(data, parse_constant=refuse)


@pytest.mark.parametrize("raw_id", [b"1e400", b"-1e400", b"1E999"])
def test_non_finite_id_is_an_invalid_request_with_null_id_before_anything_runs(
    raw_id: bytes,
) -> None:
    single = parse(b'{"jsonrpc":"2.0","method":"get_data","id":%b}' % raw_id)
    assert single.requests == []
    assert single.errors == [error_response(None, -32600)]
    batch = parse(
        b'[{"jsonrpc":"2.0","method":"get_data","id":%b},'
        b'{"jsonrpc":"2.0","method":"get_data","id":2}]' % raw_id
    )
    assert [r.id for r in batch.requests] == [2]
    assert batch.errors == [error_response(None, -32600)]


def test_nothing_encoded_is_ever_anything_but_json() -> None:
    # An id that slipped through (n3d's own bug) must not make the fallback write Infinity.
    for bad_id in (float("inf"), float("-inf"), float("nan")):
        out = _strict_json(encode(result_response(bad_id, {"x": float("nan")})))
        assert out["id"] is None and out["error"]["code"] == INTERNAL_ERROR
    assert _strict_json(encode([result_response(1, float("inf")), result_response(2, 1)]))[1] == {
        "jsonrpc": "2.0",
        "result": 1,
        "id": 2,
    }


def test_empty_batch_reply_is_nothing_not_an_empty_array() -> None:
    assert Incoming(batch=True).reply([None, None]) is None


# -- framing ----------------------------------------------------------------------


def test_ndjson_splits_lines_and_ignores_blank_lines_and_crlf() -> None:
    framer = Framer(100)
    assert framer.feed(b'\n  {"a":1}\r\n\n[1]\n{"b"') == [b'{"a":1}', b"[1]"]
    assert framer.pending
    assert framer.feed(b":2}\n") == [b'{"b":2}'] and not framer.pending


def test_ndjson_garbage_line_after_detection_is_a_frame_not_a_fatal_error() -> None:
    framer = Framer(100)
    assert framer.feed(b"{}\nhello\n") == [b"{}", b"hello"] and not framer.failed


def test_lsp_headers_case_insensitive_content_type_ignored_bodies_exact() -> None:
    framer = Framer(100)
    wire = (
        b"content-length: 7\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
        b'{"a":1}'
        b"CONTENT-LENGTH:2\n\n[]"
    )
    assert framer.feed(wire) == [b'{"a":1}', b"[]"]
    assert framer.frame(b"{}") == b"Content-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: 2\r\nContent-Length: 12\r\n",
        b"Content-Length: 12\r\ncontent-length: 2\r\n",
        b"Content-Length: 2, 12\r\n",
    ],
)
def test_differing_content_lengths_are_a_fatal_parse_error(header: bytes) -> None:
    framer = Framer(100)
    items = framer.feed(header + b'\r\n{}{"a":[1,2]}')
    assert len(items) == 1 and isinstance(items[0], FrameError) and framer.failed
    assert "conflicting Content-Length" in items[0].message


def test_identical_repeated_content_lengths_frame_the_body_once() -> None:
    # RFC 9112 §6.3: a list of equal values is processed as that single value.
    framer = Framer(100)
    wire = b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}Content-Length: 2, 2\r\n\r\n[]"
    assert framer.feed(wire) == [b"{}", b"[]"]


@pytest.mark.parametrize("first", [b"{}\n", b"Content-Length: 2\r\n\r\n{}"])
def test_framing_a_batch_reply_in_place_is_framing_it(first: bytes) -> None:
    framer = Framer(100)
    framer.feed(first)
    assert framer.frame_in_place(bytearray(b'[{"a":1}]')) == framer.frame(b'[{"a":1}]')


def test_lsp_body_may_contain_newlines_and_length_counts_bytes() -> None:
    body = '{"s": "é\\n"}\n'.encode()
    framer = Framer(100)
    assert framer.feed(b"Content-Length: %d\r\n\r\n" % len(body) + body) == [body]


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"Content-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"Content-Length: 99999999999999999999999\r\n\r\n", "invalid Content-Length"),
        (b"Content-Length: 1e3\r\n\r\n", "invalid Content-Length"),
        (b"Content-Length: \r\n\r\n", "invalid Content-Length"),
        (b"Content-Length: 1000001\r\n\r\n", "exceeds max_message_bytes"),
        (b"Content-Type: x\r\n\r\n{}", "without Content-Length"),
        (b"Content-Length 5\r\n\r\n", "malformed header"),
        (b"C" + b"x" * 9000, "header block longer"),
        (b"\x00\x01garbage", "starts with"),
        (b"GET / HTTP/1.1\r\n\r\n", "starts with"),
        (b"{" * 1_000_002, "exceeds max_message_bytes"),
    ],
)
def test_fatal_framing_errors(wire: bytes, why: str) -> None:
    framer = Framer(1_000_000)
    out = framer.feed(wire)
    assert isinstance(out[-1], FrameError) and why in out[-1].message
    assert framer.failed and not framer.pending
    assert framer.feed(b'{"more": 1}\n') == []


def test_complete_line_over_the_limit_is_fatal() -> None:
    framer = Framer(10)
    (err,) = framer.feed(b'{"a":"0123456789"}\n')
    assert isinstance(err, FrameError)


def test_frames_before_a_fatal_error_are_still_delivered() -> None:
    framer = Framer(100)
    out = framer.feed(b"Content-Length: 2\r\n\r\n{}Content-Length: -5\r\n\r\n")
    assert out[0] == b"{}" and isinstance(out[1], FrameError)


def test_replies_before_detection_are_ndjson() -> None:
    assert Framer(10).frame(b"{}") == b"{}\n"
