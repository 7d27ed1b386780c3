"""Routing between real simulators under one n3d, proved by each simulator's own request log.

- A model pinned to server ``b`` (``models = [...]``): every request for it,
  streamed or not, generate or chat, one at a time or eight at once, reaches
  ``b``, never ``a`` (listed first, so the default for anything else).
- A model loaded on two servers (pinned, so warmed, on both): 32 clients at once
  are spread by requests in flight; the split is printed, and the third server,
  which does not have the model loaded, gets none of them.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest

from n3d.testing import wait_until
from n3d.testing.servers import FleetProcess
from n3d.testing.simulator import free_port

from .conftest import MakeFleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _proxied(fleet: MakeFleet, names: list[str], **kw: Any) -> tuple[FleetProcess, str]:
    listen = f"127.0.0.1:{free_port()}"
    proxy = {"listen": listen, "hold_timeout": 30, "drain_timeout": 10}
    d = fleet(names, config={"proxy": proxy}, **kw)
    for name in names:
        wait_until(functools.partial(_warm, d, name), 30, f"{name} warm")
    return d, f"http://{listen}"


def _warm(d: FleetProcess, name: str) -> bool:
    rows = d.call("warm.list", {"server": name}, timeout=5)["models"]
    return all(row.get("loaded") for row in rows)


def _tagged(d: FleetProcess, name: str, tag: str) -> list[dict[str, Any]]:
    """Inference requests server ``name`` answered whose prompt or message begins ``tag``."""
    found = []
    for path in ("/api/generate", "/api/chat"):
        for entry in d.requests_of(name, path):
            body = entry.get("body")
            if not isinstance(body, dict):
                continue
            text = body.get("prompt") or (body.get("messages") or [{}])[-1].get("content", "")
            if str(text).startswith(tag):
                found.append(entry)
    return found


def _logged(d: FleetProcess, tag: str, count: int) -> dict[str, int]:
    """Requests tagged ``tag`` per server, once ``count`` are logged (a simulator logs a
    request just after its answer is sent: the client may have the answer first)."""

    def counted() -> dict[str, int] | None:
        found = {name: len(_tagged(d, name, tag)) for name in d.names}
        return found if sum(found.values()) >= count else None

    found: dict[str, int] = wait_until(counted, 10, f"{count} requests logged")
    return found


async def test_requests_for_a_pinned_model_reach_its_server(fleet: MakeFleet) -> None:
    d, url = await anyio.to_thread.run_sync(
        lambda: _proxied(fleet, ["a", "b"], pinned={"b": ["tinyllama"]}, models=["tinyllama"])
    )

    async def one(client: httpx.AsyncClient, i: int) -> None:
        stream = i % 2 == 0
        if i % 3 == 0:
            path = "/api/chat"
            body: dict[str, Any] = {"messages": [{"role": "user", "content": f"pin {i}"}]}
        else:
            path, body = "/api/generate", {"prompt": f"pin {i}"}
        body.update(model="tinyllama", stream=stream, options={"num_predict": 3})
        reply = await client.post(path, json=body, timeout=30)
        assert reply.status_code == 200, reply.text

    async with httpx.AsyncClient(base_url=url) as client:
        for i in range(8):  # one at a time
            await one(client, i)
        async with anyio.create_task_group() as tg:  # eight at once
            for i in range(8, 16):
                tg.start_soon(one, client, i)
    _logged(d, "pin ", 16)
    on_b, on_a = _tagged(d, "b", "pin "), _tagged(d, "a", "pin ")
    print(f"\npinned to b: {len(on_b)} on b, {len(on_a)} on a")
    assert len(on_b) == 16 and on_a == []
    assert all(entry["status"] == 200 for entry in on_b)
    events = [e for e in d.events("request") if e.get("model", "").startswith("tinyllama")]
    assert events and {e["server"] for e in events} == {"b"}


async def test_a_model_loaded_on_two_servers_spreads_32_clients_by_in_flight(
    fleet: MakeFleet,
) -> None:
    d, url = await anyio.to_thread.run_sync(
        lambda: _proxied(
            fleet,
            ["a", "b", "c"],
            pinned={"a": ["llama3.2"], "b": ["llama3.2"]},
            models=["llama3.2"],
            OLLAMA_SIM_TOKEN_SECONDS="0.02",
            OLLAMA_NUM_PARALLEL="32",
        )
    )
    clients, rounds = 32, 3
    limits = httpx.Limits(max_connections=clients)

    async def client(http: httpx.AsyncClient, n: int) -> None:
        for i in range(rounds):
            body = {"model": "llama3.2", "prompt": f"split {n}.{i}"}
            async with http.stream("POST", "/api/generate", json=body, timeout=60) as reply:
                assert reply.status_code == 200
                async for _ in reply.aiter_lines():
                    pass

    async with (
        httpx.AsyncClient(base_url=url, limits=limits) as http,
        anyio.create_task_group() as tg,
    ):
        for n in range(clients):
            tg.start_soon(client, http, n)
    total = clients * rounds
    split = _logged(d, "split ", total)
    events = Counter(e["server"] for e in d.events("request") if e.get("model") == "llama3.2")
    print(f"\n32 clients x {rounds}, llama3.2 loaded on a and b: split {split}; events {events}")
    assert sum(split.values()) == total and split["c"] == 0, split
    assert min(split["a"], split["b"]) >= total // 4, split  # spread, not all on the first


async def test_a_reload_that_pins_a_model_on_b_routes_it_there_at_once(fleet: MakeFleet) -> None:
    """Before the reload, a model pinned nowhere and loaded nowhere goes to the least busy
    server, ``a`` (ties go to the first); once a reload pins it on ``b``, its next request
    goes to ``b`` while ``b`` is still loading it for its warm list (3 s, so nothing is
    loaded yet: the pin alone decides)."""
    proxy = {"listen": f"127.0.0.1:{free_port()}", "hold_timeout": 30, "drain_timeout": 10}
    d = await anyio.to_thread.run_sync(
        lambda: fleet(
            ["a", "b"],
            config={"proxy": proxy},
            models=["tinyllama"],
            server_env={"b": {"OLLAMA_SIM_LOAD_SECONDS": "3"}},
        )
    )
    d.pinned["b"] = ["tinyllama"]
    d.write_config({"proxy": proxy})
    reloaded = await anyio.to_thread.run_sync(lambda: d.call("config.reload", timeout=10))
    assert reloaded["reloaded"] is True and "servers" not in reloaded["pending_restart"]
    async with httpx.AsyncClient(base_url=f"http://{proxy['listen']}") as client:
        body = {"model": "tinyllama", "prompt": "moved 0", "stream": False}
        reply = await client.post("/api/generate", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
    split = await anyio.to_thread.run_sync(lambda: _logged(d, "moved ", 1))
    assert split == {"a": 0, "b": 1}, split
