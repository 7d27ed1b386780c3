"""Pulls stream typed progress and fail loudly (the seed ignored `{"error"}` lines)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from n3d.errors import InvalidModelName, ModelNotFound, OllamaUnreachable, PullFailed
from n3d.ollama.client import OllamaClient
from n3d.ollama.types import PullProgress

from .ollama_fakes import BASE_URL, FakeOllama, ndjson

DIGEST = "sha256:" + "0a8c26691023" + "0" * 52
LAYER: dict[str, Any] = {"status": "pulling 0a8c26691023", "digest": DIGEST, "total": 4683075271}
SUCCESS_LINES: list[dict[str, Any]] = [
    {"status": "pulling manifest"},
    LAYER,  # `completed` is omitted while it is 0
    {**LAYER, "completed": 241970},
    {**LAYER, "completed": 4683075271},
    {"status": "verifying sha256 digest"},
    {"status": "writing manifest"},
    {"status": "success"},
]


async def collect(client: OllamaClient, model: str) -> list[PullProgress]:
    return [progress async for progress in client.pull(model)]


async def test_pull_streams_typed_progress_until_success(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/pull", lines=SUCCESS_LINES)
    progress = await collect(client, "llama3.2")
    assert fake.last_json() == {"model": "llama3.2:latest", "stream": True}
    assert [p.status for p in progress] == [line["status"] for line in SUCCESS_LINES]
    assert progress[1] == PullProgress(LAYER["status"], DIGEST, 4683075271, None)
    assert progress[1].fraction == 0.0
    assert progress[3].fraction == 1.0
    assert progress[0].fraction is None and progress[0].digest is None


async def test_pull_ignores_blank_lines_and_new_fields(
    client: OllamaClient, fake: FakeOllama
) -> None:
    body = b'{"status":"pulling manifest","eta":3}\n\n{"status":"success"}\n'
    fake.on("POST /api/pull", lambda request: httpx.Response(200, content=body))
    assert [p.status for p in await collect(client, "llama3")] == ["pulling manifest", "success"]


async def test_mid_stream_error_fails_the_pull_and_suggests_resuming(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/pull", lines=[*SUCCESS_LINES[:3], {"error": "max retries exceeded: EOF"}])
    seen: list[str] = []
    with pytest.raises(PullFailed) as info:
        async for progress in client.pull("llama3"):
            seen.append(progress.status)
    assert len(seen) == 3  # progress before the failure was still delivered
    err = info.value
    assert "Pulling model 'llama3:latest' failed: max retries exceeded: EOF" in str(err)
    assert err.suggestion is not None and "it resumes" in err.suggestion
    assert err.base_url == BASE_URL
    assert getattr(err, "status_code", "missing") is None


async def test_unknown_model_in_registry_is_model_not_found(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply(
        "POST /api/pull",
        lines=[
            {"status": "pulling manifest"},
            {"error": "pull model manifest: file does not exist"},
        ],
    )
    with pytest.raises(ModelNotFound) as info:
        await collect(client, "llama99")
    assert "could not find model 'llama99:latest' in its registry" in str(info.value)
    assert info.value.suggestion is not None and "typo" in info.value.suggestion


async def test_unknown_model_answered_with_500_is_model_not_found(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply(
        "POST /api/pull", 500, json_body={"error": "pull model manifest: file does not exist"}
    )
    with pytest.raises(ModelNotFound):
        await collect(client, "llama99")


async def test_pull_that_ends_without_success_fails(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/pull", lines=SUCCESS_LINES[:-1])
    with pytest.raises(PullFailed, match="ended before Ollama reported success"):
        await collect(client, "llama3")


async def test_empty_pull_answer_fails(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/pull", text="")
    with pytest.raises(PullFailed, match="no progress at all"):
        await collect(client, "llama3")


async def test_server_rejecting_the_name_is_invalid_model_name(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/pull", 400, json_body={"error": "invalid model name"})
    with pytest.raises(InvalidModelName):
        await collect(client, "llama3")


async def test_other_pull_failures_keep_their_status(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/pull", 500, json_body={"error": "unauthorized: access denied"})
    with pytest.raises(PullFailed, match="unauthorized: access denied") as info:
        await collect(client, "private/model")
    assert getattr(info.value, "status_code", None) == 500


async def test_pull_from_an_unreachable_server(client: OllamaClient, fake: FakeOllama) -> None:
    fake.fail("POST /api/pull", httpx.ConnectError, "Connection refused")
    with pytest.raises(OllamaUnreachable):
        await collect(client, "llama3")


async def test_pull_starts_only_when_iterated(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/pull", lines=SUCCESS_LINES)
    stream = client.pull("llama3")
    assert fake.requests == []
    async with aclosing(stream):
        first = await anext(stream)
    assert first.status == "pulling manifest"
    assert len(fake.requests) == 1


class TrackedBody(httpx.AsyncByteStream):
    """A response body that remembers whether the client closed it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def test_closing_a_pull_early_closes_its_response(
    client: OllamaClient, fake: FakeOllama
) -> None:
    body = TrackedBody([ndjson(line) for line in SUCCESS_LINES])
    fake.on("POST /api/pull", lambda request: httpx.Response(200, stream=body))
    async with aclosing(client.pull("llama3")) as stream:
        await anext(stream)
        assert not body.closed
    assert body.closed


async def test_client2_pull_lines_without_status_are_progress(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # OLLAMA_EXPERIMENT=client2 (v0.5-v0.13, server/internal/registry/server.go:250-300):
    # `pulling manifest`, then layer lines with no status, then the classic tail.
    digest = "sha256:" + "ab" * 32
    fake.reply(
        "POST /api/pull",
        lines=[
            {"status": "pulling manifest"},
            {"digest": digest, "total": 100},
            {"digest": digest, "total": 100, "completed": 100},
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ],
    )
    seen = [(p.status, p.completed) async for p in client.pull("llama3")]
    assert seen[1:3] == [("pulling abababababab", None), ("pulling abababababab", 100)]
    assert seen[-1] == ("success", None)


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        # streamed: the 200 is long sent when the registry says no, so it is a line
        (
            200,
            {
                "lines": [
                    {"status": "pulling manifest"},
                    {"code": "not_found", "error": 'model "llama99:latest" not found'},
                ]
            },
        ),
        # not streamed: errModelNotFound, 404
        (404, {"json_body": {"code": "not_found", "error": "model not found"}}),
    ],
    ids=["streamed", "status-404"],
)
async def test_client2_unknown_model_is_model_not_found(
    client: OllamaClient, fake: FakeOllama, status: int, reply: dict[str, Any]
) -> None:
    fake.reply("POST /api/pull", status, **reply)
    with pytest.raises(ModelNotFound) as info:
        await collect(client, "llama99")
    assert "could not find model 'llama99:latest' in its registry" in str(info.value)
