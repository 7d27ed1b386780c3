"""The fault drill, compressed: every fault kind once against a real n3d, every invariant.

Real processes, signals and sockets (:mod:`n3d.testing.drill`); about 40 s on a 2-core machine.
Run the long version with ``.venv/bin/python bench/drills.py``.
"""

from __future__ import annotations

import json

import pytest

from n3d.testing.drill import render, run_drill

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_short_drill_keeps_every_invariant() -> None:
    result = run_drill(short=True, seed=20251125)

    report = render(result)
    failed = [inv.name for inv in result.invariants if not inv.ok]
    assert not failed, report
    kinds = {fault.kind for fault in result.faults}
    assert {
        "n3d_kill",
        "serve_kill",
        "sigstop",
        "sim_hang",
        "fail_pulls",
        "pulls",
        "burst",
        "bad_frames",
        "sighup",
        "poisoned_json",
        "hang_inference",
        "hang_runner",
        "wedge_unload",
        "slow",
    } <= kinds, report
    assert all(fault.ok for fault in result.faults), report
    served = result.requests
    for method in ("status", "health", "models.list", "events.subscribe"):
        assert served[method]["ok"] > 0, report
        assert served[method]["failed"] == 0, report
    assert result.events_received.get("server.state", 0) > 0, report
    assert json.loads(json.dumps(result.to_json()))["ok"] is True  # what --json prints
