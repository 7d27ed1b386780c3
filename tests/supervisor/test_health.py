"""Health checks: cached within the interval, forced on demand, one probe in flight."""

from __future__ import annotations

import anyio

from n3d.api.methods import health_result
from n3d.errors import OllamaError
from n3d.metrics import REGISTRY
from n3d.supervisor.health import HealthChecker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedProbe:
    """A probe that answers only when the test opens the gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = anyio.Event()
        self.fail: OllamaError | None = None

    async def __call__(self, timeout_s: float) -> float:
        self.calls += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return 0.004


async def test_hundred_concurrent_callers_share_one_probe() -> None:
    probe = GatedProbe()
    checker = HealthChecker(probe, interval_s=30, timeout_s=5)
    reports = []

    async def ask() -> None:
        reports.append(await checker.check())

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        probe.gate.set()
    assert probe.calls == 1 and checker.probes == 1
    assert len(reports) == 100 and all(r.ok and not r.cached for r in reports)
    assert REGISTRY.snapshot()["histograms"]["ollama.health.check_duration"]["count"] == 1


async def test_within_the_interval_the_cached_result_comes_with_its_age() -> None:
    probe, clock = GatedProbe(), FakeClock()
    probe.gate.set()
    checker = HealthChecker(probe, interval_s=30, timeout_s=5, clock=clock)
    first = await checker.check()
    clock.now += 12.5
    second = await checker.check()
    assert not first.cached and second.cached and second.age_s == 12.5
    shown = health_result(second, None)
    assert shown["age_s"] == 12.5 and shown["latency_ms"] == 4.0
    clock.now += 17.5  # the interval is over: probe again
    third = await checker.check()
    assert not third.cached and probe.calls == 2


async def test_force_bypasses_the_cache() -> None:
    probe = GatedProbe()
    probe.gate.set()
    checker = HealthChecker(probe, interval_s=30, timeout_s=5)
    await checker.check()
    report = await checker.check(force=True)
    assert not report.cached and probe.calls == 2


async def test_a_failed_probe_is_reported_with_its_kind() -> None:
    probe = GatedProbe()
    probe.fail = OllamaError.unreachable("http://127.0.0.1:1")
    probe.gate.set()
    report = await HealthChecker(probe, interval_s=30, timeout_s=5).check()
    data = health_result(report, None)
    assert not report.ok and data["error_kind"] == "ollama_unreachable"
    assert data["latency_ms"] is None and "Could not reach" in data["error"]


async def test_a_probe_that_never_answers_times_out() -> None:
    probe = GatedProbe()  # gate never opens
    report = await HealthChecker(probe, interval_s=30, timeout_s=0.01).check()
    assert not report.ok and report.result.error_kind == "timeout"


async def test_when_the_prober_is_cancelled_a_waiter_probes_instead() -> None:
    probe = GatedProbe()
    checker = HealthChecker(probe, interval_s=30, timeout_s=5)
    results = []
    prober = anyio.CancelScope()

    async def first() -> None:
        with prober:
            await checker.check()

    async def waiter() -> None:
        results.append(await checker.check())

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()  # first is probing
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()  # waiter joined the flight
        assert probe.calls == 1
        prober.cancel()
        await anyio.wait_all_tasks_blocked()  # waiter took over with its own probe
        assert probe.calls == 2
        probe.gate.set()
    assert len(results) == 1 and results[0].ok
