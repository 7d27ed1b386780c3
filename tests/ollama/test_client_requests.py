"""What OllamaClient sends and how it reads Ollama's answers (research/ollama.md §1)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from n3d.errors import InvalidModelName, UnexpectedResponse
from n3d.ollama.client import OllamaClient
from n3d.ollama.duration import KeepAliveError

from .ollama_fakes import FakeOllama

TAGS = {
    "models": [
        {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": "2024-06-04T14:38:31.837532521-07:00",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {"format": "gguf", "family": "llama", "families": None},
            "capabilities": ["completion"],  # newer servers add fields: ignored
        }
    ]
}
LOADED = {
    "name": "llama3.2:latest",
    "model": "llama3.2:latest",
    "size": 3_000_000_000,
    "size_vram": 0,
    "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
    "details": {},
    "expires_at": "2318-09-21T03:54:27.516436197+01:00",
    "context_length": 4096,
}
LOADED_REPLY = {"model": "llama3:latest", "created_at": "2024-01-01T00:00:00Z", "response": ""}


async def test_heartbeat_sends_head_root_and_returns_seconds(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("HEAD /", text="")
    began = time.perf_counter()
    latency = await client.heartbeat()
    outside = time.perf_counter() - began
    assert fake.last.method == "HEAD" and fake.last.url.path == "/"
    assert 0 <= latency <= outside  # seconds, as seen from outside the call


async def test_requests_carry_n3d_user_agent(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("HEAD /", text="")
    await client.heartbeat()
    assert fake.last.headers["user-agent"].startswith("n3d/")


async def test_version_reads_the_version_field(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("GET /api/version", json_body={"version": "0.6.8"})
    assert await client.version() == "0.6.8"


async def test_tags_parses_models_and_ignores_new_fields(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("GET /api/tags", json_body=TAGS)
    [model] = await client.tags()
    assert model.name == "llama3.2:latest"
    assert model.size == 2019393189
    assert model.details["family"] == "llama"
    assert model.modified is not None and model.modified.year == 2024


@pytest.mark.parametrize("body", [{"models": []}, {"models": None}, {}])
async def test_tags_with_no_models_is_empty(
    client: OllamaClient, fake: FakeOllama, body: dict[str, object]
) -> None:
    fake.reply("GET /api/tags", json_body=body)
    assert await client.tags() == []


async def test_ps_parses_loaded_models_including_forever(
    client: OllamaClient, fake: FakeOllama
) -> None:
    old_server = {k: v for k, v in LOADED.items() if k != "context_length"}
    fake.reply("GET /api/ps", json_body={"models": [LOADED, old_server]})
    new, old = await client.ps()
    assert new.context_length == 4096 and old.context_length is None
    assert new.size_vram == 0
    assert new.expires is not None and new.expires.year == 2318
    assert new.is_forever()


async def test_show_posts_the_normalised_name(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply("POST /api/show", json_body={"model_info": {"llama.context_length": 8192}})
    info = await client.show("Llama3")
    assert fake.last_json() == {"model": "Llama3:latest"}
    assert info["model_info"]["llama.context_length"] == 8192


async def test_delete_sends_delete_with_body_and_accepts_empty_answer(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("DELETE /api/delete", text="")
    await client.delete("llama3:8b")
    assert fake.last.method == "DELETE"
    assert fake.last_json() == {"model": "llama3:8b"}


async def test_load_sends_only_the_model(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply(
        "POST /api/generate",
        json_body={**LOADED_REPLY, "done": True, "done_reason": "load", "load_duration": 2_500_000},
    )
    result = await client.load("llama3")
    assert fake.last_json() == {"model": "llama3:latest"}
    assert result.model == "llama3:latest"
    assert result.done_reason == "load"
    assert result.load_duration_s == pytest.approx(0.0025)
    assert result.duration_s >= 0


@pytest.mark.parametrize(
    ("keep_alive", "sent"),
    [(-1, -1), ("5m", "5m"), ("-1m", "-1m"), (300.5, 300.5), (math.inf, -1)],
)
async def test_load_sends_keep_alive_when_given(
    client: OllamaClient, fake: FakeOllama, keep_alive: str | float, sent: str | float
) -> None:
    fake.reply(
        "POST /api/generate", json_body={**LOADED_REPLY, "done": True, "done_reason": "load"}
    )
    await client.load("llama3", keep_alive=keep_alive)
    assert fake.last_json() == {"model": "llama3:latest", "keep_alive": sent}


async def test_load_sends_num_ctx_only_when_positive(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply(
        "POST /api/generate", json_body={**LOADED_REPLY, "done": True, "done_reason": "load"}
    )
    await client.load("llama3", num_ctx=8192)
    assert fake.last_json() == {"model": "llama3:latest", "options": {"num_ctx": 8192}}
    await client.load("llama3", num_ctx=0)
    assert fake.last_json() == {"model": "llama3:latest"}


async def test_load_rejects_a_keep_alive_ollama_would_reject_before_sending(
    client: OllamaClient, fake: FakeOllama
) -> None:
    with pytest.raises(KeepAliveError, match="missing unit"):
        await client.load("llama3", keep_alive="300")
    assert fake.requests == []


async def test_load_refuses_keep_alive_zero(client: OllamaClient, fake: FakeOllama) -> None:
    with pytest.raises(ValueError, match="unload"):
        await client.load("llama3", keep_alive="0s")
    assert fake.requests == []


async def test_unload_sends_keep_alive_zero(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply(
        "POST /api/generate", json_body={**LOADED_REPLY, "done": True, "done_reason": "unload"}
    )
    await client.unload("llama3")
    assert fake.last_json() == {"model": "llama3:latest", "keep_alive": 0}


async def test_generate_sends_no_keep_alive_unless_given(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", json_body={**LOADED_REPLY, "response": "hi", "done": True})
    reply = await client.generate("llama3", "Say hi", system="Be brief")
    assert fake.last_json() == {
        "model": "llama3:latest",
        "prompt": "Say hi",
        "system": "Be brief",
        "stream": False,
    }
    assert reply.text == "hi" and reply.done


async def test_generate_passes_options_and_keep_alive(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/generate", json_body={**LOADED_REPLY, "done": True})
    await client.generate("llama3", "x", options={"temperature": 0.1}, keep_alive=-1)
    assert fake.last_json() == {
        "model": "llama3:latest",
        "prompt": "x",
        "stream": False,
        "options": {"temperature": 0.1},
        "keep_alive": -1,
    }


async def test_chat_sends_messages(client: OllamaClient, fake: FakeOllama) -> None:
    fake.reply(
        "POST /api/chat",
        json_body={
            "model": "llama3:latest",
            "created_at": "2024-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "Hello"},
            "done": True,
            "done_reason": "stop",
        },
    )
    messages = [{"role": "user", "content": "Hi"}]
    reply = await client.chat("llama3", messages)
    assert fake.last_json() == {"model": "llama3:latest", "messages": messages, "stream": False}
    assert reply.text == "Hello" and reply.done_reason == "stop"


@pytest.mark.parametrize("bad", ["", "llama3:", "/llama3", "llama 3", "-llama"])
async def test_invalid_names_fail_before_any_request(
    client: OllamaClient, fake: FakeOllama, bad: str
) -> None:
    with pytest.raises(InvalidModelName):
        await client.show(bad)
    with pytest.raises(InvalidModelName):
        await client.load(bad)
    with pytest.raises(InvalidModelName):
        client.generate_stream(bad, "x")
    with pytest.raises(InvalidModelName):
        client.pull(bad)
    assert fake.requests == []


async def test_embedding_models_load_through_embed_with_no_input(
    client: OllamaClient, fake: FakeOllama
) -> None:
    # /api/generate answers an embedding model 400 "does not support generate"; Ollama's
    # own way to preload one is /api/embed without input (v0.13.5 routes.go:681-691).
    fake.reply("POST /api/show", json_body={"capabilities": ["embedding"]})
    fake.reply("POST /api/embed", json_body={"model": "nomic-embed-text", "embeddings": []})
    result = await client.load("nomic-embed-text", keep_alive=-1, num_ctx=2048)
    assert [(r.method, r.url.path) for r in fake.requests] == [
        ("POST", "/api/show"),
        ("POST", "/api/embed"),
    ]
    assert fake.last_json() == {
        "model": "nomic-embed-text:latest",
        "keep_alive": -1,
        "options": {"num_ctx": 2048},
    }
    assert (result.model, result.done_reason, result.load_duration_s) == (
        "nomic-embed-text:latest",
        "load",
        None,
    )


@pytest.mark.parametrize(
    "show",
    [
        {"capabilities": ["completion", "embedding"]},  # both: generate loads it
        {"capabilities": ["completion", "tools"]},
        {"details": {}},  # a server from before `capabilities`: as it always did
    ],
)
async def test_other_models_load_through_generate(
    client: OllamaClient, fake: FakeOllama, show: dict[str, Any]
) -> None:
    fake.reply("POST /api/show", json_body=show)
    fake.reply("POST /api/generate", json_body={**LOADED_REPLY, "done_reason": "load"})
    await client.load("llama3")
    assert fake.last.url.path == "/api/generate"


async def test_embed_load_that_is_not_an_embed_answer_is_unexpected(
    client: OllamaClient, fake: FakeOllama
) -> None:
    fake.reply("POST /api/show", json_body={"capabilities": ["embedding"]})
    fake.reply("POST /api/embed", json_body={"model": "m"})
    with pytest.raises(UnexpectedResponse, match="no 'embeddings' list"):
        await client.load("all-minilm")
