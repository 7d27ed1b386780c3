"""Faults of the inference path, while `GET /` keeps answering: liveness must see them.

Each flips one of the simulator's inference switches through its control file
(docs/simulator.md) and waits for n3d's repair, then records "recovered" as the
time from the injection to the warm model answering a generation again (or, for a
wedged unload, to the wedged model leaving `/api/ps`):

- ``hang_inference``: every generation is held before it reaches a runner. n3d
  replaces the warm model's runner, then restarts serve; a restart is what cures a
  real deadlock, so the switch is lifted once serve is being restarted.
- ``hang_runner``: the warm model's runner stops answering. Only that runner may be
  replaced: serve's pid must not change.
- ``wedge_unload``: a model that is not warm is loaded with a 1 s keep-alive and its
  unload never completes. It must show in ``health.checks.scheduler.wedged`` and
  leave once n3d stops its runner; serve's pid must not change.
- ``slow``: tokens 20 times slower. Reported slow with both rates (the probe's, or
  with the proxy's clients streaming, their traffic's), then serve is
  restarted once (the first time: once an hour at most) and the server goes
  ``degraded`` with the reason; recovered (from the switch lifted) once the state
  is ``running`` again, the probes back at the usual rate.
"""

from __future__ import annotations

import time
from typing import Any

from n3d.testing.drill.bounds import RECOVERY_BOUND_S, REQUEST_BOUND_S, WARM_MODEL, WEDGE_MODEL
from n3d.testing.drill.drill import Drill, poll
from n3d.testing.drill.records import FaultRecord
from n3d.testing.inference import answers, generate

__all__ = ["hang_inference", "hang_runner", "slow", "wedge_unload"]


def _repair(drill: Drill, offset: int, stage: str, model: str | None = None) -> Any:
    def found() -> dict[str, Any] | None:
        for event in drill.target_events("repair", offset):
            if event.get("stage") == stage and (model is None or event.get("model") == model):
                return event
        return None

    return poll(found, RECOVERY_BOUND_S, 0.1)


def _switch(drill: Drill, **switches: Any) -> None:
    for key, value in switches.items():
        if value is None:
            drill.overrides.pop(key, None)
        else:
            drill.overrides[key] = value
    drill.write_control()


def _answering(drill: Drill, rec: FaultRecord, t: float) -> None:
    """Record "recovered": the warm model answers a generation again."""
    if poll(lambda: answers(drill.port, WARM_MODEL, 2.0), RECOVERY_BOUND_S, 0.2):
        rec.recovery_s = round(time.monotonic() - t, 3)
    else:
        rec.fail(f"the warm model does not answer {RECOVERY_BOUND_S}s after {rec.kind}")


def hang_inference(drill: Drill, rec: FaultRecord) -> None:
    pid = drill.status()["server"]["pid"]
    offset, t = drill.log_size(), time.monotonic()
    _switch(drill, hang_inference=True)
    try:
        if not _repair(drill, offset, "serve"):
            rec.fail(f"no serve repair for hung inference: {drill.describe_state()}")
    finally:
        _switch(drill, hang_inference=None)
    rec.detail["detected_s"] = round(time.monotonic() - t, 3)
    stages = [e.get("stage") for e in drill.target_events("repair", offset)]
    if stages[:2] != ["runner", "serve"]:
        rec.fail(f"repairs {stages}, expected the runner first, then serve")
    drill.recover(rec, t, old_pid=pid, new_pid=True)
    _answering(drill, rec, t)


def hang_runner(drill: Drill, rec: FaultRecord) -> None:
    pid = drill.status()["server"]["pid"]
    offset, t = drill.log_size(), time.monotonic()
    _switch(drill, hang_runner=WARM_MODEL)
    try:
        if not _repair(drill, offset, "runner"):
            rec.fail(f"no runner repair for a hung runner: {drill.describe_state()}")
        rec.detail["detected_s"] = round(time.monotonic() - t, 3)
    finally:
        _switch(drill, hang_runner=None)  # spent anyway: the hang ends with its runner
    drill.recover(rec, t, old_pid=pid, new_pid=False)
    _answering(drill, rec, t)
    stages = [e.get("stage") for e in drill.target_events("repair", offset)]
    if stages != ["runner"]:
        rec.fail(f"repairs {stages}: only the runner should have been replaced")
    if drill.status()["server"]["pid"] != pid:
        rec.fail("serve was replaced for one hung runner")


def wedge_unload(drill: Drill, rec: FaultRecord) -> None:
    pid = drill.status()["server"]["pid"]
    offset, t = drill.log_size(), time.monotonic()
    _switch(drill, wedge_unload=True)
    try:
        generate(drill.port, WEDGE_MODEL, keep_alive="1s", timeout_s=REQUEST_BOUND_S)

        def wedged() -> bool:
            found = drill.call("health", drill.scoped())["checks"]["scheduler"]["wedged"]
            return any(m.startswith(WEDGE_MODEL) for m in found)

        if not poll(wedged, RECOVERY_BOUND_S, 0.1) and not _repair(drill, offset, "runner"):
            rec.fail("the wedged model was never reported in health.checks.scheduler.wedged")
        if not _repair(drill, offset, "runner"):
            rec.fail(f"no runner repair for a wedged unload: {drill.describe_state()}")
        rec.detail["detected_s"] = round(time.monotonic() - t, 3)

        def gone() -> bool:
            loaded = drill.call("models.loaded", drill.scoped())["models"]
            return all(not m["name"].startswith(WEDGE_MODEL) for m in loaded)

        left = poll(gone, RECOVERY_BOUND_S, 0.2)
        left_s = round(time.monotonic() - t, 3)
        if not left:
            rec.fail("the wedged model never left /api/ps")
    finally:
        _switch(drill, wedge_unload=None)
    if drill.status()["server"]["pid"] != pid:
        rec.fail("serve was replaced for one wedged unload")
    drill.recover(rec, t, old_pid=pid, new_pid=False)
    rec.recovery_s = left_s  # recovered: the wedged model is gone


def slow(drill: Drill, rec: FaultRecord) -> None:
    pid = drill.status()["server"]["pid"]
    offset, t = drill.log_size(), time.monotonic()
    _switch(drill, slow=20)
    try:

        def reported() -> dict[str, Any] | None:
            for check in drill.call("health", drill.scoped())["checks"]["inference"]["models"]:
                if check["slow"] and check.get("baseline_tps"):
                    return dict(check)
            return None

        def degraded() -> bool:
            server = drill.status()["server"]
            return server["state"] == "degraded" and "inference slow" in server["reason"]

        check = poll(reported, RECOVERY_BOUND_S, 0.1)
        restarted = _repair(drill, offset, "serve") if check else None
        if not check:
            rec.fail(f"never reported slow: {drill.describe_state()}")
        else:
            rec.detail["rates"] = [check["tokens_per_second"], check["baseline_tps"]]
            rec.detail["source"] = check.get("source")  # traffic while clients stream
        rec.detail["detected_s"] = round(time.monotonic() - t, 3)
        rec.detail["variant"] = "restart" if restarted else "degraded"
        if not poll(degraded, RECOVERY_BOUND_S, 0.2):
            rec.fail(f"not degraded with the reason while slow: {drill.describe_state()}")
    finally:
        _switch(drill, slow=None)
    t_clear = time.monotonic()

    def running() -> bool:
        return bool(drill.status()["server"]["state"] == "running")

    if not poll(running, RECOVERY_BOUND_S, 0.2):
        rec.fail(f"not running once fast again: {drill.describe_state()}")
    fast_s = round(time.monotonic() - t_clear, 3)
    repairs = [e.get("stage") for e in drill.target_events("repair", offset)]
    if repairs.count("serve") > 1:
        rec.fail(f"slow restarted serve more than once: {repairs}")
    drill.recover(rec, t, old_pid=pid, new_pid=False, t_from=t_clear)
    rec.recovery_s = fast_s  # recovered: running at its usual rate once the switch is off
