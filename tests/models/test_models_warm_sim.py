"""Keep-warm against the simulator as a real subprocess (the issue's Must-show list)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from n3d.api.models import counts_result, loaded_result, warm_result
from n3d.metrics import REGISTRY
from n3d.models import Models
from n3d.ollama.client import OllamaClient
from n3d.ollama.names import same_model
from n3d.testing.simulator import SimulatorProcess

from .models_support import Events, MakeSettings, StartSim, running, wait_until

pytestmark = pytest.mark.slow

PRELOAD = {"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,tinyllama"}


def counter(name: str) -> float:
    return float(REGISTRY.snapshot()["counters"].get(name, 0))


async def is_loaded(client: OllamaClient, model: str) -> bool:
    return any(same_model(m.name, model) for m in await client.ps())


def warmed(events: Events) -> int:
    """Warm-ups n3d has finished. `/api/ps` lists a model a moment before n3d has its
    answer to the load (and so its metric, event and state): wait for this, not that."""
    return len(events.of("warm", action="warmed"))


def warm_loads(sim: SimulatorProcess) -> list[float]:
    """Times (s) at which `/api/generate` answered: every one here is a warm-up."""
    return [r["ts"] for r in sim.request_log() if r["path"] == "/api/generate"]


async def test_warm_model_is_loaded_after_start_and_after_an_unload_behind_our_back(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim(PRELOAD)
    events = Events()
    settings = make_settings(sim.url, warm_models=("llama3.2",))
    async with OllamaClient(sim.url) as client:
        models = Models(
            client, settings, publish=events, state_path=tmp_path / "w.json", poll_s=0.1
        )
        async with running(models):
            await wait_until(lambda: is_loaded(client, "llama3.2"), 5, "the first warm-up")

            def seen_done() -> bool:  # by n3d: the answer, and its own poll of /api/ps
                names = counts_result(models.counts())["loaded_names"]
                return warmed(events) == 1 and names == ["llama3.2:latest"]

            await wait_until(seen_done, 5, "n3d to see its warm-up done")
            (row,) = warm_result(await models.warm_list())["models"]
            assert row["name"] == "llama3.2:latest" and row["loaded"] is True
            assert row["expires_at"].startswith("23")  # forever: about year 2318
            assert row["last_warmed_at"].endswith("Z")
            assert REGISTRY.snapshot()["histograms"]["ollama.model.warm_duration"]["count"] == 1
            loaded = loaded_result(await models.loaded())["models"]
            assert [(m["name"], m["warm"]) for m in loaded] == [("llama3.2:latest", True)]
            counts = counts_result(models.counts())  # `status`: names for n3ctl's few
            assert (counts["loaded_names"], counts["warm_names"]) == (
                ["llama3.2:latest"],
                ["llama3.2:latest"],
            )

            # Someone unloads it straight at Ollama, as `ollama stop` does.
            async with httpx.AsyncClient(base_url=sim.url) as raw:
                reply = await raw.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0})
            assert reply.json()["done_reason"] == "unload"
            await wait_until(lambda: counter("ollama.model.evicted") == 1, 5, "the eviction")
            await wait_until(lambda: is_loaded(client, "llama3.2"), 5, "the re-warm")
            await wait_until(lambda: warmed(events) >= 2, 5, "n3d to see its re-warm done")
    assert events.of("model.unloaded", model="llama3.2:latest", reason="evicted", warm=True)
    assert warmed(events) == 2
    assert events.of("model.loaded", model="llama3.2:latest", warm=True)


async def test_warm_model_comes_back_after_the_server_restarts(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    first = start_sim(PRELOAD, workdir=tmp_path / "sim")
    settings = make_settings(first.url, warm_models=("llama3.2",))
    async with OllamaClient(first.url) as client:
        models = Models(client, settings, state_path=tmp_path / "w.json", poll_s=0.1)
        async with running(models):
            models.on_server_ready(1)
            await wait_until(lambda: is_loaded(client, "llama3.2"), 5, "the first warm-up")
            first.kill_group()  # the supervisor sees it die ...
            models.on_server_lost()
            log = {"OLLAMA_SIM_REQUEST_LOG": str(tmp_path / "second.jsonl")}
            second = start_sim({**PRELOAD, **log}, port=first.port, workdir=tmp_path / "sim")
            models.on_server_ready(2)  # ... and restarts it
            await wait_until(lambda: is_loaded(client, "llama3.2"), 5, "the warm-up after restart")
            # The simulator logs a request once it has answered, a moment after /api/ps
            # lists the model: wait for the line, then count.
            await wait_until(lambda: bool(warm_loads(second)), 5, "the warm-up's log line")
    assert len(warm_loads(second)) == 1  # n3d's warm-up, nobody else's request
    assert counter("ollama.model.evicted") == 0  # a restart is not an eviction


async def test_finite_keep_alive_is_refreshed_before_it_expires_at_most_once_per_period(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim(PRELOAD)
    events = Events()
    # keep_alive 1 s, polls every 0.1 s: refresh lead = min(1/2, 2*0.1 + 1) = 0.5 s
    settings = make_settings(sim.url, warm_models=("llama3.2",), warm_keep_alive="1s")
    async with OllamaClient(sim.url) as client:
        models = Models(
            client, settings, publish=events, state_path=tmp_path / "w.json", poll_s=0.1
        )
        async with running(models):
            await wait_until(lambda: is_loaded(client, "llama3.2"), 5, "the first warm-up")
            watch_until = time.monotonic() + 3.0

            async def loaded_throughout_3s() -> bool:
                assert await is_loaded(client, "llama3.2"), "expired before its refresh"
                return time.monotonic() >= watch_until

            await wait_until(loaded_throughout_3s, 10, "3 s of watching")
    times = warm_loads(sim)
    assert len(times) >= 4  # it was refreshed, several times
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.45  # never two warm requests within one refresh period (0.5 s)
    assert not events.of("model.unloaded")


async def test_first_generate_on_a_warm_model_has_no_load_time_unlike_a_cold_one(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim({**PRELOAD, "OLLAMA_SIM_LOAD_SECONDS": "0.8"})
    settings = make_settings(sim.url, warm_models=("llama3.2",), num_ctx=8192)
    async with OllamaClient(sim.url) as client:
        models = Models(client, settings, state_path=tmp_path / "w.json", poll_s=0.1)
        async with running(models):
            await wait_until(lambda: is_loaded(client, "llama3.2"), 5, "the first warm-up")
            # Real traffic uses the configured num_ctx, as the warm-up did: no reload.
            warm = await client.generate("llama3.2", "hi", options={"num_ctx": 8192})
            cold = await client.generate("tinyllama", "hi", options={"num_ctx": 8192})
            (ps_row,) = [m for m in await client.ps() if m.name == "llama3.2:latest"]
    assert warm.stats is not None and cold.stats is not None
    assert (warm.stats.load_duration_ns or 0) < 0.4e9  # under half a load: none happened
    assert (cold.stats.load_duration_ns or 0) >= 0.7e9
    assert ps_row.context_length == 8192


async def test_missing_warm_model_is_pulled_only_with_auto_pull(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    sim = start_sim()
    events = Events()
    strict = make_settings(sim.url, warm_models=("tinyllama",), auto_pull_model=False)
    async with OllamaClient(sim.url) as client:
        models = Models(client, strict, publish=events, state_path=tmp_path / "w.json")
        async with running(models):
            await wait_until(lambda: bool(events.of("warm", action="failed")), 5, "a failure")
            (row,) = warm_result(await models.warm_list())["models"]
        assert "is not available locally" in row["last_error"]
        assert not events.of("pull")

        pulling = make_settings(sim.url, warm_models=("tinyllama",), auto_pull_model=True)
        models = Models(client, pulling, publish=events, state_path=tmp_path / "w.json")
        async with running(models):
            await wait_until(lambda: is_loaded(client, "tinyllama"), 10, "pull and warm-up")
    assert events.of("pull", status="success", model="tinyllama:latest")
    assert events.of("warm", action="pulling")


async def test_warm_embedding_model_becomes_loaded(
    start_sim: StartSim, make_settings: MakeSettings, tmp_path: Path
) -> None:
    # Ollama answers a load through /api/generate with 400 "does not support generate"
    # for an embedding model: the keeper loads it through /api/embed instead.
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "nomic-embed-text"})
    events = Events()
    settings = make_settings(sim.url, warm_models=("nomic-embed-text",))
    async with OllamaClient(sim.url) as client:
        models = Models(
            client, settings, publish=events, state_path=tmp_path / "w.json", poll_s=0.1
        )
        async with running(models):
            await wait_until(lambda: is_loaded(client, "nomic-embed-text"), 5, "the warm-up")
            await wait_until(lambda: warmed(events) >= 1, 5, "n3d to see its warm-up done")
            (row,) = warm_result(await models.warm_list())["models"]
            assert row["loaded"] is True and row["last_error"] is None
            assert row["expires_at"].startswith("23")  # the warm keep_alive, -1: forever
    assert events.of("warm", action="warmed", model="nomic-embed-text:latest")
    assert not events.of("warm", action="failed")
    paths = [r["path"] for r in sim.request_log()]
    assert "/api/embed" in paths and "/api/generate" not in paths
