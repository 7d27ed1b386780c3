"""OllamaClient against the simulator: a real `ollama-sim serve` subprocess on a free port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from n3d.errors import ModelNotFound, OllamaUnreachable, PullFailed
from n3d.ollama.client import OllamaClient, has_model
from n3d.testing.simulator import SimulatorProcess, free_port

pytestmark = pytest.mark.slow


def _start(workdir: Path, env: dict[str, str] | None = None) -> SimulatorProcess:
    return SimulatorProcess(workdir, env).start().wait_ready()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    # One simulator for the module; each test uses its own models so order does not matter.
    process = _start(tmp_path_factory.mktemp("sim"), {"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2"})
    try:
        yield process
    finally:
        process.kill_group()


@pytest.fixture
async def ollama(sim: SimulatorProcess) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(sim.url, timeout_s=5.0) as client:
        yield client


async def test_heartbeat_and_version(ollama: OllamaClient) -> None:
    began = time.perf_counter()
    latency = await ollama.heartbeat()
    assert 0 <= latency <= time.perf_counter() - began  # seconds, as seen from outside
    assert (await ollama.version())[0].isdigit()


async def test_preloaded_model_is_found_however_it_is_spelled(ollama: OllamaClient) -> None:
    installed = await ollama.tags()
    assert has_model(installed, "LLAMA3.2")
    assert has_model(installed, "llama3.2:latest")
    assert not has_model(installed, "llama3.2:1b")


async def test_pull_then_delete(ollama: OllamaClient) -> None:
    statuses = [progress.status async for progress in ollama.pull("tinyllama")]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert has_model(await ollama.tags(), "tinyllama")
    await ollama.delete("TinyLlama")
    assert not has_model(await ollama.tags(), "tinyllama")
    with pytest.raises(ModelNotFound):
        await ollama.delete("tinyllama")


async def test_pull_of_a_model_the_registry_lacks(ollama: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match="in its registry"):
        async for _ in ollama.pull("llama99"):
            pass


async def test_failing_pull_raises_pull_failed(tmp_path: Path) -> None:
    process = _start(tmp_path, {"OLLAMA_SIM_FAIL_PULLS": "midway"})
    try:
        async with OllamaClient(process.url) as client:
            with pytest.raises(PullFailed, match="it resumes"):
                async for _ in client.pull("qwen2.5:0.5b"):
                    pass
    finally:
        process.kill_group()


async def test_load_forever_then_unload(ollama: OllamaClient) -> None:
    result = await ollama.load("llama3.2", keep_alive=-1)
    assert result.done_reason == "load" and result.duration_s > 0
    [loaded] = [m for m in await ollama.ps() if has_model([m], "llama3.2")]
    assert loaded.is_forever()
    await ollama.unload("llama3.2")
    # The runner stops asynchronously after the unload answer, as in Ollama.
    for _ in range(100):
        if not has_model(await ollama.ps(), "llama3.2"):
            break
        await anyio.sleep(0.05)
    else:
        pytest.fail("llama3.2 still loaded 5 s after unload")


async def test_generate_and_chat_record_metrics(ollama: OllamaClient) -> None:
    with capture_logs() as logs:
        reply = await ollama.generate("llama3.2", "Say hi")
        messages = [{"role": "user", "content": "Hi"}]
        chunks = [c async for c in ollama.chat_stream("llama3.2", messages)]
    assert reply.done and reply.stats is not None and reply.stats.eval_count > 0
    assert chunks[-1].done and "".join(c.text for c in chunks)
    names = {e["metric"] for e in logs if e.get("event") == "metric"}
    assert {"ollama.request.duration", "ollama.stream.chunks", "ollama.tokens.total"} <= names


async def test_generate_with_a_missing_model(ollama: OllamaClient) -> None:
    with pytest.raises(ModelNotFound):
        await ollama.generate("mistral", "Hi")


async def test_sequential_calls_reuse_one_connection(ollama: OllamaClient) -> None:
    for _ in range(5):
        await ollama.heartbeat()
        await ollama.tags()
    pool = ollama._session._http._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1


async def test_nothing_listening_is_unreachable() -> None:
    async with OllamaClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as client:
        with pytest.raises(OllamaUnreachable):
            await client.heartbeat()
