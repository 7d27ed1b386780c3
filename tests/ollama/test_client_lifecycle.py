"""One pooled AsyncClient per OllamaClient, closed by aclose or the context manager."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from n3d.ollama.client import OllamaClient

from .ollama_fakes import BASE_URL, FakeOllama


class CountingTransport(httpx.MockTransport):
    def __init__(self, fake: FakeOllama) -> None:
        super().__init__(fake.handle)
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_all_calls_share_one_async_client(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[httpx.AsyncClient] = []
    real = httpx.AsyncClient

    def counting(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        created.append(real(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(httpx, "AsyncClient", counting)
    fake.reply("HEAD /", text="")
    fake.reply("GET /api/version", json_body={"version": "0.6.8"})
    fake.reply("GET /api/tags", json_body={"models": []})
    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(fake.handle)) as client:
        for _ in range(3):
            await client.heartbeat()
            await client.version()
            await client.tags()
    assert len(created) == 1
    assert len(fake.requests) == 9


async def test_context_manager_closes_the_pool(fake: FakeOllama) -> None:
    transport = CountingTransport(fake)
    async with OllamaClient(BASE_URL, transport=transport) as client:
        assert not client.is_closed
    assert client.is_closed
    assert transport.closed == 1


async def test_aclose_closes_the_pool(fake: FakeOllama) -> None:
    transport = CountingTransport(fake)
    client = OllamaClient(BASE_URL, transport=transport)
    await client.aclose()
    assert client.is_closed and transport.closed == 1


async def test_proxy_settings_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # A localhost supervisor must never be routed through the user's proxy. (httpx
    # skips environment proxies anyway when a transport is injected, so look inside.)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    async with OllamaClient(BASE_URL) as client:
        assert client._session._http.trust_env is False
        assert not client._session._http._mounts


async def test_base_url_path_and_trailing_slash(fake: FakeOllama) -> None:
    fake.reply("GET /ollama/api/version", json_body={"version": "0.6.8"})
    transport = httpx.MockTransport(fake.handle)
    async with OllamaClient("https://h.example/ollama/", transport=transport) as client:
        assert client.base_url == "https://h.example/ollama"
        assert await client.version() == "0.6.8"
    assert str(fake.last.url) == "https://h.example/ollama/api/version"


async def test_timeouts_bound_quick_calls_and_connects_but_not_stream_reads() -> None:
    async with OllamaClient(BASE_URL, timeout_s=3.0) as client:
        quick, long = client._session._quick, client._session._long
    assert (quick.connect, quick.read, quick.write, quick.pool) == (3.0, 3.0, 3.0, 3.0)
    assert long.read is None
    assert (long.connect, long.write, long.pool) == (3.0, 3.0, 3.0)
