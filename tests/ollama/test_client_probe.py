"""The liveness probe's requests: exactly the bodies DESIGN.md names, bounded as a whole."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from n3d.errors import OllamaError, OllamaTimeout
from n3d.metrics import REGISTRY
from n3d.ollama.client import OllamaClient

BASE_URL = "http://127.0.0.1:11434"


class Recorder:
    def __init__(self, answer: dict[str, object], status: int = 200) -> None:
        self.answer, self.status = answer, status
        self.requests: list[tuple[str, dict[str, object]]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.url.path, json.loads(request.content)))
        return httpx.Response(self.status, json=self.answer)


async def test_a_generate_probe_sends_one_token_and_nothing_that_reloads_or_repins() -> None:
    final = {"model": "m:latest", "done": True, "eval_count": 1, "eval_duration": 20_000_000}
    rec = Recorder(final)
    # Even a client configured with a num_ctx never sends it in a probe.
    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(rec.handle), num_ctx=8192) as c:
        stats = await c.probe("m", embed=False, timeout_s=20)
    assert rec.requests == [
        (
            "/api/generate",
            {"model": "m:latest", "prompt": ".", "stream": False, "options": {"num_predict": 1}},
        )
    ]
    assert stats.tokens_per_second == pytest.approx(50.0)
    # A probe is n3d's own check, not a request someone made: no request metrics.
    assert "ollama.request.duration" not in REGISTRY.snapshot()["histograms"]


async def test_an_embedding_probe_goes_through_embed() -> None:
    rec = Recorder({"model": "e:latest", "embeddings": [[0.1, 0.2]], "prompt_eval_count": 1})
    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(rec.handle)) as c:
        stats = await c.probe("e", embed=True, timeout_s=20)
    assert rec.requests == [("/api/embed", {"model": "e:latest", "input": "."})]
    assert stats.tokens_per_second is None


async def test_a_probe_that_gets_no_answer_in_time_is_a_timeout() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError

    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(never)) as c:
        with pytest.raises(OllamaTimeout):
            await c.probe("m", embed=False, timeout_s=0.05)


async def test_an_error_answer_is_ollamas_error() -> None:
    rec = Recorder({"error": "model runner has unexpectedly stopped"}, status=500)
    async with OllamaClient(BASE_URL, transport=httpx.MockTransport(rec.handle)) as c:
        with pytest.raises(OllamaError, match="unexpectedly stopped"):
            await c.probe("m", embed=False, timeout_s=5)
