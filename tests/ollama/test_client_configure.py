"""A config reload reaches the client: `configure` sets the limit and the num_ctx of
the calls that follow, on the same pool."""

from __future__ import annotations

import anyio
import httpx
import pytest

from n3d.errors import ContextOverflow, OllamaTimeout
from n3d.ollama.client import OllamaClient

from .ollama_fakes import BASE_URL, FakeOllama

OVERFLOW = {"error": "the input length exceeds the context length"}


async def test_a_new_timeout_bounds_the_calls_that_follow(fake: FakeOllama) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)  # a server that never finishes its answer
        return httpx.Response(200, json={"models": []})

    transport = httpx.MockTransport(slow)
    async with OllamaClient(BASE_URL, transport=transport, timeout_s=30.0) as client:
        client.configure(timeout_s=0.2)
        with pytest.raises(OllamaTimeout, match=r"GET /api/ps within 0.2s"):
            await client.ps()
        assert client.timeout_s == 0.2


async def test_a_new_timeout_reaches_connects_and_streams(client: OllamaClient) -> None:
    client.configure(timeout_s=3.0)
    quick, long = client._session._quick, client._session._long
    assert (quick.connect, quick.read, quick.write, quick.pool) == (3.0, 3.0, 3.0, 3.0)
    assert long.read is None
    assert (long.connect, long.write, long.pool) == (3.0, 3.0, 3.0)


async def test_a_new_num_ctx_is_quoted_by_generations(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", 400, json_body=OVERFLOW)
    client.configure(num_ctx=4096)
    assert client.num_ctx == 4096
    with pytest.raises(ContextOverflow, match="Current context setting: 4096 tokens"):
        await client.generate("llama3", "long")
    with pytest.raises(ContextOverflow, match="Current context setting: 4096 tokens"):
        async for _ in client.generate_stream("llama3", "long"):
            pass
    with pytest.raises(ContextOverflow, match="Current context setting: 4096 tokens"):
        await client.load("llama3", num_ctx=0)


async def test_what_configure_is_not_given_stays(client: OllamaClient) -> None:
    client.configure(num_ctx=1024)
    assert (client.timeout_s, client.num_ctx) == (5.0, 1024)
    client.configure(timeout_s=1.5)
    assert (client.timeout_s, client.num_ctx) == (1.5, 1024)


async def test_configure_keeps_the_pool(fake: FakeOllama) -> None:
    fake.reply("GET /api/version", json_body={"version": "0.6.8"})
    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(fake.handle)) as client:
        http = client._session._http
        client.configure(timeout_s=2.0, num_ctx=8)
        assert client._session._http is http and not client.is_closed
        assert await client.version() == "0.6.8"
