"""Generate and chat, streamed or not, and the metrics they record from Ollama's counters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import aclosing
from typing import Any

import pytest
from structlog.testing import capture_logs

from n3d.errors import ContextOverflow, ModelNotFound, UnexpectedResponse
from n3d.ollama.chunks import ChatChunk, GenerateChunk
from n3d.ollama.client import OllamaClient

from .ollama_fakes import FakeOllama

STATS = {
    "total_duration": 5_000_000_000,
    "load_duration": 1_000_000,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 130_000_000,
    "eval_count": 40,
    "eval_duration": 2_000_000_000,  # 40 tokens in 2 s of Ollama's eval time
}


def gen_line(text: str, done: bool = False, **more: Any) -> dict[str, Any]:
    line = {"model": "llama3:latest", "created_at": "2024-01-01T00:00:00Z", "response": text}
    return {**line, "done": done, **more}


def chat_line(text: str, done: bool = False, **more: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    line = {"model": "llama3:latest", "created_at": "2024-01-01T00:00:00Z", "message": message}
    return {**line, "done": done, **more}


STREAM = [gen_line("Hel"), gen_line("lo"), gen_line("", True, done_reason="stop", **STATS)]


def metrics(logs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {e["metric"]: e for e in logs if e.get("event") == "metric"}


async def test_streamed_generate_yields_chunks_and_a_final_with_stats(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", lines=STREAM)
    chunks = [c async for c in client.generate_stream("llama3", "Hi")]
    assert fake.last_json() == {"model": "llama3:latest", "prompt": "Hi", "stream": True}
    assert "".join(c.text for c in chunks) == "Hello"
    assert all(isinstance(c, GenerateChunk) for c in chunks)
    final = chunks[-1]
    assert final.done and final.done_reason == "stop"
    assert final.stats is not None and final.stats.total_tokens == 66
    assert final.stats.tokens_per_second == 20.0
    assert chunks[0].stats is None


async def test_streamed_generate_records_stream_metrics(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", lines=STREAM)
    with capture_logs() as logs:
        async for _ in client.generate_stream("llama3", "Hi"):
            pass
    seen = metrics(logs)
    assert seen["ollama.stream.chunks"]["value"] == 3
    assert seen["ollama.stream.chunks"]["unit"] == "{chunk}"
    assert seen["ollama.stream.tokens"]["value"] == 66
    assert seen["ollama.stream.throughput"]["value"] == 20.0  # Ollama's counters, not wall time
    assert seen["ollama.stream.duration"]["unit"] == "s"
    assert seen["ollama.stream.duration"]["value"] >= 0
    assert seen["ollama.tokens.completion"]["value"] == 40
    assert seen["ollama.stream.chunks"]["tags"] == {
        "model": "llama3:latest",
        "endpoint": "generate",
    }
    assert "ollama.request.duration" not in seen


async def test_stream_metrics_are_recorded_when_the_consumer_stops_at_done(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", lines=STREAM)
    with capture_logs() as logs:
        async with aclosing(client.generate_stream("llama3", "Hi")) as chunks:
            async for chunk in chunks:
                if chunk.done:
                    break
    assert "ollama.stream.throughput" in metrics(logs)


async def test_non_streamed_chat_records_request_metrics(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/chat", json_body=chat_line("Hello", True, done_reason="stop", **STATS))
    with capture_logs() as logs:
        reply = await client.chat("llama3", [{"role": "user", "content": "Hi"}])
    assert isinstance(reply, ChatChunk) and reply.text == "Hello"
    seen = metrics(logs)
    assert seen["ollama.request.duration"]["unit"] == "s"
    assert seen["ollama.tokens.prompt"]["value"] == 26
    assert seen["ollama.tokens.completion"]["value"] == 40
    assert seen["ollama.tokens.total"]["value"] == 66
    assert seen["ollama.tokens.total"]["unit"] == "{token}"
    assert seen["ollama.throughput.tokens_per_second"]["value"] == 20.0
    assert seen["ollama.request.duration"]["tags"] == {"model": "llama3:latest", "endpoint": "chat"}


async def test_streamed_chat_yields_message_chunks(client: OllamaClient, fake: FakeOllama) -> None:
    lines = [chat_line("Hel"), chat_line("lo"), chat_line("", True, **STATS)]
    fake.reply("POST /api/chat", lines=lines)
    stream = client.chat_stream("llama3", [{"role": "user", "content": "Hi"}])
    chunks = [c async for c in stream]
    assert "".join(c.text for c in chunks) == "Hello"
    assert fake.last_json()["stream"] is True


async def test_streamed_request_starts_only_when_iterated(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", lines=STREAM)
    stream = client.generate_stream("llama3", "Hi")
    assert fake.requests == []
    async with aclosing(stream):
        await anext(stream)
    assert len(fake.requests) == 1


async def test_error_line_mid_stream_raises(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/generate", lines=[gen_line("Hel"), {"error": "runner crashed"}])
    with pytest.raises(UnexpectedResponse, match="runner crashed"):
        async for _ in client.generate_stream("llama3", "Hi"):
            pass


async def test_context_overflow_in_a_stream(client: OllamaClient, fake: FakeOllama) -> None:
    error = {"error": "the input length exceeds the context length"}
    fake.reply("POST /api/chat", 400, json_body=error)
    with pytest.raises(ContextOverflow):
        async for _ in client.chat_stream("llama3", [], options={"num_ctx": 64}):
            pass


async def test_stream_for_a_missing_model(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/generate", 404, json_body={"error": "model 'nope:latest' not found"})
    with pytest.raises(ModelNotFound):
        async for _ in client.generate_stream("nope", "Hi"):
            pass


async def test_stream_that_ends_before_done_raises(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/generate", lines=STREAM[:2])
    with pytest.raises(UnexpectedResponse, match="ended before its final chunk"):
        async for _ in client.generate_stream("llama3", "Hi"):
            pass


async def test_garbage_line_in_a_stream_raises(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/generate", text='{"response": "a", "done": false}\nnot json\n')
    with pytest.raises(UnexpectedResponse, match="not JSON"):
        async for _ in client.generate_stream("llama3", "Hi"):
            pass


async def test_final_chunk_without_counters_records_what_it_can(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", json_body=gen_line("ok", True))
    with capture_logs() as logs:
        await client.generate("llama3", "Hi")
    seen = metrics(logs)
    assert seen["ollama.tokens.total"]["value"] == 0
    assert "ollama.throughput.tokens_per_second" not in seen  # no eval_duration, no rate


async def test_streaming_is_chosen_by_the_method_not_by_an_argument(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # generate()/chat() answer the final chunk, *_stream() yield chunks: a `stream`
    # argument would be ambiguous, so it is refused before any request.
    with pytest.raises(TypeError, match="generate_stream"):
        await client.generate("llama3", "Hi", stream=True)
    with pytest.raises(TypeError, match="chat_stream"):
        client.chat_stream("llama3", [], stream=False)
    assert fake.requests == []
