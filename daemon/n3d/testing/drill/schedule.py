"""The drill's schedule: warm-up faults, shuffled rounds of every kind, a quiet tail.

:func:`run_drill` makes a temp home and a :class:`~.drill.Drill`, starts n3d and the
client load, injects the warm-up faults (n3d's SIGKILL first, before the leak
baseline), then rounds of every fault kind in a seeded random order with random gaps
(one round if ``short``, else until the duration is nearly spent), waits for the late
checks, lets the load run quietly for the last leak samples, SIGTERMs n3d and
evaluates the invariants. A drill that raised still gets its checks; the home is
removed only when every invariant held (or kept with ``keep_home``).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from n3d.client import DaemonUnreachable, RpcError
from n3d.testing.drill.bounds import (
    FRAME_TIMEOUT_S,
    RECOVERY_BOUND_S,
    REQUEST_BOUND_S,
    ROUND_KINDS,
    WARMUP_KINDS,
    WARMUP_KINDS_SHORT,
)
from n3d.testing.drill.checks import evaluate, group_members
from n3d.testing.drill.drill import Drill
from n3d.testing.drill.faults import FAULTS
from n3d.testing.drill.load import start_load
from n3d.testing.drill.records import DrillResult, FaultRecord

__all__ = ["run_drill"]


def run_drill(
    duration_s: float = 240.0,
    seed: int | None = None,
    *,
    short: bool = False,
    keep_home: bool = False,
    progress: Callable[[str], None] | None = None,
    proxy_clients: int = 0,
    servers: int = 1,
) -> DrillResult:
    """Run the drill (``short``: each fault kind once, short gaps); the result.

    ``proxy_clients`` above 0 turns n3d's proxy on and streams generates through it
    from that many clients while the faults run (:mod:`.streams`). ``servers`` above 1
    runs that many ``[[servers]]`` (simulators) under n3d, each fault aimed at one of
    them picked at random, every invariant judged per server (:mod:`.isolation`)."""
    seed = random.randrange(1 << 30) if seed is None else seed
    home = Path(tempfile.mkdtemp(prefix="n3dd", dir="/tmp"))
    say = progress or (lambda _msg: None)
    drill = Drill(home, seed, short, say, proxy_clients=proxy_clients, servers=servers)
    crashed: str | None = None
    try:
        run_schedule(drill, duration_s)
    except Exception as exc:  # keep going to the checks; the result says what happened
        crashed = f"{type(exc).__name__}: {exc}"
    finally:
        exit_code, left = finish(drill)
        drill.d.cleanup()
    result = evaluate(drill, seed, exit_code, left, crashed)
    if result.ok and not keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return result


def inject(drill: Drill, kind: str) -> None:
    """Inject one fault of ``kind`` (once the daemon has settled) and record it."""
    rec = FaultRecord(kind, round(drill.now(), 2))
    drill.faults.append(rec)
    if drill.fleet is not None:
        drill.target = drill.rng.choice(drill.names)
        rec.detail["server"] = drill.target
    try:
        if kind not in ("burst", "bad_frames") and not drill.settled():
            rec.fail(f"not settled before the fault: {drill.describe_state()}")
            return
        drill.say(f"{drill.now():7.1f}s  {kind}" + (f" ({drill.target})" if drill.fleet else ""))
        FAULTS[kind](drill, rec)
    except (DaemonUnreachable, RpcError, OSError) as exc:
        rec.fail(f"drill step failed: {exc!r}")
    finally:
        rec.ended_s = round(drill.now(), 2)


def run_schedule(drill: Drill, duration_s: float) -> None:
    """Start n3d and the load, then inject the warm-up faults and the rounds."""
    drill.d.start()
    drill.d.wait_ready(within_s=RECOVERY_BOUND_S)
    start_load(drill)
    gap = (0.2, 0.6) if drill.short else (1.0, 4.0)
    warmup = [k for k in (WARMUP_KINDS_SHORT if drill.short else WARMUP_KINDS) if k in drill.kinds]
    for kind in warmup:
        inject(drill, kind)
        time.sleep(drill.rng.uniform(*gap))
    drill.settled()
    drill.phase = "measured"
    tail = 3.5 if drill.short else 12.0
    round_no = 0
    while round_no == 0 or (not drill.short and drill.now() < duration_s - tail - 30):
        order = [kind for kind in ROUND_KINDS if kind in drill.kinds]
        drill.rng.shuffle(order)
        for kind in order:
            inject(drill, kind)
            time.sleep(drill.rng.uniform(*gap))
        round_no += 1
    for thread in drill.late_checks:
        thread.join(FRAME_TIMEOUT_S + 2 * REQUEST_BOUND_S)
    drill.settled()
    drill.phase = "tail"
    time.sleep(tail)  # quiet load only, for the last leak samples


def finish(drill: Drill) -> tuple[int | None, list[int]]:
    """Stop the load, SIGTERM n3d; its exit code and what its groups left behind."""
    drill.stop.set()
    for thread in drill.threads:
        thread.join(REQUEST_BOUND_S + 2)
    drill.close_control()
    code = None
    with contextlib.suppress(Exception):
        code = drill.d.stop(within_s=30)
    left = [p for g in drill.d.spawned_groups() for p in group_members(g)]
    return code, left
