"""`n3ctl health` shows the three checks and `n3ctl status` the inference line: pure text."""

from __future__ import annotations

import time
from typing import Any

from n3d.ctl.fmt import Style
from n3d.ctl.render import render_health, render_status

from . import samples

PLAIN = Style(False)

CHECKS: dict[str, Any] = {
    "http": {"ok": True, "latency_ms": 12.4},
    "scheduler": {"ok": True, "latency_ms": 2.9, "wedged": [], "age_s": 4.0},
    "inference": {
        "ok": True,
        "probe": True,
        "models": [
            {
                "model": "llama3:8b", "ok": True, "state": "ok", "source": "probe",
                "latency_ms": 41.0, "tokens_per_second": 48.12, "baseline_tps": 50.0,
                "slow": False, "age_s": 12.0, "warm": True,
            },
            {
                "model": "qwen2:0.5b", "ok": True, "state": "busy", "source": "traffic",
                "latency_ms": 20000.0, "tokens_per_second": None, "baseline_tps": 210.0,
                "slow": False, "age_s": 3.0, "warm": True,
            },
            {
                "model": "all-minilm:latest", "ok": None, "state": "unchecked", "source": None,
                "latency_ms": None, "tokens_per_second": None, "baseline_tps": None,
                "slow": False, "age_s": None, "warm": False,
            },
        ],
    },
}  # fmt: skip


def test_health_shows_a_line_per_check_and_per_loaded_model() -> None:
    result = {**samples.HEALTH, "checks": CHECKS}
    assert render_health(result, now=samples.NOW, style=PLAIN) == (
        "ok: Ollama 0.5.7 answered in 12 ms (checked 4s ago, cached)\n"
        "  http       ok, HEAD / in 12 ms\n"
        "  scheduler  ok, /api/ps in 3 ms\n"
        "  inference  ok\n"
        "    llama3:8b  ok, 48.1 tok/s (baseline 50.0); output 12s ago (probe)\n"
        "    qwen2:0.5b  busy: queued behind requests its runner is working on;"
        " output 3s ago (traffic)\n"
        "    all-minilm:latest  not checked (not kept warm, no traffic); no output seen"
    )


def test_health_names_a_hung_model_and_a_wedged_one_while_http_still_answers() -> None:
    hung = {
        "model": "llama3:8b", "ok": False, "state": "hung", "source": "probe",
        "latency_ms": 20000.0, "tokens_per_second": None, "baseline_tps": 50.0,
        "slow": False, "age_s": 95.0, "warm": True,
        "error": "no answer within 20s and its runner did no work (0.00s of CPU)",
    }  # fmt: skip
    checks = {
        "http": {"ok": True, "latency_ms": 1.0},
        "scheduler": {"ok": False, "latency_ms": 2.0, "wedged": ["old:1b"], "age_s": 1.0},
        "inference": {"ok": False, "probe": True, "models": [hung]},
    }
    result = {
        **samples.HEALTH,
        "ok": False,
        "error": "wedged (stuck unloading): old:1b",
        "error_kind": "scheduler",
        "checks": checks,
    }
    assert render_health(result, now=samples.NOW, style=PLAIN).splitlines() == [
        "failing: wedged (stuck unloading): old:1b (checked 4s ago, cached)",
        "  http       ok, HEAD / in 1 ms",
        "  scheduler  failing, /api/ps in 2 ms; wedged (stuck unloading): old:1b",
        "  inference  failing",
        "    llama3:8b  hung: no answer within 20s and its runner did no work (0.00s of CPU);"
        " output 1min 35s ago (probe)",
    ]


def test_status_shows_each_loaded_models_rate_against_its_baseline_and_last_output() -> None:
    status = {**samples.STATUS, "health": {**samples.HEALTH, "checks": CHECKS}}
    lines = render_status(status, now=samples.NOW, style=PLAIN, clock=time.gmtime).splitlines()
    at = lines.index("     Health: ok, 12 ms, checked 4s ago")
    assert lines[at + 1 : at + 4] == [
        "  Inference: llama3:8b  ok, 48.1 tok/s (baseline 50.0); output 12s ago (probe)",
        "             qwen2:0.5b  busy: queued behind requests its runner is working on;"
        " output 3s ago (traffic)",
        "             all-minilm:latest  not checked (not kept warm, no traffic); no output seen",
    ]


def test_a_slow_model_says_so_with_both_rates() -> None:
    slow = {**CHECKS["inference"]["models"][0], "state": "slow", "slow": True,
            "tokens_per_second": 2.5}  # fmt: skip
    status = {**samples.STATUS, "health": {**samples.HEALTH, "checks": {
        **CHECKS, "inference": {"ok": True, "probe": True, "models": [slow]}}}}  # fmt: skip
    text = render_status(status, now=samples.NOW, style=PLAIN, clock=time.gmtime)
    assert "  Inference: llama3:8b  slow, 2.5 tok/s (baseline 50.0); output 12s ago" in text


def test_a_daemon_without_liveness_renders_as_before() -> None:
    assert render_health(samples.HEALTH, now=samples.NOW, style=PLAIN).count("\n") == 0
    assert "Inference" not in render_status(samples.STATUS, now=samples.NOW, style=PLAIN)
