"""The `metrics` method of a real daemon keeps `n3d.rpc.duration` apart for each method."""

from __future__ import annotations

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.slow


def test_each_method_keeps_its_own_rpc_duration_series(daemon: Daemon) -> None:
    daemon.call("status")
    daemon.call("health")
    metrics = daemon.call("metrics")
    rpc = {s["tags"]["method"]: s for s in metrics["series"] if s["name"] == "n3d.rpc.duration"}
    assert rpc["status"]["count"] >= 1 and rpc["health"]["count"] == 1
    assert all(s["kind"] == "histogram" and s["unit"] == "s" for s in rpc.values())
    # The total per name is still there, and is the sum of its series.
    total = metrics["histograms"]["n3d.rpc.duration"]
    assert total["count"] == sum(s["count"] for s in rpc.values())
    started = [s for s in metrics["series"] if s["name"] == "ollama.server.started"]
    # The pid is in the log, not a series; the server's name is (issue 17: every
    # server-scoped metric carries the tag `server`, "default" without [[servers]]).
    assert [s["tags"] for s in started] == [{"server": "default"}]
