"""Several servers behind one proxy: routing by model, merged listings, holds and failures.

Each server is an in-process stand-in Ollama (conftest.FakeOllama) that logs which
requests it answered; its state is moved by hand (conftest.Server). The routing
rules are DESIGN.md's "Several servers on one host" (docs/proxy.md has them whole):
loaded and least in flight, else the model's home, else least in flight.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from n3d.metrics import REGISTRY
from n3d.state import ServerState

from .conftest import Fleet

S = ServerState
NAMES = ["a", "b", "c", "d"]
Make = Callable[..., Any]


async def _generate(client: httpx.AsyncClient, model: str) -> httpx.Response:
    return await client.post("/api/generate", json={"model": model, "prompt": "hi"})


def _tag(name: str, modified_at: str, digest: str = "d") -> dict[str, Any]:
    return {"name": name, "model": name, "modified_at": modified_at, "size": 1, "digest": digest,
            "details": {"format": "gguf"}}  # fmt: skip


def _ps(name: str, expires_at: str, size_vram: int = 1) -> dict[str, Any]:
    return {"name": name, "model": name, "size": 1, "digest": "d", "details": {},
            "expires_at": expires_at, "size_vram": size_vram, "context_length": 4096}  # fmt: skip


@pytest.mark.parametrize("count", [2, 4])
async def test_a_pinned_model_reaches_its_server(fleet: Make, count: int) -> None:
    names = NAMES[:count]
    home = names[-1]
    f: Fleet = await fleet(names, pinned={home: {"llama3.1:70b"}})
    async with f.client() as client:
        for spelling in ("llama3.1:70b", "Llama3.1:70B", "library/llama3.1:70b"):
            assert (await _generate(client, spelling)).status_code == 200
        other = await _generate(client, "qwen3")  # pinned nowhere, loaded nowhere
        version = await client.get("/api/version")  # no model: the first healthy server
    assert other.status_code == 200 == version.status_code
    assert len(f.ollamas[home].served()) == 3
    assert f.ollamas["a"].served() == ["qwen3"]  # least in flight (none), first on a tie
    assert [name for name, o in f.ollamas.items() if o.hits] == ["a", home]
    assert [e["server"] for e in f.requests()] == [home, home, home, "a", "a"]
    assert {server for server, _ in f.outputs} == {home, "a"}  # liveness evidence per server
    series = {
        (s["tags"]["server"], s["tags"]["model"])
        for s in REGISTRY.snapshot()["series"]
        if s["name"] == "ollama.request.duration"
    }
    assert (home, "Llama3.1:70B") in series and ("a", "qwen3") in series


async def test_a_model_loaded_on_two_servers_spreads_by_requests_in_flight(fleet: Make) -> None:
    f: Fleet = await fleet(NAMES)
    f.loaded["b"] = f.loaded["c"] = frozenset({"llama3.2:latest"})
    # 32 clients at once, every answer held: each goes to the server with fewer in flight.
    release = anyio.Event()
    f.ollamas["b"].release = f.ollamas["c"].release = release
    async with f.client() as client, anyio.create_task_group() as tg:
        for _ in range(32):
            tg.start_soon(_generate, client, "llama3.2")
        with anyio.fail_after(5):
            await f.wait_hits(32)
        held = Counter(r.server for r in f.proxy.requests())
        release.set()
    assert held == {"b": 16, "c": 16}
    # 32 clients back to back, c four times faster than b: c takes more, b still some.
    for name in ("b", "c"):
        f.ollamas[name].release = None
        f.ollamas[name].hits.clear()
    f.ollamas["b"].delay_s, f.ollamas["c"].delay_s = 0.04, 0.01

    async def client_loop(client: httpx.AsyncClient) -> None:
        for _ in range(6):
            assert (await _generate(client, "llama3.2")).status_code == 200

    async with f.client() as client, anyio.create_task_group() as tg:
        for _ in range(32):
            tg.start_soon(client_loop, client)
    split = {name: len(f.ollamas[name].hits) for name in ("b", "c")}
    print(f"32 clients x 6 generates, b 40 ms, c 10 ms per answer: {split}")
    assert sum(split.values()) == 192 and split["c"] > split["b"] > 0
    assert not f.ollamas["a"].hits and not f.ollamas["d"].hits  # not loaded there


async def test_tags_ps_and_v1_models_are_merged_in_ollamas_shapes(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"])
    a, b = f.ollamas["a"], f.ollamas["b"]
    shared = _tag("llama3.2:latest", "2026-12-01T10:00:00.5+01:00")
    a.installed = [_tag("qwen3:8b", "2026-12-03T10:00:00Z"), shared]
    b.installed = [_tag("phi4:latest", "2026-12-02T10:00:00Z"), shared]
    a.loaded = [_ps("llama3.2:latest", "2026-12-07T10:00:00Z")]
    b.loaded = [
        _ps("llama3.2:latest", "2026-12-07T11:00:00Z"),
        _ps("phi4:latest", "2318-01-01T00:00:00Z"),
    ]
    async with f.client() as client:
        tags = await client.get("/api/tags")
        ps = await client.get("/api/ps")
        models = await client.get("/v1/models")
        # b listed phi4 as loaded: a request for it goes there, not to the least busy (a).
        await _generate(client, "phi4")
    assert tags.headers["content-type"] == "application/json; charset=utf-8"
    assert [m["name"] for m in tags.json()["models"]] == [
        "qwen3:8b",
        "phi4:latest",
        "llama3.2:latest",
    ]
    assert tags.json()["models"][2] == shared  # each model once, as the server wrote it
    rows = [(m["name"], m["expires_at"][:4]) for m in ps.json()["models"]]
    assert rows == [
        ("phi4:latest", "2318"),
        ("llama3.2:latest", "2026"),
        ("llama3.2:latest", "2026"),
    ]
    assert ps.json()["models"][1]["expires_at"] == "2026-12-07T11:00:00Z"  # latest first
    assert set(ps.json()["models"][0]) == set(_ps("x", "y"))  # Ollama's fields, nothing added
    body = models.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["qwen3:8b", "phi4:latest", "llama3.2:latest"]
    assert b.served() == ["phi4"]
    merged = [e for e in f.requests() if e["route"] in ("/api/tags", "/api/ps", "/v1/models")]
    assert [(e["server"], e["status"], e["chunks"]) for e in merged] == [("*", 200, 1)] * 3


async def test_with_one_healthy_server_its_listing_is_forwarded_as_it_is(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"])
    f.ollamas["b"].installed = [_tag("phi4:latest", "2026-12-02T10:00:00Z")]
    f.servers["a"].set(S.FATAL, "failed to start")
    async with f.client() as client:
        tags = await client.get("/api/tags")
        f.servers["a"].set(S.RUNNING)
        f.servers["b"].set(S.STOPPED, "server.stop")
        none = await client.get("/v1/models")  # a alone, no model at all: Ollama's null
    assert [m["name"] for m in tags.json()["models"]] == ["phi4:latest"]
    assert none.json() == {"object": "list", "data": None}
    assert [e["server"] for e in f.requests()] == ["b", "a"]


async def test_held_while_the_only_server_of_a_model_restarts(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"], pinned={"b": {"llama3.1:70b"}})
    f.servers["b"].set(S.STOPPING, "server.restart")
    async with f.client() as client, anyio.create_task_group() as tg:
        replies: list[httpx.Response] = []

        async def ask() -> None:
            replies.append(await _generate(client, "llama3.1:70b"))

        tg.start_soon(ask)
        await anyio.sleep(0.2)
        (row,) = f.proxy.requests()
        assert (row.state, row.server) == ("held", "b")  # requests.list: what it waits for
        other = await _generate(client, "qwen3")  # meanwhile a serves the rest
        assert other.status_code == 200 and not replies
        f.servers["b"].restarted()
    assert replies[0].status_code == 200
    assert f.ollamas["b"].served() == ["llama3.1:70b"] and f.ollamas["a"].served() == ["qwen3"]
    held = [e for e in f.requests() if e["model"] == "llama3.1:70b"]
    assert held[0]["server"] == "b" and held[0]["held_s"] >= 0.15


async def test_a_home_that_does_not_come_back_is_passed_over(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"], pinned={"b": {"llama3.1:70b"}})
    f.options["hold_timeout_s"] = 0.2
    async with f.client() as client:
        f.servers["b"].set(S.BACKOFF, "exit code 1")
        late = await _generate(client, "llama3.1:70b")  # held 0.2 s, then the healthy one
        f.servers["b"].set(S.FATAL, "failed to start 5 times in 300s")
        fatal = await _generate(client, "llama3.1:70b")  # nobody brings b back: a at once
        f.servers["a"].set(S.STOPPED, "server.stop")
        refused = await _generate(client, "llama3.1:70b")
    assert late.status_code == 200 == fatal.status_code
    assert [e["server"] for e in f.requests()] == ["a", "a", "b"]
    assert f.requests()[0]["held_s"] >= 0.2 and f.requests()[1]["held_s"] == 0.0
    assert refused.status_code == 503  # every server refuses: the home's refusal
    assert "is fatal: failed to start 5 times" in refused.json()["error"]


async def test_one_server_down_the_others_serve(fleet: Make) -> None:
    f: Fleet = await fleet(NAMES)
    f.servers["a"].set(S.FATAL, "failed to start")
    f.servers["b"].set(S.BACKOFF, "exit code 1")
    f.ollamas["c"].installed = [_tag("qwen3:8b", "2026-12-03T10:00:00Z")]
    f.ollamas["d"].installed = [_tag("phi4:latest", "2026-12-02T10:00:00Z")]
    release = anyio.Event()
    f.ollamas["c"].release = f.ollamas["d"].release = release
    async with f.client() as client, anyio.create_task_group() as tg:
        assert (await client.get("/api/version")).status_code == 200  # first healthy: c
        tags = await client.get("/api/tags")  # c and d only; teaches what each has
        for model in ("qwen3:8b", "phi4", "llama3.2", "llama3.2"):
            tg.start_soon(_generate, client, model)
            await anyio.sleep(0.05)
        release.set()
    assert [m["name"] for m in tags.json()["models"]] == ["qwen3:8b", "phi4:latest"]
    assert f.ollamas["c"].hits[0] == ("/api/version", "")
    # each model where it is installed; the unknown one spread by requests in flight
    assert f.ollamas["c"].served() == ["qwen3:8b", "llama3.2"]
    assert f.ollamas["d"].served() == ["phi4", "llama3.2"]
    assert not f.ollamas["a"].hits and not f.ollamas["b"].hits


async def test_a_retry_goes_where_the_model_is_loaded_and_healthy(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"])
    f.loaded["a"] = f.loaded["b"] = frozenset({"llama3.2:latest"})
    f.ollamas["a"].drop_next = 1  # a's serve dies before its first byte
    async with f.client() as client:
        reply = await _generate(client, "llama3.2")
    assert reply.status_code == 200 and f.ollamas["b"].served() == ["llama3.2"]
    (event,) = f.requests()
    assert (event["server"], event["retried"], event["held_s"]) == ("b", True, 0.0)


async def test_a_retry_for_a_pinned_model_waits_for_its_home(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"], pinned={"a": {"llama3.1:70b"}})
    f.ollamas["a"].drop_next = 1
    async with f.client() as client, anyio.create_task_group() as tg:
        replies: list[httpx.Response] = []

        async def ask() -> None:
            replies.append(await _generate(client, "llama3.1:70b"))

        tg.start_soon(ask)
        await anyio.sleep(0.2)
        assert not replies  # held until another serve answers at a
        f.servers["a"].restarted()
    assert replies[0].status_code == 200
    assert f.ollamas["a"].served() == ["llama3.1:70b"] and not f.ollamas["b"].hits
    assert f.requests()[0]["retried"] is True


async def test_draining_one_server_holds_its_models_and_not_the_others(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"], pinned={"a": {"llama3.1:70b"}})
    async with f.client() as client, anyio.create_task_group() as tg:
        await f.proxy.drain(1.0, server="a")  # nothing in flight: returns at once
        replies: list[httpx.Response] = []

        async def ask() -> None:
            replies.append(await _generate(client, "llama3.1:70b"))

        tg.start_soon(ask)
        other = await _generate(client, "qwen3")
        version = await client.get("/api/version")
        assert not replies and other.status_code == 200 == version.status_code
        f.servers["a"].set(S.STOPPING, "server.restart")  # the planned restart begins
        await anyio.sleep(0.1)
        assert not replies
        f.servers["a"].restarted()
    assert replies[0].status_code == 200
    assert f.ollamas["a"].served() == ["llama3.1:70b"]
    assert [route for route, _ in f.ollamas["b"].hits] == ["/api/generate", "/api/version"]


async def test_a_stream_through_the_fleet_is_forwarded_unchanged(fleet: Make) -> None:
    f: Fleet = await fleet(["a", "b"], pinned={"b": {"llama3.2"}})
    async with f.client() as client:
        reply = await client.post("/api/chat", json={"model": "llama3.2", "messages": []})
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert lines[0]["response"] == "b" and lines[-1]["done"] is True
    (event,) = f.requests()
    assert (event["server"], event["chunks"], event["tokens"]["completion"]) == ("b", 2, 1)
