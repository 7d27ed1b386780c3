"""A per-call metric is always aggregated and logged exactly when its level is enabled.

``metric()`` skips structlog when the configuration filters the metric's level; it
asks the configuration each time, so it follows every reconfiguration.
"""

from __future__ import annotations

import io
import json

import structlog
from structlog.testing import capture_logs

from n3d.logs import configure_logging
from n3d.metrics import REGISTRY, metric


def _metrics_logged(buf: io.StringIO) -> list[object]:
    return [json.loads(line)["metric"] for line in buf.getvalue().splitlines()]


def test_a_debug_metric_is_aggregated_but_not_logged_at_info() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    metric("n3d.rpc.duration", 0.001, "s", log_level="debug", method="status")
    metric("ollama.request.duration", 0.5, "s", model="m")
    assert _metrics_logged(buf) == ["ollama.request.duration"]
    assert REGISTRY.snapshot()["histograms"]["n3d.rpc.duration"]["count"] == 1


def test_metric_levels_follow_reconfiguration() -> None:
    quiet, chatty = io.StringIO(), io.StringIO()
    configure_logging("json", "warning", file=quiet)
    metric("n3d.rpc.duration", 0.001, "s", log_level="debug", method="a")
    metric("ollama.request.duration", 0.5, "s")  # info: filtered at warning too
    configure_logging("json", "debug", file=chatty)
    metric("n3d.rpc.duration", 0.002, "s", log_level="debug", method="b")
    structlog.reset_defaults()  # structlog's own default logs every level
    with capture_logs() as logs:
        metric("n3d.rpc.duration", 0.003, "s", log_level="debug", method="c")
    assert _metrics_logged(quiet) == []
    assert _metrics_logged(chatty) == ["n3d.rpc.duration"]
    assert [e["tags"] for e in logs] == [{"method": "c"}]
    assert REGISTRY.snapshot()["histograms"]["n3d.rpc.duration"]["count"] == 3
