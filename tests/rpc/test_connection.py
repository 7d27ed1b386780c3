"""How one connection runs its requests: a worker for the common case, tasks for the rest.

The first request on an idle connection runs in the connection's worker task under
a shared cancel scope; a request arriving while the worker is busy gets a task of
its own. Whichever way a request runs, it is cancellable, concurrent with the
others, and bounded by ``max_inflight``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal

from n3d.rpc import Context, MethodTable, Param, RpcServer

from .support import Raw, Running

CANCELLED = -32800


def _req(method: str, params: Any, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def _cancel(request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request_id}}


def test_a_request_on_an_idle_connection_is_cancelled_and_the_next_one_runs(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send(_req("sleep", {"seconds": 30, "tag": "first"}, "a"))
    running.record.wait_started("first")  # running in the worker by now
    client.send(_cancel("a"))
    reply = client.recv()
    assert reply["id"] == "a" and reply["error"]["code"] == CANCELLED
    assert running.record.cancelled == ["first"]
    # The worker's scope was used up by the cancel; the next request gets a fresh one.
    assert client.call(_req("sleep", {"seconds": 0.01}, "b")) == {
        "jsonrpc": "2.0",
        "result": {"slept": 0.01},
        "id": "b",
    }


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_requests_on_one_connection_run_concurrently_when_one_is_slow(
    raw: Callable[..., Raw], framing: str
) -> None:
    client = raw(framing)
    client.send(_req("sleep", {"seconds": 30}, "slow"))
    client.send(_req("echo", {"value": 1}, "fast"))
    assert client.recv() == {"jsonrpc": "2.0", "result": {"value": 1}, "id": "fast"}
    assert client.call(_req("echo", {"value": 2}, "fast2"))["result"] == {"value": 2}
    client.send(_cancel("slow"))
    assert client.recv()["error"]["code"] == CANCELLED


def test_a_request_behind_a_busy_worker_is_cancelled_too(
    raw: Callable[..., Raw], running: Running
) -> None:
    client = raw()
    client.send(_req("sleep", {"seconds": 30, "tag": "worker"}, 1))
    client.send(_req("sleep", {"seconds": 30, "tag": "task"}, 2))
    running.record.wait_started("worker")
    running.record.wait_started("task")
    client.send(_cancel(2))
    assert client.recv() == {
        "jsonrpc": "2.0",
        "error": {"code": CANCELLED, "message": "Request cancelled"},
        "id": 2,
    }
    client.send(_cancel(1))
    assert client.recv()["id"] == 1
    assert running.record.cancelled == ["task", "worker"]


def test_pipelined_requests_are_all_answered_past_the_in_flight_bound(
    raw: Callable[..., Raw],
) -> None:
    client = raw()
    client.send_raw(b"".join(Raw.ndjson(_req("echo", {"value": i}, i)) for i in range(500)))
    replies = [client.recv() for _ in range(500)]
    assert sorted(r["id"] for r in replies) == list(range(500))
    assert all(r["result"] == {"value": r["id"]} for r in replies)


def test_the_in_flight_bound_holds_later_requests_until_a_slot_frees(
    dial: Callable[..., Raw], start_server: Callable[..., Running]
) -> None:
    running = start_server(max_inflight=2)
    client = dial(running)
    started = time.monotonic()
    client.send_raw(
        Raw.ndjson(_req("sleep", {"seconds": 0.3}, "s1"))
        + Raw.ndjson(_req("sleep", {"seconds": 0.3}, "s2"))
        + Raw.ndjson(_req("echo", {"value": "late"}, "e"))
    )
    replies = [client.recv() for _ in range(3)]
    assert [r["id"] for r in replies][2] == "e"  # read only once a sleeper finished
    assert time.monotonic() - started >= 0.25


# -- a handler that ignores its cancellation ------------------------------------------


@pytest.fixture
def stubborn_started() -> threading.Event:
    """Set once the `stubborn` handler runs: a cancel sent after that reaches it."""
    return threading.Event()


@pytest.fixture
def stubborn_server(short_dir: Path, stubborn_started: threading.Event) -> Iterator[Path]:
    table = MethodTable()

    @table.method("stubborn")
    async def stubborn(ctx: Context, p: dict[str, Any]) -> Any:
        stubborn_started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            return "finished anyway"  # swallows the cancellation: its answer stands
        return "slept"

    @table.method("nap", Param("seconds", float, True))
    async def nap(ctx: Context, p: dict[str, Any]) -> Any:
        await anyio.sleep(p["seconds"])
        return "rested"

    path = short_dir / "n3d.sock"
    with start_blocking_portal("asyncio") as portal:
        future, _ = portal.start_task(RpcServer(path, table).run)
        yield path
        future.cancel()


def test_a_handler_that_swallows_its_cancellation_does_not_cancel_the_next_request(
    stubborn_server: Path, stubborn_started: threading.Event
) -> None:
    client = Raw(stubborn_server)
    try:
        client.send(_req("stubborn", {}, 1))
        assert stubborn_started.wait(10)
        client.send(_cancel(1))
        assert client.recv() == {"jsonrpc": "2.0", "result": "finished anyway", "id": 1}
        assert client.call(_req("nap", {"seconds": 0.01}, 2))["result"] == "rested"
        client.send(_req("nap", {"seconds": 0.01}, 3))
        client.send(_req("nap", {"seconds": 0.01}, 4))
        assert sorted(client.recv()["result"] for _ in range(2)) == ["rested", "rested"]
    finally:
        client.close()
