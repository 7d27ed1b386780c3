"""Faults against serve, the process n3d supervises: SIGKILL, SIGSTOP, a hung simulator,
poisoned JSON.

Each injector takes the :class:`~..drill.Drill` and the fault's record, injects once
and waits (:meth:`~..drill.Drill.recover`) for running again, the old serve's process
group empty, and the warm model loaded. Variants alternate between injections: every
other serve kill has a pull running, which must end with a documented outcome; a
SIGSTOP or a hang is lifted either once n3d notices it or only after n3d replaces serve.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from n3d.client import RpcError
from n3d.testing.drill.bounds import PULLABLE, RECOVERY_BOUND_S, REQUEST_BOUND_S
from n3d.testing.drill.drill import Drill, poll
from n3d.testing.drill.faults.pulls import pull
from n3d.testing.drill.records import FaultRecord


def serve_kill(drill: Drill, rec: FaultRecord) -> None:
    """SIGKILL serve (every other time with a pull running: it must end, documented)."""
    pid = drill.status()["server"]["pid"]
    pulling: list[str] = []
    puller = None
    if sum(f.kind == "serve_kill" for f in drill.faults) % 2 == 0:
        model = PULLABLE[drill.pull_round % len(PULLABLE)]
        drill.pull_round += 1
        rec.detail["pull_during_kill"] = model
        offset = drill.log_size()
        puller = threading.Thread(
            target=lambda: pulling.append(pull(drill, model, targeted=True)[0])
        )
        puller.start()
        poll(lambda: drill.log_events("pull.started", offset), REQUEST_BOUND_S)
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    drill.recover(rec, t, old_pid=pid, new_pid=True)
    if puller is not None:
        puller.join(REQUEST_BOUND_S * 2)
        rec.detail["pull_outcome"] = pulling
        if not pulling or pulling[0] not in ("ok", "1001", "1004", "1010"):
            rec.fail(f"pull cut by the serve kill ended {pulling or 'never'}")
        if pulling != ["ok"]:
            drill.partial.add(rec.detail["pull_during_kill"])
        drill.delete_models([rec.detail["pull_during_kill"]])


def sigstop(drill: Drill, rec: FaultRecord) -> None:
    """SIGSTOP serve. Odd drills: SIGCONT once n3d says degraded (no restart needed);
    even ones: leave it stopped until n3d has replaced it, then SIGCONT (harmless)."""
    brief = sum(f.kind == "sigstop" for f in drill.faults) % 2 == 0
    rec.detail["variant"] = "brief" if brief else "until_replaced"
    pid = drill.status()["server"]["pid"]
    t = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        if brief:
            seen = poll(lambda: drill.status()["server"]["state"] != "running", RECOVERY_BOUND_S)
            if not seen:
                rec.fail("n3d never noticed a stopped serve")
            os.kill(pid, signal.SIGCONT)
            drill.recover(rec, t, old_pid=pid, new_pid=False)
        else:
            drill.recover(rec, t, old_pid=pid, new_pid=True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def sim_hang(drill: Drill, rec: FaultRecord) -> None:
    """The simulator stops answering. Odd drills: answer again once n3d says degraded;
    even ones: only after n3d has decided to restart it (state stopping)."""
    brief = sum(f.kind == "sim_hang" for f in drill.faults) % 2 == 1
    rec.detail["variant"] = "brief" if brief else "until_restart"
    pid = drill.status()["server"]["pid"]
    t = time.monotonic()
    drill.overrides["hang"] = True
    drill.write_control()
    try:
        target = ("degraded", "stopping") if brief else ("stopping", "backoff", "starting")
        seen = poll(lambda: drill.status()["server"]["state"] in target, RECOVERY_BOUND_S)
        if not seen:
            rec.fail(f"never reached {target}: {drill.describe_state()}")
    finally:
        drill.overrides.pop("hang", None)
        drill.write_control()
    t_clear = time.monotonic()
    drill.recover(rec, t, old_pid=pid, new_pid=not brief, t_from=t_clear)


def _list_outcome(drill: Drill) -> str:
    """A fresh `models.list` (not the cache): "ok" or the error code."""
    try:
        drill.call("models.list", {"refresh": True, **(drill.scoped() or {})})
    except RpcError as exc:
        return str(exc.code)
    return "ok"


def poisoned_json(drill: Drill, rec: FaultRecord) -> None:
    """The simulator answers /api/tags with a 1e400 size and /api/ps nested 100 000 deep
    (whoever binds Ollama's port can): `models.list` is 1010 while it lasts, then lists."""
    pid = drill.status()["server"]["pid"]
    t = time.monotonic()
    drill.overrides["poison"] = True
    drill.write_control()
    try:
        if not poll(lambda: _list_outcome(drill) == "1010", REQUEST_BOUND_S, 0.2):
            rec.fail(f"models.list never answered 1010 to poisoned JSON: {drill.describe_state()}")
    finally:
        drill.overrides.pop("poison", None)
        drill.write_control()
    t_clear = time.monotonic()
    if not poll(lambda: _list_outcome(drill) == "ok", RECOVERY_BOUND_S, 0.2):
        rec.fail("models.list still failing once the answers were sane")
    drill.recover(rec, t, old_pid=pid, new_pid=False, t_from=t_clear)
