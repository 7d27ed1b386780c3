"""Prometheus text, rendered once in the daemon by prometheus_client over n3d's registry.

The same text answers `GET /metrics` on the proxy and `metrics.prometheus` on the
socket (what `n3ctl metrics --prometheus` prints). Checked with prometheus_client's
own parser: names, label sets, histogram buckets that add up, escapes.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from n3d.metrics import MetricsRegistry
from n3d.proxy.exposition import prometheus_name, render_snapshot


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("n3d.rpc.duration", "s", "histogram", "n3d_rpc_duration_seconds"),
        ("ollama.request.duration", "ms", "histogram", "ollama_request_duration_seconds"),
        ("ollama.process.rss_bytes", "By", "gauge", "ollama_process_rss_bytes"),
        ("ollama.server.started", "{start}", "counter", "ollama_server_started_total"),
        ("ollama.tokens.total", "{token}", "counter", "ollama_tokens_total"),
        (
            "ollama.throughput.tokens_per_second",
            "{token}/s",
            "histogram",
            "ollama_throughput_tokens_per_second",
        ),
        (
            "ollama.stream.throughput",
            "{token}/s",
            "histogram",
            "ollama_stream_throughput_per_second",
        ),
        ("rpc-calls", "1", "gauge", "n3d_rpc_calls_ratio"),
        ("ollama.server.restarts", "{restart}", "counter", "ollama_server_restarts_total"),
        ("ollama.tokens.completion", "{token}", "counter", "ollama_tokens_completion_total"),
        ("ollama.requests.in_flight", "{request}", "gauge", "ollama_requests_in_flight"),
    ],
)
def test_dotted_names_become_prometheus_names_with_unit_suffixes(
    name: str, unit: str, kind: str, expected: str
) -> None:
    assert prometheus_name(name, unit, kind)[0] == expected


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


REQUEST = {"model": "llama3.2", "route": "/api/chat", "status": 200, "server": "default"}


def _registry() -> MetricsRegistry:
    registry = MetricsRegistry()
    for seconds in (0.003, 0.3, 2.0):
        registry.record("ollama.request.duration", seconds, "s", None, REQUEST)
    registry.record("ollama.request.duration", 0.02, "s", None, {**REQUEST, "status": 404})
    registry.record("ollama.tokens.completion", 24, "{token}", None, REQUEST)
    registry.record("ollama.tokens.completion", 6, "{token}", None, REQUEST)
    registry.record("ollama.requests.in_flight", 2, "{request}", "gauge", {"server": "default"})
    registry.record("ollama.server.restarts", 1, "{restart}")
    registry.record("ollama.health.check_duration", 12, "ms", None, {})
    return registry


def test_the_text_parses_with_prometheus_clients_own_parser() -> None:
    families = _families(render_snapshot(_registry().snapshot()))
    assert families["ollama_request_duration_seconds"].type == "histogram"
    assert families["ollama_tokens_completion"].type == "counter"  # the parser drops _total
    assert families["ollama_requests_in_flight"].type == "gauge"
    assert families["ollama_server_restarts"].type == "counter"
    (restarts,) = families["ollama_server_restarts"].samples
    assert (restarts.name, restarts.value) == ("ollama_server_restarts_total", 1.0)
    (tokens,) = families["ollama_tokens_completion"].samples
    assert tokens.labels == {k: str(v) for k, v in REQUEST.items()}
    assert tokens.value == 30.0


def test_histograms_carry_cumulative_buckets_that_sum_to_the_count() -> None:
    families = _families(render_snapshot(_registry().snapshot()))
    samples = families["ollama_request_duration_seconds"].samples
    ok = [s for s in samples if s.labels.get("status") == "200"]
    buckets = {s.labels["le"]: s.value for s in ok if s.name.endswith("_bucket")}
    assert buckets["0.005"] == 1.0  # 0.003
    assert buckets["0.5"] == 2.0  # and 0.3
    assert buckets["2.5"] == 3.0  # and 2.0
    assert buckets["+Inf"] == 3.0
    values = list(buckets.values())
    assert values == sorted(values)  # cumulative
    count = next(s.value for s in ok if s.name.endswith("_count"))
    total = next(s.value for s in ok if s.name.endswith("_sum"))
    assert count == 3.0 and total == pytest.approx(2.303)


def test_milliseconds_are_converted_to_seconds_bounds_included() -> None:
    families = _families(render_snapshot(_registry().snapshot()))
    samples = families["ollama_health_check_duration_seconds"].samples
    assert next(s.value for s in samples if s.name.endswith("_sum")) == pytest.approx(0.012)
    buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    assert buckets["0.01"] == 0.0 and buckets["0.025"] == 1.0


def test_label_values_are_escaped_and_label_names_made_valid() -> None:
    registry = MetricsRegistry()
    registry.record("ollama.model.evicted", 1, "{eviction}", None, {"model": 'od"d\\na\nme'})
    registry.record("g", 1, "1", "gauge", {"9lives": "a", "__x": "b", "a-b": "c", "le": "x"})
    text = render_snapshot(registry.snapshot())
    families = _families(text)
    (evicted,) = families["ollama_model_evicted"].samples
    assert evicted.labels == {"model": 'od"d\\na\nme'}
    (gauge,) = families["n3d_g_ratio"].samples
    assert gauge.labels == {"tag_9lives": "a", "tag___x": "b", "a_b": "c", "tag_le": "x"}


def test_special_values_and_an_empty_registry() -> None:
    assert render_snapshot(MetricsRegistry().snapshot()) == ""
    registry = MetricsRegistry()
    registry.record("a", float("nan"), "", "gauge")
    registry.record("b", float("inf"), "", "gauge")
    text = render_snapshot(registry.snapshot())
    assert "n3d_a NaN\n" in text and "n3d_b +Inf\n" in text


def test_every_family_has_help_and_type() -> None:
    text = render_snapshot(_registry().snapshot())
    names = {f.name for f in text_string_to_metric_families(text)}
    for name in names:
        assert f"# TYPE {name}" in text
        assert f"# HELP {name}" in text
