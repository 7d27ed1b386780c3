"""The fault injectors, by kind: against serve, against n3d, on pulls, on the wire, and on
the inference path (while `GET /` answers).

``FAULTS`` maps each fault kind the schedule injects to its injector, a function of
the :class:`~..drill.Drill` and the fault's :class:`~..records.FaultRecord` that
injects once, waits for recovery and records times, details and problems on the
record (raising only for a step that could not be taken at all).
"""

from __future__ import annotations

from collections.abc import Callable

from n3d.testing.drill.bounds import FAULT_KINDS
from n3d.testing.drill.drill import Drill
from n3d.testing.drill.faults.daemon import n3d_kill, sighup
from n3d.testing.drill.faults.inference import hang_inference, hang_runner, slow, wedge_unload
from n3d.testing.drill.faults.pulls import fail_pulls, pulls
from n3d.testing.drill.faults.serve import poisoned_json, serve_kill, sigstop, sim_hang
from n3d.testing.drill.faults.wire import bad_frames, burst
from n3d.testing.drill.records import FaultRecord

__all__ = ["FAULTS"]

FAULTS: dict[str, Callable[[Drill, FaultRecord], None]] = {
    "n3d_kill": n3d_kill,
    "serve_kill": serve_kill,
    "sigstop": sigstop,
    "sim_hang": sim_hang,
    "fail_pulls": fail_pulls,
    "pulls": pulls,
    "burst": burst,
    "bad_frames": bad_frames,
    "sighup": sighup,
    "poisoned_json": poisoned_json,
    "hang_inference": hang_inference,
    "hang_runner": hang_runner,
    "wedge_unload": wedge_unload,
    "slow": slow,
}
assert tuple(FAULTS) == FAULT_KINDS, "bounds.FAULT_KINDS names every injector, in order"
