"""What real clients meet over HTTP (DESIGN.md "The simulator", for real clients): format,
tools, the checks Ollama makes before it answers, reload decisions, /v1 and CORS."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers",
        "parameters": {
            "type": "object",
            "required": ["a", "b"],
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        },
    },
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
USER = [{"role": "user", "content": "add 2 and 3"}]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    workdir: Path = tmp_path_factory.mktemp("compat")
    sim = SimulatorProcess(
        workdir, {"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,tinyllama,nomic-embed-text"}
    )
    try:
        yield sim.start().wait_ready()
    finally:
        sim.kill_group()


@pytest.fixture
def c(shared: SimulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared.url, timeout=20.0) as client:
        yield client


def _lines(reply: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in reply.text.splitlines() if line]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fmt", ["json", PERSON])
def test_format_yields_json_that_parses_for_generate_and_chat(
    c: httpx.Client, stream: bool, fmt: Any
) -> None:
    reply = c.post(
        "/api/generate",
        json={"model": "llama3.2", "prompt": "who?", "format": fmt, "stream": stream},
    )
    text = "".join(chunk["response"] for chunk in _lines(reply))
    reply = c.post(
        "/api/chat", json={"model": "llama3.2", "messages": USER, "format": fmt, "stream": stream}
    )
    chunks = _lines(reply)
    assert len(chunks) > 2 if stream else len(chunks) == 1
    said = "".join(chunk["message"]["content"] for chunk in chunks)
    for value in (json.loads(text), json.loads(said)):
        assert isinstance(value, dict)
        if fmt is PERSON:
            assert isinstance(value["name"], str) and isinstance(value["age"], int)


def test_an_invalid_format_is_a_500_after_the_model_loads(c: httpx.Client) -> None:
    reply = c.post("/api/generate", json={"model": "llama3.2", "prompt": "x", "format": "yaml"})
    assert reply.status_code == 500 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error"].startswith('invalid format: "\\"yaml\\""; expected "json"')


@pytest.mark.parametrize("stream", [False, True])
def test_a_tools_model_returns_tool_calls_then_answers_the_result(
    c: httpx.Client, stream: bool
) -> None:
    body = {"model": "llama3.2", "messages": USER, "tools": [ADD], "stream": stream}
    chunks = _lines(c.post("/api/chat", json=body))
    calls = [call for chunk in chunks for call in chunk["message"].get("tool_calls", [])]
    assert len(calls) == 1 and calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "add" and calls[0]["function"]["index"] == 0
    assert set(calls[0]["function"]["arguments"]) == {"a", "b"}
    assert all(chunk["message"]["content"] == "" for chunk in chunks)
    assert chunks[-1]["done"] is True
    messages = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "5", "tool_name": "add"},
    ]
    body["messages"] = messages
    chunks = _lines(c.post("/api/chat", json=body))
    assert "".join(chunk["message"]["content"] for chunk in chunks)
    assert not any(chunk["message"].get("tool_calls") for chunk in chunks)


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (
            "/api/chat",
            {"model": "tinyllama", "messages": USER, "tools": [ADD]},
            400,
            "registry.ollama.ai/library/tinyllama:latest does not support tools",
        ),
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "def f(", "suffix": "return 1"},
            400,
            "registry.ollama.ai/library/llama3.2:latest does not support insert",
        ),
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "x", "think": True},
            400,
            '"llama3.2" does not support thinking',
        ),
        (
            "/api/chat",
            {"model": "llama3.2", "messages": USER, "think": True},
            400,
            '"llama3.2" does not support thinking',
        ),
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "x", "think": "high"},
            400,
            'think value "high" is not supported for this model',
        ),
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "x", "raw": True, "system": "s"},
            400,
            "raw mode does not support template, system, or context",
        ),
        (
            "/api/chat",
            {"model": "llama3.2", "messages": USER, "top_logprobs": 21},
            400,
            "top_logprobs must be between 0 and 20",
        ),
        ("/api/chat", {"model": "bad name!!", "messages": USER}, 400, "model is required"),
        ("/api/show", {"model": "bad name!!"}, 500, "invalid model path"),
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "x", "options": {"num_ctx": "abc"}},
            500,
            'option "num_ctx" must be of type integer',
        ),
        (
            "/api/generate",
            {"model": "nomic-embed-text", "prompt": "x"},
            400,
            '"nomic-embed-text" does not support generate',
        ),
    ],
)
def test_requests_ollama_refuses_are_refused_with_its_status_and_text(
    c: httpx.Client, path: str, body: dict[str, Any], status: int, error: str
) -> None:
    reply = c.post(path, json=body)
    assert (reply.status_code, reply.json()) == (status, {"error": error})


def test_naming_default_options_keeps_the_runner_and_a_new_num_ctx_reloads(
    c: httpx.Client, shared: SimulatorProcess
) -> None:
    c.post("/api/generate", json={"model": "tinyllama"})
    first = shared.runner_pids()
    defaults = {"num_batch": 512, "num_gpu": -1, "num_ctx": 4096}
    c.post("/api/generate", json={"model": "tinyllama", "options": defaults})
    assert shared.runner_pids() == first
    # 8192 and 4096 are both capped at tinyllama's 2048, but Ollama compares them as asked.
    c.post("/api/generate", json={"model": "tinyllama", "options": {"num_ctx": 8192}})
    assert shared.runner_pids() != first


def test_openai_chat_streams_data_lines_with_usage_and_done(c: httpx.Client) -> None:
    body = {
        "model": "llama3.2",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = c.post("/v1/chat/completions", json=body)
    assert reply.headers["content-type"] == "text/event-stream"
    events = [line[6:] for line in reply.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_openai_models_embeddings_and_errors(c: httpx.Client) -> None:
    ids = {m["id"] for m in c.get("/v1/models").json()["data"]}
    assert {"llama3.2:latest", "tinyllama:latest", "nomic-embed-text:latest"} <= ids
    assert c.get("/v1/models/llama3.2").json()["id"] == "llama3.2"
    missing = c.get("/v1/models/ghost")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "model 'ghost' not found",
        "type": "api_error",
        "param": None,
        "code": None,
    }
    reply = c.post("/v1/embeddings", json={"model": "nomic-embed-text", "input": ["a", "b"]})
    assert [len(d["embedding"]) for d in reply.json()["data"]] == [768, 768]
    reply = c.post("/v1/chat/completions", json={"model": "llama3.2", "messages": []})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_cors_preflight_origin_echo_and_refusal(c: httpx.Client) -> None:
    ask = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
    reply = c.request("OPTIONS", "/api/chat", headers=ask)
    assert reply.status_code == 204 and "content-length" not in reply.headers
    assert reply.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "Content-Type" in reply.headers["access-control-allow-headers"]
    reply = c.get("/api/version", headers={"Origin": "http://localhost:5173"})
    assert reply.status_code == 200 and reply.headers["vary"] == "Origin"
    assert c.get("/api/version", headers={"Origin": "https://evil.example"}).status_code == 403
    assert c.request("OPTIONS", "/api/tags").status_code == 405  # no Origin: gin's router
    assert c.request("OPTIONS", "/api/tags", headers={"Host": "localhost"}).status_code == 204


def test_ollama_origins_is_honoured(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_ORIGINS": "https://app.example.com,chrome-extension://*"})
    with httpx.Client(base_url=sim.url, timeout=10.0) as c:
        for origin in ("https://app.example.com", "chrome-extension://abcdef"):
            reply = c.get("/api/tags", headers={"Origin": origin})
            assert reply.headers["access-control-allow-origin"] == origin
        assert c.get("/api/tags", headers={"Origin": "https://b.example"}).status_code == 403


def test_an_origin_ollama_cannot_use_panics_at_start(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_ORIGINS": "example.com"}, ready=False)
    assert sim.proc is not None and sim.proc.wait(10) == 2
    assert "panic: bad origin: origins must contain '*'" in sim.stderr()


def test_blobs_head_and_upload_as_ollama_answers_them(c: httpx.Client) -> None:
    data = b"a layer a client uploads before create"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert c.head(f"/api/blobs/{digest}").status_code == 404
    missing = c.post(f"/api/blobs/{digest[:-1]}0", content=data)
    assert missing.status_code == 400
    assert missing.json()["error"] == (
        f'digest mismatch, expected "{digest[:-1]}0", got "{digest}"'
    )
    assert c.post(f"/api/blobs/{digest}", content=data).status_code == 200  # kept before
    assert c.head(f"/api/blobs/{digest}").status_code == 200
    bad = c.post("/api/blobs/md5:abc", content=data)
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid digest format"})
    other = b"another layer"
    other_digest = "sha256:" + hashlib.sha256(other).hexdigest()
    assert c.post(f"/api/blobs/{other_digest}", content=other).status_code == 201
