"""Helpers for the model tests: run Models, poll for a condition, record events, move time."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from n3d.config import Settings
from n3d.models import Models
from n3d.testing.simulator import SimulatorProcess

StartSim = Callable[..., SimulatorProcess]
MakeSettings = Callable[..., Settings]


def count_requests(sim: SimulatorProcess, method: str, path: str) -> int:
    return sum(1 for r in sim.request_log() if r["method"] == method and r["path"] == path)


@asynccontextmanager
async def running(models: Models) -> AsyncIterator[Models]:
    async with anyio.create_task_group() as tg:
        await tg.start(models.run)
        try:
            yield models
        finally:
            tg.cancel_scope.cancel()


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within_s: float = 10.0, what: str = ""
) -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s}s waiting for {what or predicate}")
        await anyio.sleep(0.02)


class Events:
    """A `publish` that records every event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, topic: str, payload: Mapping[str, Any]) -> None:
        self.seen.append((topic, dict(payload)))

    def of(self, topic: str, **match: Any) -> list[dict[str, Any]]:
        return [
            p for t, p in self.seen if t == topic and all(p.get(k) == v for k, v in match.items())
        ]


class ManualClock:
    """Monotonic seconds that move only when the test says so, and the matching wall time.

    Pass ``clock=c, wall=c.wall`` to ``Models``: the keeper's backoff and refreshes then
    follow ``advance()``, not the machine's clock, so a loaded machine cannot make them
    early or late.
    """

    EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.EPOCH + timedelta(seconds=self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds
