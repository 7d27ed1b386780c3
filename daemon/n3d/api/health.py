"""The ``health`` result (also ``status.health``): the `HEAD /` check and, with liveness,
the three checks of DESIGN.md under ``checks`` (latencies in milliseconds, ages in s).

``ok`` is false when any check that ran failed: the `HEAD /` check, the scheduler
check, or a loaded model's inference check (``busy`` is not a failure: the probe was
queued behind work its runner was doing). When `HEAD /` passed but another check
failed, ``error`` and ``error_kind`` (``scheduler`` or ``inference``) say which.
"""

from __future__ import annotations

from n3d.api import shapes
from n3d.supervisor.evidence import ModelCheck
from n3d.supervisor.health import HealthReport
from n3d.supervisor.liveness import LivenessReport

__all__ = ["checks_result", "health_result"]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else round(max(0.0, now - at), 3)


def _model(check: ModelCheck, now: float) -> shapes.InferenceModel:
    tps, baseline = check.tokens_per_second, check.baseline_tps
    shown: shapes.InferenceModel = {
        "model": check.model,
        "ok": check.ok,
        "state": check.state,
        "source": check.source,
        "latency_ms": _ms(check.latency_s),
        "tokens_per_second": None if tps is None else round(tps, 3),
        "baseline_tps": None if baseline is None else round(baseline, 3),
        "slow": check.slow,
        "age_s": _age(check.output_at, now),
        "warm": check.warm,
    }
    if check.error is not None:
        shown["error"] = check.error
    return shown


def checks_result(
    report: HealthReport | None, liveness: LivenessReport, *, probe: bool, now: float
) -> shapes.Checks:
    """``checks {http, scheduler, inference}``; ``now`` is monotonic seconds."""
    http: shapes.HttpCheck = {
        "ok": None if report is None else report.result.ok,
        "latency_ms": None if report is None else _ms(report.result.latency_s),
    }
    sched = liveness.scheduler
    scheduler: shapes.SchedulerCheck = {
        "ok": None if sched is None else sched.ok,
        "latency_ms": None if sched is None else _ms(sched.latency_s),
        "wedged": [] if sched is None else list(sched.wedged),
        "age_s": None if sched is None else _age(sched.checked_at, now),
    }
    if sched is not None and sched.error is not None:
        scheduler["error"] = sched.error
    models = [_model(check, now) for check in liveness.models]
    return {
        "http": http,
        "scheduler": scheduler,
        "inference": {"ok": liveness.inference_ok, "probe": probe, "models": models},
    }


def _liveness_failure(checks: shapes.Checks) -> tuple[str, str] | None:
    """(error, kind) of the first liveness check that failed, if one did."""
    sched = checks["scheduler"]
    if sched["ok"] is False:
        wedged = ", ".join(sched["wedged"])
        return sched.get("error") or f"wedged (stuck unloading): {wedged}", "scheduler"
    for model in checks["inference"]["models"]:
        if model["ok"] is False:
            return f"inference on {model['model']}: {model.get('error', model['state'])}", (
                "inference"
            )
    return None


def health_result(
    report: HealthReport | None, version: str | None, checks: shapes.Checks | None = None
) -> shapes.Health:
    """`health` (latency in milliseconds); ``report`` None: no check has answered yet.

    ``version`` is Ollama's, as last seen; ``checks`` (from :func:`checks_result`)
    is added when liveness runs, and a failed one makes ``ok`` false.
    """
    if report is None:
        empty: shapes.Health = {
            "ok": None,
            "latency_ms": None,
            "checked_at": None,
            "age_s": None,
            "cached": True,
            "version": version,
        }
        if checks is not None:
            empty["checks"] = checks
        return empty
    r = report.result
    ok, error, kind = r.ok, r.error, r.error_kind
    failure = _liveness_failure(checks) if checks is not None and ok else None
    if failure is not None:
        ok, (error, kind) = False, failure
    latency_ms, age_s = _ms(r.latency_s), round(report.age_s, 3)
    result: shapes.Health
    if error is None:
        result = {
            "ok": ok,
            "latency_ms": latency_ms,
            "checked_at": r.checked_at,
            "age_s": age_s,
            "cached": report.cached,
            "version": version,
        }
    else:
        result = {
            "ok": ok,
            "latency_ms": latency_ms,
            "checked_at": r.checked_at,
            "age_s": age_s,
            "cached": report.cached,
            "error": error,
            "error_kind": kind,
            "version": version,
        }
    if checks is not None:
        result["checks"] = checks
    return result
