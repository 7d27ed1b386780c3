"""Metrics: aggregated per name and per tag set, bounded, and logged when their level is on.

``metric()`` skips structlog when the configuration filters the metric's level; it
asks the configuration each time, so it follows every reconfiguration. The registry
keeps one series per tag set beside the total per name, and caps the tag sets.
"""

from __future__ import annotations

import io
import json

import structlog
from structlog.testing import capture_logs

from n3d.logs import configure_logging
from n3d.metrics import REGISTRY, MetricsRegistry, metric, series_tags, server_scope


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


def test_tags_survive_aggregation_as_one_series_per_tag_set() -> None:
    metric("n3d.rpc.duration", 0.001, "s", method="status")
    metric("n3d.rpc.duration", 0.003, "s", method="status")
    metric("n3d.rpc.duration", 0.010, "s", method="models.list")
    metric("ollama.model.evicted", 1, "{eviction}", model="a", reason="expired")
    metric("ollama.model.evicted", 1, "{eviction}", reason="expired", model="a")  # same set
    metric("ollama.model.evicted", 1, "{eviction}", model="b", reason="expired")
    metric("ollama.health.check_duration", 0.002, "s", ok=True)
    snap = REGISTRY.snapshot()
    # The seed's shape stays: one total per name over every tag set.
    assert snap["histograms"]["n3d.rpc.duration"]["count"] == 3
    assert snap["counters"]["ollama.model.evicted"] == 3
    series = [(s["name"], s["tags"], s.get("value", s.get("count"))) for s in snap["series"]]
    assert series == [
        ("n3d.rpc.duration", {"method": "models.list"}, 1),
        ("n3d.rpc.duration", {"method": "status"}, 2),
        ("ollama.health.check_duration", {"ok": "true"}, 1),
        ("ollama.model.evicted", {"model": "a", "reason": "expired"}, 2.0),
        ("ollama.model.evicted", {"model": "b", "reason": "expired"}, 1.0),
    ]
    status = snap["series"][1]
    assert status["kind"] == "histogram" and status["unit"] == "s"
    assert (status["sum"], status["min"], status["max"]) == (0.004, 0.001, 0.003)
    assert (status["p50"], status["p99"]) == (0.001, 0.003)


def test_a_gauge_series_keeps_its_own_last_value_and_the_total_the_newest() -> None:
    metric("ollama.models.count", 3, "{model}", cached=False)
    metric("ollama.models.count", 2, "{model}", cached=True)
    snap = REGISTRY.snapshot()
    assert snap["gauges"]["ollama.models.count"] == 2
    assert [(s["tags"], s["value"]) for s in snap["series"]] == [
        ({"cached": "false"}, 3.0),
        ({"cached": "true"}, 2.0),
    ]


def test_a_pid_is_logged_but_does_not_make_a_series_of_its_own() -> None:
    with capture_logs() as logs:
        metric("ollama.process.rss_bytes", 1000, "By", pid=101)
        metric("ollama.process.rss_bytes", 2000, "By", pid=202)  # the server restarted
        metric("ollama.server.stopped", 1, "{stop}", pid=202, exit="signal SIGKILL")
    assert [e["tags"] for e in logs] == [
        {"pid": 101},
        {"pid": 202},
        {"pid": 202, "exit": "signal SIGKILL"},
    ]
    series = REGISTRY.snapshot()["series"]
    assert [(s["name"], s["tags"], s["value"]) for s in series] == [
        ("ollama.process.rss_bytes", {}, 2000.0),
        ("ollama.server.stopped", {"exit": "signal SIGKILL"}, 1.0),
    ]


def test_tag_sets_past_the_cap_add_up_in_one_overflow_series_with_one_warning() -> None:
    registry = MetricsRegistry(max_series=3)
    with capture_logs() as logs:
        for i in range(10):  # a client asking about ten made-up models
            registry.record("ollama.model.check_duration", 0.001, "s", None, {"model": f"m{i}"})
        registry.record("ollama.model.check_duration", 0.001, "s", None, {"model": "m0"})
    snap = registry.snapshot()
    assert [(s["tags"], s["count"]) for s in snap["series"]] == [
        ({"model": "m0"}, 2),
        ({"model": "m1"}, 1),
        ({"model": "m2"}, 1),
        ({"overflow": "true"}, 7),
    ]
    assert snap["histograms"]["ollama.model.check_duration"]["count"] == 11  # nothing lost
    warnings = [e for e in logs if e["event"] == "metrics.series_capped"]
    assert len(warnings) == 1 and warnings[0]["metric"] == "ollama.model.check_duration"
    assert warnings[0]["log_level"] == "warning" and warnings[0]["limit"] == 3


def test_tag_values_become_bounded_text() -> None:
    assert series_tags({"ok": False, "n": 3, "none": None, "s": "x"}) == (
        ("n", "3"),
        ("none", "null"),
        ("ok", "false"),
        ("s", "x"),
    )
    assert series_tags({"model": "m" * 5000}) == (("model", "m" * 1024),)
    assert series_tags({"pid": 7}) == ()


def test_a_histogram_keeps_the_newest_samples_for_its_percentiles() -> None:
    registry = MetricsRegistry()
    for value in range(3000):  # more than the 2048-sample reservoir
        registry.record("x", float(value), "s")
    summary = registry.snapshot()["histograms"]["x"]
    assert (summary["count"], summary["min"], summary["max"]) == (3000, 0.0, 2999.0)
    # p50 over the newest 2048 (952..2999), not over everything ever seen
    assert summary["p50"] == 952 + 1023


def test_in_a_server_scope_metrics_carry_the_server_tag_and_log_lines_the_field() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    with server_scope("gpu1"):
        metric("ollama.server.restarts", 1, "{restart}")
        metric("ollama.model.deleted", 1, "{model}", model="m", server="gpu0")  # named wins
        structlog.get_logger("n3d.supervisor").info("server.command", command="x")
    metric("ollama.server.restarts", 1, "{restart}")  # outside: no tag
    series = [(s["name"], s["tags"]) for s in REGISTRY.snapshot()["series"]]
    assert ("ollama.server.restarts", {"server": "gpu1"}) in series
    assert ("ollama.server.restarts", {}) in series
    assert ("ollama.model.deleted", {"model": "m", "server": "gpu0"}) in series
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [line.get("server") for line in lines] == ["gpu1", "gpu1", "gpu1", None]
