"""The availability cache: TTL, invalidation, single flight (MockTransport and simulator)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from n3d.api.models import ensure_result
from n3d.errors import ModelNotFound, OllamaUnreachable
from n3d.metrics import REGISTRY
from n3d.models import ModelCache, Models
from n3d.ollama.client import OllamaClient

from .models_support import MakeSettings, StartSim, count_requests, running, wait_until

BASE = "http://ollama.test:11434"


class Tags:
    """A fake `/api/tags` that counts calls and can be slow or down."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.calls = 0
        self.down = False
        self.gate: anyio.Event | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/tags"
        self.calls += 1
        names = list(self.names)  # Ollama's answer as of the request; it may arrive late
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        models = [{"name": n, "model": n, "size": 1, "digest": "d" * 64} for n in names]
        return httpx.Response(200, json={"models": models})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_reused_within_the_ttl_and_refetched_after() -> None:
    tags, clock = Tags(["llama3:latest"]), Clock()
    async with OllamaClient(BASE, transport=httpx.MockTransport(tags.handle)) as client:
        cache = ModelCache(client, ttl_s=60, clock=clock)
        assert await cache.is_available("llama3") == (True, False)
        assert await cache.is_available("LLAMA3:latest") == (True, True)
        assert await cache.is_available("mistral") == (False, True)
        clock.now += 61
        assert await cache.is_available("llama3") == (True, False)
    assert tags.calls == 2
    assert REGISTRY.snapshot()["histograms"]["ollama.model.check_duration"]["count"] == 4


async def test_invalidation_drops_the_listing_and_refresh_bypasses_it() -> None:
    tags, clock = Tags(["llama3:latest"]), Clock()
    async with OllamaClient(BASE, transport=httpx.MockTransport(tags.handle)) as client:
        cache = ModelCache(client, ttl_s=60, clock=clock)
        await cache.installed()
        tags.names.append("mistral:latest")
        assert await cache.is_available("mistral") == (False, True)  # cached, not asked
        cache.invalidate()
        assert cache.peek() is None
        assert await cache.is_available("mistral") == (True, False)
        listing = await cache.installed()
        refreshed = await cache.installed(refresh=True)
    assert listing.cached and not refreshed.cached
    assert tags.calls == 3
    assert REGISTRY.snapshot()["gauges"]["ollama.models.count"] == 2


async def test_a_fetch_overtaken_by_an_invalidation_is_not_cached_or_shared() -> None:
    """A model pulled while `/api/tags` was in flight must not be "missing" for a TTL."""
    tags = Tags(["llama3:latest"])
    tags.gate = anyio.Event()
    async with OllamaClient(BASE, transport=httpx.MockTransport(tags.handle)) as client:
        cache = ModelCache(client, ttl_s=60)
        early: list[tuple[bool, bool]] = []
        late: list[tuple[bool, bool]] = []

        async def ask(into: list[tuple[bool, bool]]) -> None:
            into.append(await cache.is_available("mistral"))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, early)
                await wait_until(lambda: tags.calls == 1, what="the first /api/tags")
                tags.names.append("mistral:latest")  # the pull succeeds meanwhile ...
                cache.invalidate()  # ... and drops the listing, as Models._pulled does
                tg.start_soon(ask, late)  # asks after the pull: must see the new model
                await anyio.wait_all_tasks_blocked()
                tags.gate.set()
        assert early == [(False, False)]  # its question predates the pull: a fair answer
        assert late == [(True, False)]  # a fresh fetch, not the overtaken one
        assert await cache.is_available("mistral") == (True, True)  # and that one is cached
    assert tags.calls == 2


async def test_concurrent_askers_share_one_fetch_and_its_failure() -> None:
    tags = Tags(["llama3:latest"])
    tags.gate, tags.down = anyio.Event(), True
    failures: list[BaseException] = []
    async with OllamaClient(BASE, transport=httpx.MockTransport(tags.handle)) as client:
        cache = ModelCache(client, ttl_s=60)

        async def ask() -> None:
            try:
                await cache.is_available("llama3")
            except OllamaUnreachable as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            tags.gate.set()
        tags.gate, tags.down = None, False
        assert await cache.is_available("llama3") == (True, False)  # errors are not cached
    assert len(failures) == 20
    assert tags.calls == 2
    # One exception object raised from 20 tasks would collect all their tracebacks.
    assert len({id(exc) for exc in failures}) == 20
    assert all(str(exc) == str(failures[0]) for exc in failures)
    assert all(isinstance(exc.__cause__, httpx.ConnectError) for exc in failures)


@pytest.mark.slow
async def test_fifty_concurrent_ensures_inside_the_ttl_cause_one_tags_call(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2"})
    results: list[dict[str, object]] = []
    async with OllamaClient(sim.url) as client:
        models = Models(client, make_settings(sim.url), state_path=tmp_path / "w.json")
        async with running(models):

            async def ensure(spelling: str) -> None:
                results.append(ensure_result(await models.ensure(spelling)))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(ensure, ("llama3.2", "llama3.2:latest", "Llama3.2")[i % 3])
            with pytest.raises(ModelNotFound) as caught:
                await models.ensure("mistral")  # answered from the same cached listing
    await wait_until(lambda: count_requests(sim, "GET", "/api/tags") >= 1, what="request log")
    assert count_requests(sim, "GET", "/api/tags") == 1
    assert len(results) == 50
    assert all(r["available"] is True and r["pulled"] is False for r in results)
    assert str(caught.value).startswith("Ollama model 'mistral:latest' is not available locally.")
    assert "Suggestion: Run: ollama pull mistral:latest" in str(caught.value)
    assert "Or enable auto_pull_model in your configuration." in str(caught.value)
