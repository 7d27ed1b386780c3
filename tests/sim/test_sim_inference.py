"""Generate, chat, embed, keep_alive and /api/ps as research/ollama.md §1 describes them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]

FINAL_COUNTERS = {"total_duration", "load_duration", "prompt_eval_count",
                  "prompt_eval_duration", "eval_count", "eval_duration"}


def _ps(client: httpx.Client) -> list[dict]:
    return list(client.get("/api/ps").json()["models"])


def _wait_unloaded(client: httpx.Client, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _ps(client) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _ps(client) == []


def test_generate_load_reply(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/generate", json={"model": "llama3.2"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["model"] == "llama3.2"
    assert body["response"] == ""
    assert body["done"] is True
    assert body["done_reason"] == "load"
    assert body["created_at"].endswith("Z")
    assert [m["name"] for m in _ps(client_models)] == ["llama3.2:latest"]


def test_chat_load_and_unload_replies(client_models: httpx.Client) -> None:
    body = client_models.post("/api/chat", json={"model": "llama3.2", "messages": []}).json()
    assert body["message"] == {"role": "assistant", "content": ""}
    assert body["done_reason"] == "load"
    body = client_models.post("/api/chat", json={"model": "llama3.2", "keep_alive": 0}).json()
    assert body["done_reason"] == "unload"
    assert body["message"] == {"role": "assistant", "content": ""}
    _wait_unloaded(client_models)


def test_unload_of_installed_but_not_loaded_model_is_a_200_noop(
        client_models: httpx.Client) -> None:
    reply = client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0})
    assert reply.status_code == 200
    assert reply.json()["done_reason"] == "unload"


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_unknown_model_is_404(client_models: httpx.Client, path: str) -> None:
    reply = client_models.post(path, json={"model": "ghost"})
    assert (reply.status_code, reply.json()) == (404, {"error": "model 'ghost' not found"})
    reply = client_models.post(path, json={"model": "ghost", "keep_alive": 0})
    assert reply.status_code == 404


def test_empty_model_errors_differ_between_generate_and_chat(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/generate", json={"model": ""})
    assert (reply.status_code, reply.json()) == (404, {"error": "model '' not found"})
    reply = client_models.post("/api/chat", json={"model": ""})
    assert (reply.status_code, reply.json()) == (400, {"error": "model is required"})


def test_generate_on_embedding_model_is_refused(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/generate", json={"model": "nomic-embed-text",
                                                      "prompt": "hi"})
    assert reply.status_code == 400
    assert reply.json() == {"error": '"nomic-embed-text" does not support generate'}


def test_streamed_generate_is_deterministic_and_ends_with_counters(
        client_models: httpx.Client) -> None:
    def run() -> list[dict]:
        with client_models.stream("POST", "/api/generate",
                                  json={"model": "llama3.2", "prompt": "Why is the sky blue?"}
                                  ) as reply:
            assert reply.headers["content-type"] == "application/x-ndjson"
            return [json.loads(line) for line in reply.iter_lines() if line]

    first, second = run(), run()
    text = "".join(chunk["response"] for chunk in first)
    assert text and text == "".join(chunk["response"] for chunk in second)
    assert all(not chunk["done"] for chunk in first[:-1])
    final = first[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert set(final) >= FINAL_COUNTERS
    assert final["eval_count"] == len(first) - 1
    assert isinstance(final["context"], list) and final["context"]


def test_stream_false_generate_and_chat(client_models: httpx.Client) -> None:
    body = client_models.post("/api/generate", json={"model": "llama3.2", "prompt": "hello",
                                                     "stream": False}).json()
    assert body["response"] and body["done_reason"] == "stop" and set(body) >= FINAL_COUNTERS
    body = client_models.post("/api/chat", json={
        "model": "llama3.2", "stream": False,
        "messages": [{"role": "user", "content": "hello"}]}).json()
    assert body["message"]["role"] == "assistant" and body["message"]["content"]
    assert "context" not in body and set(body) >= FINAL_COUNTERS


def test_num_predict_limit_ends_with_length(client_models: httpx.Client) -> None:
    body = client_models.post("/api/generate", json={
        "model": "llama3.2", "prompt": "hello", "stream": False,
        "options": {"num_predict": 2}}).json()
    assert (body["eval_count"], body["done_reason"]) == (2, "length")


def test_cold_load_shows_in_load_duration_and_warm_does_not(client_models: httpx.Client) -> None:
    request = {"model": "llama3.2", "prompt": "x", "stream": False}
    cold = client_models.post("/api/generate", json=request).json()
    warm = client_models.post("/api/generate", json=request).json()
    assert cold["load_duration"] >= 150_000_000  # OLLAMA_SIM_LOAD_SECONDS=0.2 in tests
    assert warm["load_duration"] < 100_000_000  # under half a load: nothing was loaded


@pytest.mark.parametrize(("value", "error"), [
    ("300", 'time: missing unit in duration "300"'),
    ("-1", 'time: missing unit in duration "-1"'),
    (True, "Unsupported type: 'bool'"),
])
def test_bad_keep_alive_is_400(client_models: httpx.Client, value: object, error: str) -> None:
    reply = client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": value})
    assert (reply.status_code, reply.json()) == (400, {"error": error})


def _expires(client: httpx.Client) -> datetime:
    return datetime.fromisoformat(_trim_nanos(_ps(client)[0]["expires_at"]))


def _trim_nanos(stamp: str) -> str:
    # Python 3.11 parses at most 6 fractional digits; Go writes up to 9.
    head, _, tail = stamp.partition(".")
    if not tail:
        return stamp
    digits = "".join(ch for ch in tail if ch.isdigit())
    return f"{head}.{digits[:6]}{tail[len(digits):]}"


def test_negative_keep_alive_means_forever_about_year_2318(client_models: httpx.Client) -> None:
    client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": -1})
    assert 2317 <= _expires(client_models).year <= 2319
    client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": "-1m"})
    assert 2317 <= _expires(client_models).year <= 2319


def test_request_without_keep_alive_keeps_the_loaded_setting(client_models: httpx.Client) -> None:
    client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": "1h"})
    client_models.post("/api/generate", json={"model": "llama3.2", "prompt": "hi",
                                              "stream": False})
    remaining = _expires(client_models).timestamp() - time.time()
    assert 3500 < remaining <= 3600
    client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": "5m"})
    remaining = _expires(client_models).timestamp() - time.time()
    assert 250 < remaining <= 300  # a request that carries keep_alive overwrites it


def test_new_load_defaults_to_ollama_keep_alive(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2",
                                       "OLLAMA_KEEP_ALIVE": "10m"})
    with httpx.Client(base_url=sim.url) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        remaining = _expires(c).timestamp() - time.time()
    assert 550 < remaining <= 600


def test_idle_model_expires_and_its_runner_is_killed(sim_with_models: SimulatorProcess,
                                                     client_models: httpx.Client) -> None:
    client_models.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0.3})
    assert len(sim_with_models.runner_pids()) == 1
    _wait_unloaded(client_models)
    deadline = time.monotonic() + 3
    while sim_with_models.runner_pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim_with_models.runner_pids() == set()


def test_ps_fields(client_models: httpx.Client) -> None:
    client_models.post("/api/generate", json={"model": "llama3.2"})
    (row,) = _ps(client_models)
    assert set(row) == {"name", "model", "size", "digest", "details", "expires_at",
                        "size_vram", "context_length"}
    assert row["name"] == row["model"] == "llama3.2:latest"
    assert row["size_vram"] == 0 and row["size"] > 0
    assert row["context_length"] == 4096


def test_changing_num_ctx_reloads_the_runner(sim_with_models: SimulatorProcess,
                                             client_models: httpx.Client) -> None:
    client_models.post("/api/generate", json={"model": "llama3.2"})
    before = sim_with_models.runner_pids()
    reply = client_models.post("/api/generate", json={"model": "llama3.2",
                                                      "options": {"num_ctx": 8192}})
    assert reply.status_code == 200
    assert _ps(client_models)[0]["context_length"] == 8192
    after = sim_with_models.runner_pids()
    assert len(after) == 1 and after != before
    same = client_models.post("/api/generate", json={"model": "llama3.2", "prompt": "x",
                                                     "stream": False,
                                                     "options": {"num_ctx": 8192}}).json()
    assert same["load_duration"] < 100_000_000  # under half a load (0.2 s): no reload


def test_embed_returns_deterministic_unit_vectors(client_models: httpx.Client) -> None:
    reply = client_models.post("/api/embed", json={"model": "nomic-embed-text",
                                                   "input": ["a", "b"]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["model"] == "nomic-embed-text"
    assert len(body["embeddings"]) == 2 and len(body["embeddings"][0]) == 768
    assert abs(sum(v * v for v in body["embeddings"][0]) - 1.0) < 1e-4
    again = client_models.post("/api/embed", json={"model": "nomic-embed-text",
                                                   "input": "a"}).json()
    assert again["embeddings"][0] == body["embeddings"][0]
    assert {"total_duration", "load_duration", "prompt_eval_count"} <= set(body)


def test_embed_edge_cases(client_models: httpx.Client) -> None:
    empty = client_models.post("/api/embed", json={"model": "nomic-embed-text"}).json()
    assert empty == {"model": "nomic-embed-text", "embeddings": []}
    reply = client_models.post("/api/embed", json={"model": "nomic-embed-text", "input": [1]})
    assert (reply.status_code, reply.json()) == (400, {"error": "invalid input type"})
    reply = client_models.post("/api/embed", json={"model": "ghost", "input": "a"})
    assert (reply.status_code, reply.json()) == (
        404, {"error": 'model "ghost" not found, try pulling it first'})


def test_legacy_embeddings(client_models: httpx.Client) -> None:
    body = client_models.post("/api/embeddings", json={"model": "nomic-embed-text",
                                                       "prompt": "hello"}).json()
    assert len(body["embedding"]) == 768
    assert client_models.post("/api/embeddings", json={"model": "nomic-embed-text"}
                              ).json() == {"embedding": []}


def test_loads_beyond_max_loaded_models_evict_an_idle_one(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,qwen2.5:0.5b,all-minilm",
                     "OLLAMA_MAX_LOADED_MODELS": "2"})
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        c.post("/api/generate", json={"model": "llama3.2", "keep_alive": "1m"})
        c.post("/api/generate", json={"model": "qwen2.5:0.5b", "keep_alive": "1h"})
        c.post("/api/embed", json={"model": "all-minilm"})
        names = {m["name"] for m in _ps(c)}
    assert names == {"qwen2.5:0.5b", "all-minilm:latest"}
    assert len(sim.runner_pids()) == 2


def test_embedding_model_loads_through_embed_with_no_input_not_generate(
    client_models: httpx.Client,
) -> None:
    # Ollama v0.13.5 server/routes.go: generate's load asks for the completion
    # capability (l. 372-375: 400 "does not support generate"); embed schedules the
    # model with no capability and answers an empty input at once (l. 681-691).
    reply = client_models.post("/api/generate", json={"model": "nomic-embed-text"})
    assert (reply.status_code, reply.json()) == (
        400, {"error": '"nomic-embed-text" does not support generate'})
    assert client_models.get("/api/ps").json() == {"models": []}
    reply = client_models.post("/api/embed", json={"model": "nomic-embed-text",
                                                   "keep_alive": -1})
    assert reply.json() == {"model": "nomic-embed-text", "embeddings": []}
    (loaded,) = client_models.get("/api/ps").json()["models"]
    assert loaded["name"] == "nomic-embed-text:latest"
    assert loaded["expires_at"].startswith("23")  # keep_alive -1: forever, about 2318
    # Unloading through generate works for it, before the capability check (l. 316-328).
    reply = client_models.post("/api/generate", json={"model": "nomic-embed-text",
                                                      "keep_alive": 0})
    assert reply.json()["done_reason"] == "unload"
