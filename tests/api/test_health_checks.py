"""`health.checks`: the three checks of DESIGN.md, and `ok` false when one that ran failed."""

from __future__ import annotations

from typing import Any

from n3d.api import shapes
from n3d.api.health import checks_result, health_result
from n3d.supervisor.evidence import ModelCheck
from n3d.supervisor.health import HealthReport, HealthResult
from n3d.supervisor.liveness import LivenessReport, SchedulerCheck

from .test_shapes import problems

HTTP_OK = HealthReport(HealthResult(True, 0.002, 1.0, 100.0), 0.5, cached=True)


def checks(
    scheduler: SchedulerCheck | None = None, *models: ModelCheck, now: float = 130.0
) -> shapes.Checks:
    return checks_result(HTTP_OK, LivenessReport(scheduler, models), probe=True, now=now)


def test_before_liveness_has_run_its_checks_are_unknown_and_health_is_the_http_check() -> None:
    c = checks()
    assert c == {
        "http": {"ok": True, "latency_ms": 2.0},
        "scheduler": {"ok": None, "latency_ms": None, "wedged": [], "age_s": None},
        "inference": {"ok": None, "probe": True, "models": []},
    }
    data = health_result(HTTP_OK, "0.9.0", c)
    assert data["ok"] is True and list(data)[-2:] == ["version", "checks"]
    assert not problems(data, shapes.Health)


def test_each_model_shows_its_rate_its_baseline_and_the_age_of_its_last_output() -> None:
    good = ModelCheck(
        "m:latest", "ok", True, "probe", 0.0421, 48.123456, 50.0, output_at=118.0,
        checked_at=118.1,
    )  # fmt: skip
    busy = ModelCheck("b:latest", "busy", True, "probe", 20.0, checked_at=125.0)
    idle = ModelCheck("x:1b", "unchecked", None, warm=False)
    c = checks(SchedulerCheck(True, 0.001, (), 129.0), good, busy, idle)
    models: list[Any] = list(c["inference"]["models"])
    assert models[0] == {
        "model": "m:latest",
        "ok": True,
        "state": "ok",
        "source": "probe",
        "latency_ms": 42.1,
        "tokens_per_second": 48.123,
        "baseline_tps": 50.0,
        "slow": False,
        "age_s": 12.0,
        "warm": True,
    }
    assert [m["state"] for m in models] == ["ok", "busy", "unchecked"]
    assert c["inference"]["ok"] is True  # busy is a sign of life, unchecked did not run
    data = health_result(HTTP_OK, None, c)
    assert data["ok"] is True and not problems(data, shapes.Health)


def test_a_hung_model_makes_health_fail_and_says_why() -> None:
    hung = ModelCheck(
        "m:latest", "hung", False, "probe", 20.0,
        error="no answer within 20s and its runner did no work (0.00s of CPU)",
    )  # fmt: skip
    data = health_result(HTTP_OK, None, checks(SchedulerCheck(True, 0.001, (), 129.0), hung))
    assert data["ok"] is False and data["error_kind"] == "inference"
    assert data["error"] == (
        "inference on m:latest: no answer within 20s and its runner did no work (0.00s of CPU)"
    )
    assert data["checks"]["http"]["ok"] is True  # `HEAD /` still answers: the point
    assert not problems(data, shapes.Health)


def test_a_wedged_model_makes_the_scheduler_check_fail() -> None:
    c = checks(SchedulerCheck(False, 0.003, ("old:1b",), 129.0))
    assert c["scheduler"] == {"ok": False, "latency_ms": 3.0, "wedged": ["old:1b"], "age_s": 1.0}
    data = health_result(HTTP_OK, None, c)
    assert data["ok"] is False and data["error_kind"] == "scheduler"
    assert data["error"] == "wedged (stuck unloading): old:1b"


def test_a_failed_http_check_keeps_its_own_error() -> None:
    failed = HealthReport(
        HealthResult(False, None, 1.0, 1.0, "no answer within 5s", "timeout"), 0, False
    )
    c = checks_result(failed, LivenessReport(None, ()), probe=False, now=2.0)
    data = health_result(failed, None, c)
    assert (data["ok"], data["error_kind"]) == (False, "timeout")
    assert data["checks"]["http"] == {"ok": False, "latency_ms": None}
