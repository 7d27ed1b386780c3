"""The fault drill, compressed: every fault kind once against a real n3d, every invariant.

Real processes, signals and sockets (:mod:`n3d.testing.drill`); about 40 s on a 2-core machine.
Run the long version with ``.venv/bin/python bench/drills.py``.
"""

from __future__ import annotations

import json

import pytest

from n3d.testing.drill import render, run_drill
from n3d.testing.drill.bounds import FAULT_KINDS

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_short_drill_keeps_every_invariant_with_the_proxy_on() -> None:
    """Every fault kind once against one server while socket clients call and four
    clients stream generates through n3d's proxy: every invariant holds; no proxied
    request fails, except streams that had begun when serve (or a runner) was killed,
    and those end with Ollama's in-stream ``{"error": ...}`` line (``cut``), never a
    hang. (One run for both: the drill is the suite's longest test.)"""
    result = run_drill(short=True, seed=20251207, proxy_clients=4)

    report = render(result)
    failed = [inv.name for inv in result.invariants if not inv.ok]
    assert not failed, report
    kinds = {fault.kind for fault in result.faults}
    assert set(FAULT_KINDS) <= kinds, report
    assert all(fault.ok for fault in result.faults), report
    served = result.requests
    for method in ("status", "health", "models.list", "events.subscribe"):
        assert served[method]["ok"] > 0, report
        assert served[method]["failed"] == 0, report
    assert result.events_received.get("server.state", 0) > 0, report
    assert json.loads(json.dumps(result.to_json()))["ok"] is True  # what --json prints
    names = {inv.name for inv in result.invariants}
    assert "no proxied request fails, except streams begun when serve was killed" in names
    streams = result.streams
    assert streams["failed"] == 0 and streams["ok"] > 100, report
    assert streams["sent"] == sum(
        streams[k] for k in ("ok", "cut", "runner_killed", "lost_to_n3d_kill", "failed")
    ), report
    print(f"\nproxied generates: {streams} in {result.duration_s}s")


@pytest.mark.timeout(360)
def test_short_drill_with_two_servers_keeps_every_invariant_per_server() -> None:
    """Two ``[[servers]]`` (simulators) under one n3d, the proxy on: each fault aimed at
    one server; each server's state history takes only allowed edges, no orphan of
    either is left, and no fault on one server moves the other."""
    result = run_drill(short=True, seed=20251207, proxy_clients=4, servers=2)

    report = render(result)
    failed = [inv.name for inv in result.invariants if not inv.ok]
    assert not failed, report
    names = {inv.name for inv in result.invariants}
    assert "a fault on one server never moves another" in names
    assert {fault.detail["server"] for fault in result.faults} == {"gpu0", "gpu1"}, report
    assert result.streams["failed"] == 0, report
    print(f"\nproxied generates, two servers: {result.streams} in {result.duration_s}s")
