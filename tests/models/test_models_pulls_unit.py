"""Pull jobs in detail, with a fake `/api/pull` stream the test feeds line by line."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from n3d.api.models import pull_result
from n3d.errors import OllamaError, OllamaTimeout, OllamaUnreachable, PullFailed
from n3d.metrics import REGISTRY
from n3d.models import Pulls
from n3d.models.events import SafePublisher
from n3d.ollama.client import OllamaClient

from .models_support import Events, wait_until

BASE = "http://ollama.test:11434"


def line(status: str, **fields: Any) -> bytes:
    return json.dumps({"status": status, **fields}).encode() + b"\n"


class FakePull:
    """`/api/pull` whose body is whatever the test sends, until it closes the stream."""

    def __init__(self) -> None:
        self.send, self.recv = anyio.create_memory_object_stream[bytes | Exception](1000)
        self.clients: list[OllamaClient] = []
        self.requests = 0
        self.closed = anyio.Event()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/pull"
        self.requests += 1
        return httpx.Response(200, content=self._body())

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            async for item in self.recv:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed.set()


@pytest.fixture
async def fake() -> AsyncIterator[FakePull]:
    made = FakePull()
    yield made
    for client in made.clients:
        await client.aclose()
    made.send.close()
    made.recv.close()


async def start(
    tg: anyio.abc.TaskGroup, fake: FakePull, events: Events, *, timeout_s: float = 30
) -> Pulls:
    client = OllamaClient(BASE, transport=httpx.MockTransport(fake.handle))
    fake.clients.append(client)
    pulls = Pulls(client, timeout_s=timeout_s, publish=SafePublisher(events), interval_s=0.2)
    await tg.start(pulls.run)
    return pulls


async def test_progress_is_coalesced_per_waiter_but_keeps_first_and_last(fake: FakePull) -> None:
    events, seen, at = Events(), [], []

    async def progress(value: dict[str, Any]) -> None:
        seen.append(value)
        at.append(time.monotonic())

    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, events)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as waiters:
                waiters.start_soon(pulls.pull, "llama3", progress)
                await wait_until(lambda: pulls.active() != [])
                await fake.send.send(line("pulling manifest"))
                for done in range(0, 101, 1):
                    await fake.send.send(
                        line("pulling abc", digest="sha256:abc", total=100, completed=done)
                    )
                    await anyio.sleep(0.002)
                await fake.send.send(line("success"))
                fake.send.close()
        tg.cancel_scope.cancel()
    assert seen[0]["kind"] == "begin" and seen[0]["status"] == "pulling manifest"
    assert seen[-1]["kind"] == "end" and seen[-1]["status"] == "success"
    assert len(seen) >= 3  # ~0.3 s of lines at one update per 0.2 s
    # Coalesced: begin and each report at least the interval (0.2 s) after the one before,
    # however long the lines took to come; only the end follows at once.
    gaps = [b - a for a, b in itertools.pairwise(at[:-1])]
    assert all(gap >= 0.2 - 0.01 for gap in gaps), gaps
    percents = [v["percentage"] for v in seen if "percentage" in v]
    assert percents == sorted(percents) and percents[-1] == 100
    assert REGISTRY.snapshot()["histograms"]["ollama.model.pull_duration"]["count"] == 1
    assert events.of("pull")[-1]["status"] == "success"


async def test_a_stalled_pull_fails_with_the_seed_timeout(fake: FakePull) -> None:
    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, Events(), timeout_s=0.3)
        await fake.send.send(line("pulling manifest"))
        with anyio.fail_after(10), pytest.raises(OllamaTimeout) as caught:
            await pulls.pull("llama3")
        tg.cancel_scope.cancel()
    assert "Timeout while pulling model 'llama3:latest' (no progress for 0.3s)" in str(caught.value)
    assert "Try increasing pull_timeout" in str(caught.value)


async def test_a_server_that_dies_mid_pull_fails_it_as_unreachable(fake: FakePull) -> None:
    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, Events())
        await fake.send.send(line("pulling manifest"))
        await fake.send.send(httpx.ReadError("connection reset by peer"))
        with anyio.fail_after(10), pytest.raises(OllamaUnreachable):
            await pulls.pull("llama3")
        tg.cancel_scope.cancel()


async def test_fail_all_ends_every_waiter_with_the_given_error(fake: FakePull) -> None:
    errors: list[OllamaError] = []

    async def waiter(pulls: Pulls) -> None:
        try:
            await pulls.pull("llama3")
        except OllamaUnreachable as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, Events())
        with anyio.fail_after(10):
            async with anyio.create_task_group() as waiters:
                waiters.start_soon(waiter, pulls)
                waiters.start_soon(waiter, pulls)
                await wait_until(lambda: pulls.active() and pulls.active()[0]["waiters"] == 2)
                pulls.fail_all(OllamaError.unreachable(BASE))
        tg.cancel_scope.cancel()
    assert len(errors) == 2 and fake.requests == 1


async def test_the_job_ends_when_its_last_waiter_goes_away(fake: FakePull) -> None:
    events = Events()
    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, events)
        with capture_logs() as logs, anyio.fail_after(10):
            async with anyio.create_task_group() as waiters:
                waiters.start_soon(pulls.pull, "llama3")
                waiters.start_soon(pulls.pull, "llama3")
                await wait_until(lambda: pulls.active() and pulls.active()[0]["waiters"] == 2)
                await fake.send.send(line("pulling manifest"))
                waiters.cancel_scope.cancel()  # both clients cancel their requests
            await fake.closed.wait()  # n3d closed its connection to Ollama
            await wait_until(lambda: bool(events.of("pull", status="cancelled")))
        assert pulls.active() == []
        tg.cancel_scope.cancel()
    assert [e for e in logs if e["event"] == "pull.abandoned"]
    assert "ollama.model.pull_duration" not in REGISTRY.snapshot()["histograms"]


async def test_one_waiter_leaving_does_not_stop_the_others(fake: FakePull) -> None:
    result: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, Events())
        with anyio.fail_after(10):
            async with anyio.create_task_group() as staying:

                async def stay() -> None:
                    result.append(pull_result(await pulls.pull("llama3")))

                staying.start_soon(stay)
                with anyio.move_on_after(0.1):
                    await pulls.pull("llama3")  # this caller gives up
                assert pulls.active()[0]["waiters"] == 1
                await fake.send.send(line("success"))
                fake.send.close()
        tg.cancel_scope.cancel()
    assert result[0]["status"] == "success" and fake.requests == 1


async def test_a_stream_without_success_is_a_failed_pull(fake: FakePull) -> None:
    async with anyio.create_task_group() as tg:
        pulls = await start(tg, fake, Events())
        await fake.send.send(line("verifying sha256 digest"))
        fake.send.close()
        with anyio.fail_after(10), pytest.raises(PullFailed) as caught:
            await pulls.pull("llama3")
        tg.cancel_scope.cancel()
    assert "last status: 'verifying sha256 digest'" in str(caught.value)
