"""Fixtures for the Ollama client tests (anyio on asyncio, a fake server, a client)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from n3d.ollama.client import OllamaClient

from .ollama_fakes import BASE_URL, FakeOllama


@pytest.fixture
def fake() -> FakeOllama:
    return FakeOllama()


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(fake.handle)) as c:
        yield c
