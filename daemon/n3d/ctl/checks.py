"""The human form of ``health.checks``: `n3ctl health`'s lines and `n3ctl status`'s
inference line; pure functions, standard library only (n3ctl's hot path).

A daemon without liveness sends no ``checks``: then there is nothing to add.
Missing or oddly typed fields render as ``-``, as everywhere in n3ctl.
"""

from __future__ import annotations

from n3d.ctl.fmt import Style, as_dict, as_number, human_duration

# typing costs n3ctl status ~2 ms to import; the hints need it only for checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["check_lines", "inference_lines", "model_rate"]

_STATE_WORDS = {
    "busy": "busy: queued behind requests its runner is working on",
    "waiting": "waiting: its runner idle while another model's worked",
    "unchecked": "not checked (not kept warm, no traffic)",
    "pending": "not checked yet",
}


def _verdict(ok: Any, style: Style) -> str:
    if ok is True:
        return style("ok", "green")
    if ok is False:
        return style("failing", "red")
    return style("not run", "dim")


def model_rate(model: dict[str, Any]) -> str:
    """``48.1 tok/s (baseline 50.0)``, or ``-`` without a rate (an embedding model)."""
    tps, baseline = as_number(model.get("tokens_per_second")), as_number(model.get("baseline_tps"))
    if tps is None:
        return "-"
    text = f"{tps:.1f} tok/s"
    if baseline is not None:
        text += f" (baseline {baseline:.1f})"
    return text


def _evidence(model: dict[str, Any]) -> str:
    age, source = as_number(model.get("age_s")), model.get("source")
    if age is None:
        return "no output seen"
    return f"output {human_duration(age)} ago" + (f" ({source})" if source else "")


def _model_line(model: dict[str, Any], style: Style) -> str:
    state = str(model.get("state") or "-")
    if model.get("ok") is False:
        what = f"{style(state, 'red')}: {model.get('error') or state}"
    elif state in _STATE_WORDS:
        what = _STATE_WORDS[state]
    else:
        what = f"{style(state, 'yellow' if model.get('slow') else 'green')}, {model_rate(model)}"
    return f"{model.get('model') or '-'}  {what}; {_evidence(model)}"


def check_lines(checks: Any, *, style: Style) -> list[str]:
    """`n3ctl health`'s lines under the summary: one per check, one per loaded model."""
    checks = as_dict(checks)
    if not checks:
        return []
    http, sched, inference = (as_dict(checks.get(k)) for k in ("http", "scheduler", "inference"))
    latency = as_number(http.get("latency_ms"))
    lines = [
        f"  http       {_verdict(http.get('ok'), style)}"
        + (f", HEAD / in {latency:.0f} ms" if latency is not None else "")
    ]
    sched_text = f"  scheduler  {_verdict(sched.get('ok'), style)}"
    sched_ms = as_number(sched.get("latency_ms"))
    if sched_ms is not None:
        sched_text += f", /api/ps in {sched_ms:.0f} ms"
    wedged = [str(m) for m in sched.get("wedged") or [] if isinstance(m, str)]
    if wedged:
        sched_text += f"; wedged (stuck unloading): {', '.join(wedged)}"
    elif sched.get("error"):
        sched_text += f": {sched['error']}"
    lines.append(sched_text)
    probing = "" if inference.get("probe", True) else " (probes off: traffic only)"
    lines.append(f"  inference  {_verdict(inference.get('ok'), style)}{probing}")
    models = [as_dict(m) for m in inference.get("models") or []]
    lines.extend(f"    {_model_line(m, style)}" for m in models)
    if not models:
        lines.append("    no model loaded")
    return lines


def inference_lines(health: dict[str, Any], *, style: Style) -> list[str]:
    """`n3ctl status`'s ``Inference:`` line(s): model, tok/s vs baseline, last evidence."""
    checks = as_dict(health.get("checks"))
    if not checks:
        return []
    models = [as_dict(m) for m in as_dict(checks.get("inference")).get("models") or []]
    if not models:
        return ["  Inference: no model loaded"]
    lines = []
    for i, model in enumerate(models):
        head = "  Inference: " if i == 0 else "             "
        lines.append(head + _model_line(model, style))
    return lines
