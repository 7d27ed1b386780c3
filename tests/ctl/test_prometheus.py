"""`metrics --prometheus`: exposition-format text for node_exporter's textfile collector."""

from __future__ import annotations

import re
from typing import Any

import pytest

from n3d.ctl.prometheus import prometheus_name, render_prometheus

from . import samples

# One sample line of the text format: name, optional labels, a value.
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("n3d.rpc.duration", "s", "histogram", "n3d_rpc_duration_seconds"),
        ("ollama.request.duration", "ms", "histogram", "ollama_request_duration_seconds"),
        ("ollama.process.rss_bytes", "By", "gauge", "ollama_process_rss_bytes"),
        ("ollama.server.started", "{start}", "counter", "ollama_server_started_total"),
        ("ollama.tokens.total", "{token}", "counter", "ollama_tokens_total"),
        ("ollama.throughput.tokens_per_second", "{token}/s", "histogram",
         "ollama_throughput_tokens_per_second"),
        ("ollama.stream.throughput", "{token}/s", "histogram",
         "ollama_stream_throughput_per_second"),
        ("rpc-calls", "1", "gauge", "n3d_rpc_calls_ratio"),
    ],
)
def test_dotted_names_become_prometheus_names_with_unit_suffixes(
    name: str, unit: str, kind: str, expected: str
) -> None:
    assert prometheus_name(name, unit, kind)[0] == expected


def test_exposition_of_every_kind() -> None:
    assert render_prometheus(samples.METRICS) == (
        "# HELP n3d_rpc_duration_seconds n3d metric n3d.rpc.duration (s)\n"
        "# TYPE n3d_rpc_duration_seconds summary\n"
        'n3d_rpc_duration_seconds{quantile="0.5"} 0.0012\n'
        'n3d_rpc_duration_seconds{quantile="0.99"} 0.01\n'
        "n3d_rpc_duration_seconds_sum 0.0123\n"
        "n3d_rpc_duration_seconds_count 3\n"
        "# HELP ollama_models_count n3d metric ollama.models.count ({model})\n"
        "# TYPE ollama_models_count gauge\n"
        "ollama_models_count 3\n"
        "# HELP ollama_process_rss_bytes n3d metric ollama.process.rss_bytes (By)\n"
        "# TYPE ollama_process_rss_bytes gauge\n"
        "ollama_process_rss_bytes 1234000000\n"
        "# HELP ollama_server_started_total n3d metric ollama.server.started ({start})\n"
        "# TYPE ollama_server_started_total counter\n"
        "ollama_server_started_total 2\n"
        "# HELP ollama_throughput_tokens_per_second"
        " n3d metric ollama.throughput.tokens_per_second ({token}/s)\n"
        "# TYPE ollama_throughput_tokens_per_second summary\n"
        'ollama_throughput_tokens_per_second{quantile="0.5"} 42.5\n'
        'ollama_throughput_tokens_per_second{quantile="0.99"} 42.5\n'
        "ollama_throughput_tokens_per_second_sum 42.5\n"
        "ollama_throughput_tokens_per_second_count 1\n"
        "# HELP ollama_tokens_total n3d metric ollama.tokens.total ({token})\n"
        "# TYPE ollama_tokens_total counter\n"
        "ollama_tokens_total 1500\n"
    )


def test_every_line_is_valid_exposition_syntax() -> None:
    for line in render_prometheus(samples.METRICS).splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE.match(line), line


def test_milliseconds_are_converted_to_seconds() -> None:
    text = render_prometheus({
        "histograms": {"x.latency": {"count": 2, "sum": 30, "p50": 10, "p99": 20}},
        "units": {"x.latency": "ms"},
    })
    assert 'n3d_x_latency_seconds{quantile="0.99"} 0.02\n' in text
    assert "n3d_x_latency_seconds_sum 0.03\n" in text


def test_special_values_and_empty_results() -> None:
    assert render_prometheus({}) == ""
    text = render_prometheus({"gauges": {"a": float("nan"), "b": float("inf")}})
    assert "n3d_a NaN\n" in text and "n3d_b +Inf\n" in text


# A result with series, as the daemon sends it since tags survive aggregation.
TAGGED: dict[str, Any] = {
    "counters": {"ollama.model.evicted": 3.0},
    "gauges": {"ollama.models.count": 2.0},
    "histograms": {"n3d.rpc.duration": {"count": 3, "sum": 0.014, "p50": 0.003, "p99": 0.01}},
    "units": {"ollama.model.evicted": "{eviction}", "ollama.models.count": "{model}",
              "n3d.rpc.duration": "s"},
    "series": [
        {"name": "n3d.rpc.duration", "kind": "histogram", "unit": "s",
         "tags": {"method": "models.list"}, "count": 1, "sum": 0.01, "p50": 0.01, "p99": 0.01},
        {"name": "n3d.rpc.duration", "kind": "histogram", "unit": "s",
         "tags": {"method": "status"}, "count": 2, "sum": 0.004, "p50": 0.001, "p99": 0.003},
        {"name": "ollama.model.evicted", "kind": "counter", "unit": "{eviction}",
         "tags": {"model": "llama3:8b", "reason": "expired"}, "value": 2.0},
        {"name": "ollama.model.evicted", "kind": "counter", "unit": "{eviction}",
         "tags": {"model": 'od"d\\na\nme', "reason": "evicted"}, "value": 1.0},
        {"name": "ollama.models.count", "kind": "gauge", "unit": "{model}", "tags": {},
         "value": 2.0},
    ],
}
# A sample line with any number of labels, values escaped as the format asks.
LABELLED = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})?'
    r' (-?[0-9.e+-]+|NaN|[+-]Inf)$'
)


def test_each_tag_set_is_one_labelled_sample() -> None:
    assert render_prometheus(TAGGED) == (
        "# HELP n3d_rpc_duration_seconds n3d metric n3d.rpc.duration (s)\n"
        "# TYPE n3d_rpc_duration_seconds summary\n"
        'n3d_rpc_duration_seconds{method="models.list",quantile="0.5"} 0.01\n'
        'n3d_rpc_duration_seconds{method="models.list",quantile="0.99"} 0.01\n'
        'n3d_rpc_duration_seconds_sum{method="models.list"} 0.01\n'
        'n3d_rpc_duration_seconds_count{method="models.list"} 1\n'
        'n3d_rpc_duration_seconds{method="status",quantile="0.5"} 0.001\n'
        'n3d_rpc_duration_seconds{method="status",quantile="0.99"} 0.003\n'
        'n3d_rpc_duration_seconds_sum{method="status"} 0.004\n'
        'n3d_rpc_duration_seconds_count{method="status"} 2\n'
        "# HELP ollama_model_evicted_total n3d metric ollama.model.evicted ({eviction})\n"
        "# TYPE ollama_model_evicted_total counter\n"
        'ollama_model_evicted_total{model="llama3:8b",reason="expired"} 2\n'
        'ollama_model_evicted_total{model="od\\"d\\\\na\\nme",reason="evicted"} 1\n'
        "# HELP ollama_models_count n3d metric ollama.models.count ({model})\n"
        "# TYPE ollama_models_count gauge\n"
        "ollama_models_count 2\n"
    )
    for line in render_prometheus(TAGGED).splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or LABELLED.match(line), line


def test_label_names_are_made_valid_and_never_repeat_a_sample() -> None:
    text = render_prometheus({
        "gauges": {"g": 1.0},
        "series": [
            {"name": "g", "kind": "gauge", "tags": {"9lives": "a", "__x": "b", "a-b": "c"},
             "value": 1.0},
            {"name": "g", "kind": "gauge", "tags": {"a_b": "c", "9lives": "a", "__x": "b"},
             "value": 2.0},  # the same labels once made valid: the first one is kept
        ],
    })
    assert text.splitlines()[2:] == ['n3d_g{tag_9lives="a",tag___x="b",a_b="c"} 1']
    summary = render_prometheus({
        "histograms": {"h": {"count": 1, "sum": 1, "p50": 1, "p99": 1}},
        "series": [{"name": "h", "kind": "histogram", "tags": {"quantile": "x"},
                    "count": 1, "sum": 1, "p50": 1, "p99": 1}],
    })
    assert 'n3d_h{tag_quantile="x",quantile="0.5"} 1\n' in summary


def test_a_result_without_series_still_renders_each_total() -> None:
    older = {k: v for k, v in TAGGED.items() if k != "series"}
    assert "ollama_model_evicted_total 3\n" in render_prometheus(older)
    assert "n3d_rpc_duration_seconds_count 3\n" in render_prometheus(older)
