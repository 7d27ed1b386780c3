"""`models`, `models --loaded`, `warm` and `metrics` as docker-ps-style tables."""

from __future__ import annotations

from n3d.ctl.fmt import Style
from n3d.ctl.tables import render_loaded, render_metrics, render_models, render_warm

from . import samples

PLAIN = Style(False)


def test_models_table_has_ollama_list_columns_with_human_sizes_and_ages() -> None:
    assert render_models(samples.MODELS, now=samples.NOW, style=PLAIN) == (
        "NAME         ID             SIZE     PARAMS    QUANT   MODIFIED\n"
        "llama3:8b    365c0bd3c000   4.7 GB   8.0B      Q4_0    2 weeks ago\n"
        "qwen2:0.5b   6f48b936a09f   352 MB   494.03M   Q4_0    3 minutes ago"
    )


def test_an_empty_table_is_its_header_alone() -> None:
    empty = {"models": [], "cached": False, "age_s": 0}
    assert render_models(empty, now=samples.NOW, style=PLAIN) == (
        "NAME   ID   SIZE   PARAMS   QUANT   MODIFIED"
    )


def test_header_is_bold_only_in_colour() -> None:
    text = render_models(samples.MODELS, now=samples.NOW, style=Style(True))
    assert text.startswith("\x1b[1mNAME")
    assert text.splitlines()[1] == render_models(
        samples.MODELS, now=samples.NOW, style=PLAIN).splitlines()[1]


def test_loaded_table_shows_vram_and_expiry_with_forever() -> None:
    assert render_loaded(samples.LOADED, now=samples.NOW, style=PLAIN) == (
        "NAME         SIZE     VRAM     UNTIL       WARM\n"
        "llama3:8b    6.7 GB   6.7 GB   forever     yes\n"
        "qwen2:0.5b   700 MB   0 B      4 minutes   no"
    )


def test_warm_table() -> None:
    assert render_warm(samples.WARM, now=samples.NOW, style=PLAIN) == (
        "NAME         KEEP ALIVE   LOADED   UNTIL     LAST WARMED\n"
        "llama3:8b    forever      yes      forever   10 minutes ago\n"
        "qwen2:0.5b   10m          no       -         -"
    )


def test_metrics_table_formats_by_unit() -> None:
    lines = render_metrics(samples.METRICS, style=PLAIN).splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "VALUE", "P50", "P99", "COUNT"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["ollama.process.rss_bytes"].split()[1:] == ["gauge", "1.2", "GB"]
    assert rows["ollama.tokens.total"].split()[1:] == ["counter", "1500", "token"]
    assert rows["n3d.rpc.duration"].split()[1:] == [
        "histogram", "4.1", "ms", "1.2", "ms", "10.0", "ms", "3"]
    assert "42.5 token/s" in rows["ollama.throughput.tokens_per_second"]


def test_tables_survive_odd_results() -> None:
    odd = {"models": ["bare-name", {"name": "x", "size": "big", "details": None}]}
    text = render_models(odd, now=samples.NOW, style=PLAIN)
    assert text.splitlines()[1].split() == ["bare-name", "-", "-", "-", "-", "-"]
    assert render_metrics({"counters": None}, style=PLAIN).split() == [
        "NAME", "TYPE", "VALUE", "P50", "P99", "COUNT"]


def test_metrics_table_shows_each_tag_set_under_its_total() -> None:
    result = {
        **samples.METRICS,
        "series": [
            {"name": "n3d.rpc.duration", "kind": "histogram", "unit": "s",
             "tags": {"method": "models.list"}, "count": 1, "sum": 0.01, "p50": 0.01,
             "p99": 0.01},
            {"name": "n3d.rpc.duration", "kind": "histogram", "unit": "s",
             "tags": {"method": "status"}, "count": 2, "sum": 0.0024, "p50": 0.001,
             "p99": 0.0014},
            {"name": "ollama.models.count", "kind": "gauge", "unit": "{model}", "tags": {},
             "value": 3.0},  # no tags: the total says it all
            {"name": "ollama.server.started", "kind": "counter", "unit": "{start}",
             "tags": {"reason": "restart", "model": "m"}, "value": 2.0},
        ],
    }
    lines = render_metrics(result, style=PLAIN).splitlines()
    names = [line.split("   ")[0].rstrip() for line in lines[1:]]
    assert names == [
        "ollama.server.started", "  model=m reason=restart", "ollama.tokens.total",
        "ollama.models.count", "ollama.process.rss_bytes",
        "n3d.rpc.duration", "  method=models.list", "  method=status",
        "ollama.throughput.tokens_per_second",
    ]
    status = lines[1 + names.index("  method=status")]
    assert status.split()[1:] == ["histogram", "1.2", "ms", "1.0", "ms", "1.4", "ms", "2"]
