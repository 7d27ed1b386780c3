"""Faults against n3d itself: SIGHUP reloads (a changed, then an invalid config), SIGKILL.

:func:`sighup` rewrites the config file and checks that a valid change is applied at
once and an invalid one is refused (``config.reload_failed``) with the old settings
kept. :func:`n3d_kill` SIGKILLs n3d, marks the down window (so requests it cuts are not
failures), starts a new n3d on the same home and checks that it reports stopping the
orphaned serve group and runs again with the warm model loaded.
"""

from __future__ import annotations

import os
import signal
import time

from n3d.testing.drill.bounds import (
    CONFIG_A,
    CONFIG_B,
    INVALID_CONFIG_LINE,
    RECOVERY_BOUND_S,
    REQUEST_BOUND_S,
)
from n3d.testing.drill.checks import group_members
from n3d.testing.drill.drill import Drill, poll
from n3d.testing.drill.records import FaultRecord


def sighup(drill: Drill, rec: FaultRecord) -> None:
    """Reload a changed config (applied at once), then an invalid one (kept the old)."""
    current = drill.call("config.get")["values"]["ollama"]
    nxt = CONFIG_B if current["health_check_interval"] == 1 else CONFIG_A
    drill.config = {**drill.base, **nxt}
    drill.d.write_config(drill.config)
    t = time.monotonic()
    os.kill(drill.d.pid, signal.SIGHUP)
    want = nxt["ollama"]

    def applied() -> bool:
        got = drill.call("config.get")["values"]["ollama"]
        return all(got[k] == v for k, v in want.items())

    if not poll(applied, REQUEST_BOUND_S):
        rec.fail(f"config {want} not applied after SIGHUP")
    rec.recovery_s = round(time.monotonic() - t, 3)
    offset = drill.log_size()
    with drill.d.config_path.open("a") as f:
        f.write(INVALID_CONFIG_LINE)
    os.kill(drill.d.pid, signal.SIGHUP)
    failed = poll(lambda: drill.log_events("config.reload_failed", offset), REQUEST_BOUND_S)
    if not failed:
        rec.fail("no config.reload_failed after an invalid config")
    else:
        rec.detail["reload_failed"] = failed[0].get("error", "")[:160]
    if not applied():
        rec.fail("the invalid config changed the running settings")
    if drill.status()["server"]["state"] not in ("running", "degraded"):
        rec.fail(f"after the invalid reload: {drill.describe_state()}")
    # Leave a valid file behind (n3d is restarted from it) and in force.
    drill.d.write_config(drill.config)
    offset = drill.log_size()
    os.kill(drill.d.pid, signal.SIGHUP)
    if not poll(lambda: drill.log_events("config.reloaded", offset), REQUEST_BOUND_S):
        rec.fail("the restored config was not reloaded")


def n3d_kill(drill: Drill, rec: FaultRecord) -> None:
    """SIGKILL n3d; the next n3d must stop every server's orphaned serve group and run again."""
    olds = {srv["name"]: srv["pid"] for srv in drill.servers()}
    old = olds[drill.target] if drill.fleet is not None else drill.status()["server"]["pid"]
    rec.detail["orphan_group"] = old
    rec.detail["orphan_members"] = group_members(old)
    if drill.fleet is not None:
        rec.detail["orphan_groups"] = olds
    drill.close_control()
    t = time.monotonic()
    drill.down.begin()
    drill.d.kill()
    offset = drill.log_size()
    drill.kill_offsets.append(offset)
    drill.d.start()
    if not poll(lambda: drill.call("status"), RECOVERY_BOUND_S):
        rec.fail(f"n3d did not answer again: {drill.d.describe()}")
        drill.down.end()
        return
    drill.down.end()
    rec.detail["socket_back_s"] = round(time.monotonic() - t, 3)
    drill.recover(rec, t, old_pid=old, new_pid=True)
    stopped_all = []
    for name, pid in olds.items():
        found = [e for e in drill.log_events("orphan.found", offset) if e.get("pid") == pid]
        stopped = [e for e in drill.log_events("orphan.stopped", offset) if e.get("pid") == pid]
        stopped_all.append(stopped[0].get("processes") if stopped else None)
        if not found or not stopped:
            rec.fail(f"the new n3d did not report stopping {name}'s orphan {pid}")
    rec.detail["orphan_stopped"] = stopped_all[0] if len(stopped_all) == 1 else stopped_all
