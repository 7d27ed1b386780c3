"""Every way a request fails becomes an OllamaError; nothing from httpx or json leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from n3d.api.faults import code_of
from n3d.errors import (
    ContextOverflow,
    InvalidModelName,
    ModelNotFound,
    OllamaError,
    OllamaTimeout,
    OllamaUnreachable,
    UnexpectedResponse,
)
from n3d.ollama.client import OllamaClient

from .ollama_fakes import BASE_URL, FakeOllama

OVERFLOW_TEXTS = [
    "the input length exceeds the context length",
    "the prompt is longer than the context length currently available to the model; "
    "shorten the prompt, adjust the context length in settings, or use a model with a "
    "longer context length",
]


def status_of(exc: BaseException) -> Any:
    return getattr(exc, "status_code", "missing")


@pytest.mark.parametrize(
    ("exc_type", "message"),
    [
        (httpx.ConnectError, "[Errno 111] Connection refused"),
        (httpx.ConnectError, "[Errno -2] Name or service not known"),  # DNS
        (httpx.ConnectTimeout, "timed out"),
    ],
    ids=["refused", "dns", "connect-timeout"],
)
async def test_connect_failures_are_unreachable(
    client: OllamaClient, fake: FakeOllama, exc_type: type[httpx.TransportError], message: str
) -> None:
    fake.fail("GET /api/tags", exc_type, message)
    with pytest.raises(OllamaUnreachable) as info:
        await client.tags()
    err = info.value
    assert str(err).startswith(f"Could not reach Ollama server at {BASE_URL}")
    assert "Suggestion: Ensure Ollama is running." in str(err)
    assert isinstance(err.__cause__, exc_type)
    assert status_of(err) is None


async def test_read_timeout_is_a_timeout_naming_the_request(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.fail("GET /api/ps", httpx.ReadTimeout, "timed out")
    with pytest.raises(OllamaTimeout, match=r"did not answer GET /api/ps within 5s"):
        await client.ps()


async def test_heartbeat_timeout_names_its_own_limit(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.fail("HEAD /", httpx.ReadTimeout, "timed out")
    with pytest.raises(OllamaTimeout, match=r"within 0.5s"):
        await client.heartbeat(timeout_s=0.5)


async def test_connection_lost_mid_answer_is_unreachable(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.fail("GET /api/version", httpx.RemoteProtocolError, "Server disconnected")
    with pytest.raises(OllamaUnreachable, match="Lost the connection"):
        await client.version()


@pytest.mark.parametrize(
    "text", ["model 'llama3:8b' not found", 'model "llama3:8b" not found, try pulling it first']
)
async def test_404_model_not_found_reads_like_the_seed(
    client: OllamaClient, fake: FakeOllama, text: str
) -> None:
    fake.reply("POST /api/show", 404, json_body={"error": text})
    with pytest.raises(ModelNotFound) as info:
        await client.show("llama3:8b")
    assert str(info.value) == (
        "Ollama model 'llama3:8b' is not available locally.\n"
        "Model: llama3:8b\n"
        f"Server: {BASE_URL}\n"
        "\n"
        "Suggestion: Run: ollama pull llama3:8b\n"
        "Or enable auto_pull_model in your configuration."
    )
    assert status_of(info.value) == 404


async def test_delete_of_a_missing_model_is_model_not_found(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("DELETE /api/delete", 404, json_body={"error": "model 'nope:latest' not found"})
    with pytest.raises(ModelNotFound, match="'nope:latest' is not available"):
        await client.delete("nope")


async def test_load_of_a_missing_model_is_model_not_found(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", 404, json_body={"error": "model 'nope:latest' not found"})
    with pytest.raises(ModelNotFound):
        await client.load("nope")


@pytest.mark.parametrize("text", OVERFLOW_TEXTS)
@pytest.mark.parametrize("status", [400, 500])
async def test_context_overflow_quotes_the_configured_num_ctx(
    fake: FakeOllama, text: str, status: int
) -> None:
    fake.reply("POST /api/chat", status, json_body={"error": text})
    transport = httpx.MockTransport(fake.handle)
    async with OllamaClient(BASE_URL, transport=transport, num_ctx=2048) as client:
        with pytest.raises(ContextOverflow) as info:
            await client.chat("llama3", [{"role": "user", "content": "long"}], truncate=False)
    assert "Input is too large for model 'llama3:latest' context window." in str(info.value)
    assert "Current context setting: 2048 tokens" in str(info.value)
    assert status_of(info.value) == status


async def test_context_overflow_prefers_the_requests_own_num_ctx(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", 400, json_body={"error": OVERFLOW_TEXTS[0]})
    with pytest.raises(ContextOverflow, match="Current context setting: 512 tokens"):
        await client.generate("llama3", "long", options={"num_ctx": 512})


async def test_context_overflow_without_num_ctx_names_ollamas_default(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", 400, json_body={"error": OVERFLOW_TEXTS[0]})
    with pytest.raises(ContextOverflow, match=r"Ollama's default \(num_ctx = 0\)"):
        await client.generate("llama3", "long")


async def test_server_rejecting_a_name_is_invalid_model_name(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/show", 400, json_body={"error": "invalid model name"})
    with pytest.raises(InvalidModelName) as info:
        await client.show("llama3")
    assert status_of(info.value) == 400


async def test_other_errors_carry_the_servers_text_and_status(
    client: OllamaClient, fake: FakeOllama
) -> None:
    text = "model requires more system memory (12.0 GiB) than is available (3.1 GiB)"
    fake.reply("POST /api/generate", 500, json_body={"error": text})
    with pytest.raises(UnexpectedResponse) as info:
        await client.load("llama3:70b")
    assert text in str(info.value) and "(HTTP 500)" in str(info.value)
    assert info.value.model == "llama3:70b"
    assert status_of(info.value) == 500


async def test_a_non_json_error_body_is_quoted_raw(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("GET /api/version", 405, text="405 method not allowed")
    with pytest.raises(UnexpectedResponse, match="405 method not allowed"):
        await client.version()


async def test_an_empty_error_body_says_so(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("HEAD /", 403, text="")  # Ollama's Host guard
    with pytest.raises(UnexpectedResponse, match=r"an empty body \(HTTP 403\)") as info:
        await client.heartbeat()
    assert status_of(info.value) == 403


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("GET /api/version", "Ollama is running"),
        ("GET /api/version", "[1, 2]"),
        ("GET /api/version", '{"versions": "0.6.8"}'),
        ("GET /api/tags", '{"models": {"name": "x"}}'),
        ("GET /api/tags", '{"models": [{"size": 1}]}'),
    ],
)
async def test_unusable_answers_are_unexpected_responses(
    client: OllamaClient, fake: FakeOllama, route: str, body: str
) -> None:
    fake.reply(route, text=body)
    call = client.version if route.endswith("version") else client.tags
    with pytest.raises(UnexpectedResponse):
        await call()


async def test_load_answered_with_another_done_reason_is_unexpected(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply(
        "POST /api/generate",
        json_body={"model": "llama3:latest", "response": "", "done": True, "done_reason": "stop"},
    )
    with pytest.raises(UnexpectedResponse, match="expected done_reason 'load', got 'stop'"):
        await client.load("llama3")


async def test_an_unknown_route_is_unexpected(client: OllamaClient, fake: FakeOllama) -> None:
    # An old server without /api/ps answers gin's plain-text 404, which is no model error.
    with pytest.raises(UnexpectedResponse, match=r"404 page not found \(HTTP 404\)"):
        await client.ps()


async def test_every_failure_is_an_ollama_error(client: OllamaClient, fake: FakeOllama) -> None:
    fake.fail("GET /api/tags", httpx.ReadError, "reset by peer")
    with pytest.raises(OllamaError):
        await client.tags()


async def test_an_undecodable_body_is_unexpected(client: OllamaClient, fake: FakeOllama) -> None:
    fake.fail("GET /api/tags", httpx.DecodingError, "gzip: invalid header")
    with pytest.raises(UnexpectedResponse, match="gzip: invalid header"):
        await client.tags()


async def test_an_unusable_base_url_is_unreachable(fake: FakeOllama) -> None:
    async with OllamaClient("ftp://ollama.test") as client:
        with pytest.raises(OllamaUnreachable):
            await client.version()


# Embed truncation failures are context overflows too (v0.13.5 server/routes.go:731, 734;
# HEAD routes.go:910, 934, 968), from /api/embed and the OpenAI embeddings route.
@pytest.mark.parametrize(
    "text",
    [
        "input exceeds maximum context length and cannot be truncated further",
        "input after truncation exceeds maximum context length",
    ],
)
async def test_embed_truncation_failures_are_context_overflow(fake: FakeOllama, text: str) -> None:
    fake.reply("POST /api/generate", 500, json_body={"error": text})
    transport = httpx.MockTransport(fake.handle)
    async with OllamaClient(BASE_URL, transport=transport, num_ctx=512) as client:
        with pytest.raises(ContextOverflow) as info:
            await client.generate("nomic-embed-text", "long")
    assert code_of(info.value) == 1007 and info.value.kind == "context_overflow"
    assert "Current context setting: 512 tokens" in str(info.value)
