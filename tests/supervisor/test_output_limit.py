"""A chatty child is drained in full, but only a bounded rate of its lines is logged."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import anyio
import pytest

from n3d.metrics import REGISTRY
from n3d.supervisor.output import BURST, RATE_PER_S, OutputLimiter
from n3d.supervisor.spawn import open_ollama

from .helpers import JsonLogs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    clock = Clock()
    limiter = OutputLimiter(10.0, 5, summary_every_s=60.0, clock=clock)
    assert limiter.take(7) == 5  # the first five of a read of seven
    clock.now += 0.25  # 2.5 tokens
    assert limiter.take(3) == 2
    clock.now += 3600  # a quiet hour refills the burst, never more
    assert limiter.take(10) == 5
    assert limiter.suppressed == 8


def test_dropped_lines_are_summed_up_every_so_often_and_at_the_end() -> None:
    clock = Clock()
    limiter = OutputLimiter(1.0, 1, summary_every_s=10.0, clock=clock)
    assert limiter.take(3) == 1
    assert limiter.summary_due() == 0  # a flood is summed up every 10 s, not per read
    clock.now += 10.0
    assert limiter.summary_due() == 2 and limiter.summary_due() == 0
    assert limiter.take(2) == 1  # 10 s refilled the single token
    assert limiter.summary_due() == 0 and limiter.summary_due(final=True) == 1
    assert limiter.suppressed == 3


def test_the_limit_leaves_most_of_journalds_budget_to_n3d() -> None:
    # journald's default: 10 000 messages per 30 s per service.
    assert BURST + 30 * RATE_PER_S <= 10_000 / 2


@pytest.mark.slow
async def test_a_chatty_child_is_drained_and_only_a_bounded_number_of_lines_logged(
    json_logs: JsonLogs, pgids: list[int]
) -> None:
    total = 200_000  # ~20 MB as fast as Python prints: a child that was not drained blocks
    code = textwrap.dedent(f"""
        import sys
        line = "time=now level=INFO msg=chatter " + "x" * 60 + "\\n"
        for i in range({total}):
            sys.stderr.write(line)
        sys.stdout.write("done\\n")
    """)
    before = REGISTRY.snapshot()["counters"].get("ollama.output_suppressed", 0)
    began = time.monotonic()
    async with open_ollama([sys.executable, "-c", code], os.environ, stop_timeout_s=2) as p:
        pgids.append(p.pgid)
        with anyio.fail_after(120):  # generous: it finishes only if its pipes are read
            status = await p.wait()
    elapsed = time.monotonic() - began
    assert status.returncode == 0
    events = json_logs.events()
    logged = sum(e["event"] == "ollama.output" for e in events)
    assert logged <= BURST + RATE_PER_S * elapsed + 1, (logged, elapsed)
    summaries = [e for e in events if e["event"] == "ollama.output_suppressed"]
    assert summaries and all(e["logger"] == "n3d.supervisor.output" for e in summaries)
    dropped = sum(e["lines"] for e in summaries)
    assert logged + dropped == total + 1  # every line read: logged, or counted
    after = REGISTRY.snapshot()["counters"]["ollama.output_suppressed"]
    assert after - before == dropped
    assert p.last_stderr is not None and "chatter" in p.last_stderr
