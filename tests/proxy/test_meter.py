"""The reply meter reads chunks, TTFT, tokens and errors from bytes cut anywhere."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from n3d.proxy.meter import MAX_LINE_BYTES, RATE_MIN_TOKENS, ReplyMeter

LINES = [
    {"model": "llama3.2", "response": "", "done": False},
    {"model": "llama3.2", "response": "Hel", "done": False},
    {"model": "llama3.2", "response": "lo", "done": False},
    {
        "model": "llama3.2",
        "response": "",
        "done": True,
        "prompt_eval_count": 11,
        "eval_count": 2,
        "eval_duration": 40_000_000,
    },
]
BODY = b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in LINES)


def _fed(body: bytes, cuts: list[int], content_type: str = "application/x-ndjson") -> ReplyMeter:
    meter = ReplyMeter(content_type, inference=True)
    start = 0
    for cut in sorted(cuts):
        meter.feed(body[start:cut])
        start = cut
    meter.feed(body[start:])
    meter.close()
    return meter


@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_ndjson_read_the_same_however_the_bytes_are_cut(cuts: list[int]) -> None:
    meter = _fed(BODY, cuts)
    assert meter.chunks == 4
    assert meter.content and meter.content_chunks == 3  # from the first with text
    assert meter.model == "llama3.2"
    tokens = meter.tokens(None)
    assert tokens is not None
    assert (tokens.prompt, tokens.completion, tokens.total) == (11, 2, 13)
    assert tokens.tokens_per_second == 50.0


def test_a_json_reply_without_a_newline_is_one_chunk() -> None:
    meter = _fed(json.dumps({**LINES[3], "response": "Hello"}).encode(), [5])
    assert (meter.chunks, meter.content) == (1, True)


def test_an_in_stream_error_is_kept() -> None:
    meter = _fed(BODY[:40] + b'\n{"error":"model runner has unexpectedly stopped"}\n', [])
    assert meter.error == "model runner has unexpectedly stopped"


def test_sse_counts_data_events_and_reads_usage() -> None:
    body = (
        b'data: {"model":"m","choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"model":"m","choices":[{"delta":{"content":"Hi"}}]}\n\n'
        b'data: {"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":8,'
        b'"total_tokens":13}}\n\n'
        b"data: [DONE]\n\n"
    )
    meter = _fed(body, [17, 90], "text/event-stream")
    assert meter.chunks == 3 and meter.content
    tokens = meter.tokens(2.0)
    assert tokens is not None and (tokens.prompt, tokens.completion) == (5, 8)
    assert tokens.tokens_per_second == 4.0  # completion tokens over generation time


def test_a_line_longer_than_the_cap_is_counted_never_held() -> None:
    meter = ReplyMeter("application/x-ndjson", inference=True)
    meter.feed(b'{"embedding":[' + b"1," * (MAX_LINE_BYTES // 2 + 10))
    assert len(meter._buf) == 0  # dropped, not kept
    meter.feed(b"1]}\n" + BODY)
    meter.close()
    assert meter.chunks == 5
    assert meter.tokens(None) is not None


def test_non_json_bodies_are_counted_and_left_alone() -> None:
    meter = _fed(b"Ollama is running", [], "text/plain; charset=utf-8")
    assert meter.chunks == 1 and meter.tokens(None) is None and meter.model is None


def test_a_decode_rate_for_liveness_needs_a_good_end_and_enough_tokens() -> None:
    final = {**LINES[3], "eval_count": RATE_MIN_TOKENS, "eval_duration": 160_000_000}
    body = b"".join(json.dumps(line).encode() + b"\n" for line in [*LINES[:3], final])
    assert _fed(body, []).decode_rate() == 50.0
    assert _fed(BODY, []).decode_rate() is None  # two tokens: one or two decode steps
    no_time = json.dumps({**final, "eval_duration": 0}).encode() + b"\n"
    assert _fed(BODY[:40] + b"\n" + no_time, []).decode_rate() is None
    broken = body + b'{"error":"model runner has unexpectedly stopped"}\n'
    assert _fed(broken, []).decode_rate() is None
    assert _fed(body, [], "application/json").tokens(None) is not None
    embed = ReplyMeter("application/json", inference=False)  # /api/embed, /api/show…
    embed.feed(body)
    embed.close()
    assert embed.decode_rate() is None
    usage = b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":{"completion_tokens":9}}\n'
    assert _fed(usage, [], "text/event-stream").decode_rate() is None  # /v1: no duration
