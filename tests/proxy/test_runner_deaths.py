"""A runner n3d replaced: Ollama's 500 before any content, sent once more, unseen by the client.

The judgement (:func:`n3d.proxy.deaths.runner_died`) against Ollama's own texts, and
the forwarder in one process in front of a stand-in Ollama that answers as
``streamResponse`` does when the runner died before anything was written: status
500, ``Content-Type: application/json``, ``{"error": "..."}``, chunked.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from aiohttp import web

from n3d.proxy.deaths import ERROR_CAP, runner_died

from .conftest import Harness

EXITED = "llama runner process no longer running: -1 "  # getServerStatus
EOF = "an error was encountered while running the model: unexpected EOF"  # Completion
MEMORY = "model requires more system memory (7.7 GiB) than is available (1.9 GiB)"
JSON = "application/json"
FINAL = {
    "model": "llama3.2",
    "created_at": "2026-12-06T12:00:00Z",
    "response": "Hi",
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 7,
    "eval_count": 3,
    "eval_duration": 30_000_000,
}


def _ollama(message: str) -> bytes:
    return json.dumps({"error": message}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "body",
    [
        _ollama(EXITED),
        _ollama(EXITED.strip()),  # /api/embed trims it
        _ollama("llama-server process no longer running: signal: killed "),  # 0.33
        _ollama(EOF),
        _ollama("an error was encountered while running the model: CUDA error: out of memory"),
        _ollama(
            "model runner has unexpectedly stopped, this may be due to resource limitations "
            "or an internal error, check ollama server logs for details"
        ),
        _ollama('do embedding request: Post "http://127.0.0.1:40211/embedding": EOF'),
        json.dumps({"error": {"message": EXITED, "type": "api_error", "param": None}}).encode(),
        json.dumps({"type": "error", "error": {"type": "api_error", "message": EOF}}).encode(),
    ],
)
def test_ollamas_texts_for_a_runner_that_died_are_recognised(body: bytes) -> None:
    assert runner_died(500, JSON, body)
    assert runner_died(500, "application/json; charset=utf-8", body)


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (500, JSON, _ollama(MEMORY)),
        (404, JSON, _ollama("model 'llama3.2' not found")),
        (400, JSON, _ollama("invalid options: num_ctx")),
        (400, JSON, _ollama(EXITED)),  # only a 500 is judged
        (500, JSON, _ollama("llama runner process has terminated: exit status 2")),  # a load
        (500, JSON, _ollama("timed out waiting for llama runner to start - progress 0.00 - ")),
        (500, JSON, _ollama("input exceeds maximum context length")),
        (500, JSON, _ollama("failed: " + EXITED)),  # the text must begin the message
        (500, "text/plain; charset=utf-8", EXITED.encode()),
        (500, "application/x-ndjson", _ollama(EXITED) + b"\n"),
        (500, JSON, b'{"error": 42}'),
        (500, JSON, b"not json"),
        (500, JSON, b"\xff\xfe\x00"),
        (500, JSON, b"[" * 100_000),
        (500, JSON, _ollama(EXITED + "x" * ERROR_CAP)),  # too large to have been read
    ],
)
def test_no_other_answer_is_taken_for_a_runner_that_died(
    status: int, content_type: str, body: bytes
) -> None:
    assert not runner_died(status, content_type, body)


def _answers(*bodies: bytes, attempts: list[int]) -> Callable[[web.Request], object]:
    """An upstream handler: a 500 as streamResponse writes it for each body, then FINAL."""
    pending = list(bodies)

    async def handler(request: web.Request) -> web.StreamResponse:
        attempts.append(1)
        await request.read()
        if not pending:
            return web.json_response(FINAL)
        reply = web.StreamResponse(status=500, headers={"Content-Type": JSON})
        await reply.prepare(request)  # chunked, as Go's flushed c.Stream
        await reply.write(pending.pop(0))
        await reply.write_eof()
        return reply

    return handler


async def _post(harness: Harness, path: str, body: dict[str, object]) -> httpx.Response:
    await harness.begin()  # type: ignore[attr-defined]
    async with harness.client() as client:
        return await client.post(path, json=body)


GENERATE = {"model": "llama3.2", "prompt": "hi", "stream": False}


async def test_a_request_whose_runner_died_is_sent_once_more(harness: Harness) -> None:
    attempts: list[int] = []
    harness.upstream.router.add_post("/api/generate", _answers(_ollama(EXITED), attempts=attempts))
    reply = await _post(harness, "/api/generate", GENERATE)
    assert (reply.status_code, reply.json()) == (200, FINAL)
    assert len(attempts) == 2
    (event,) = harness.requests()
    assert event["retried"] is True and event["status"] == 200 and "error" not in event
    assert event["held_s"] == 0.0  # serve still answers: nothing to wait for


async def test_an_openai_request_whose_runner_died_is_sent_once_more(harness: Harness) -> None:
    attempts: list[int] = []
    died = json.dumps({"error": {"message": EOF, "type": "api_error", "param": None}})
    harness.upstream.router.add_post(
        "/v1/chat/completions", _answers(died.encode(), attempts=attempts)
    )
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    reply = await _post(harness, "/v1/chat/completions", body)
    assert reply.status_code == 200 and len(attempts) == 2
    assert harness.requests()[0]["retried"] is True


async def test_a_second_runner_death_reaches_the_client_as_it_came(harness: Harness) -> None:
    attempts: list[int] = []
    second = _ollama(EOF)
    harness.upstream.router.add_post(
        "/api/generate", _answers(_ollama(EXITED), second, attempts=attempts)
    )
    reply = await _post(harness, "/api/generate", GENERATE)
    assert (reply.status_code, reply.content) == (500, second)
    assert reply.headers["content-type"] == JSON
    assert len(attempts) == 2
    (event,) = harness.requests()
    assert event["retried"] is True and event["status"] == 500 and event["error"] == EOF


async def test_another_500_is_not_sent_again(harness: Harness) -> None:
    attempts: list[int] = []
    harness.upstream.router.add_post("/api/generate", _answers(_ollama(MEMORY), attempts=attempts))
    reply = await _post(harness, "/api/generate", GENERATE)
    assert (reply.status_code, reply.content) == (500, _ollama(MEMORY))
    assert len(attempts) == 1
    assert harness.requests()[0]["retried"] is False


async def test_a_route_with_side_effects_is_not_sent_again(harness: Harness) -> None:
    attempts: list[int] = []
    harness.upstream.router.add_post("/api/create", _answers(_ollama(EXITED), attempts=attempts))
    reply = await _post(harness, "/api/create", {"model": "mine", "from": "llama3.2"})
    assert (reply.status_code, reply.content) == (500, _ollama(EXITED))
    assert len(attempts) == 1
    assert harness.requests()[0]["retried"] is False


async def test_with_retry_off_a_runner_death_reaches_the_client(harness: Harness) -> None:
    harness.options["retry"] = False
    attempts: list[int] = []
    harness.upstream.router.add_post("/api/generate", _answers(_ollama(EXITED), attempts=attempts))
    reply = await _post(harness, "/api/generate", GENERATE)
    assert (reply.status_code, reply.content) == (500, _ollama(EXITED))
    assert len(attempts) == 1


async def test_a_500_larger_than_the_cap_is_relayed_whole_and_not_judged(
    harness: Harness,
) -> None:
    attempts: list[int] = []
    large = _ollama(EXITED + "x" * (3 * ERROR_CAP))
    harness.upstream.router.add_post("/api/generate", _answers(large, attempts=attempts))
    reply = await _post(harness, "/api/generate", GENERATE)
    assert reply.status_code == 500 and reply.content == large  # the bytes read go first
    assert len(attempts) == 1
