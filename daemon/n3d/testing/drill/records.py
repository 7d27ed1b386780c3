"""What a drill records and returns: per-method request stats, fault records, leak samples.

:class:`DrillResult` is what :func:`run_drill` returns and ``--json`` prints (via
:meth:`DrillResult.to_json`); it holds one :class:`FaultRecord` per injected fault (its
recovery and warm-again times, details and problems), a :class:`MethodStats` summary per
RPC method, the :class:`LeakSample` series of n3d's fds and RSS, and the
:class:`Invariant` verdicts. :func:`fault_summary` condenses the faults per kind.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class MethodStats:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # documented error code → count
    failed: int = 0  # no reply in time, undocumented code, connection lost while n3d ran
    lost_to_n3d_kill: int = 0  # sent, then n3d was SIGKILLed before it answered
    unavailable: int = 0  # could not connect while n3d was down (never sent)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(sorted(self.errors.items())),
            "failed": self.failed,
            "lost_to_n3d_kill": self.lost_to_n3d_kill,
            "unavailable": self.unavailable,
            "p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
            "max_ms": round(lat[-1], 1) if lat else None,
        }


@dataclass
class FaultRecord:
    kind: str
    at_s: float  # since the drill started
    ok: bool = True
    ended_s: float | None = None  # since the drill started: the injector returned
    recovery_s: float | None = None  # injection (or switch cleared) → recovered
    warm_s: float | None = None  # injection → warm model loaded again
    detail: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


@dataclass
class LeakSample:
    t_s: float
    pid: int
    fds: int
    rss_bytes: int
    phase: str  # warmup | measured | tail


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str


@dataclass
class DrillResult:
    duration_s: float
    seed: int
    short: bool
    faults: list[FaultRecord]
    requests: dict[str, dict[str, Any]]
    events_received: dict[str, int]
    leak_samples: list[LeakSample]
    invariants: list[Invariant]
    failures: list[str]  # individual request failures (capped)
    home: str
    # Proxied generates by outcome (ok, cut, lost_to_n3d_kill, unavailable, failed,
    # cut_serve, cut_runner, retried); empty when the drill ran without the proxy.
    streams: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(inv.ok for inv in self.invariants)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        doc["fault_summary"] = fault_summary(self.faults)
        return doc


def fault_summary(faults: list[FaultRecord]) -> dict[str, dict[str, Any]]:
    """Per fault kind: count, failures, recovery and warm-again times (median, max)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(f.kind for f in faults):
        these = [f for f in faults if f.kind == kind]
        rec = [f.recovery_s for f in these if f.recovery_s is not None]
        warm = [f.warm_s for f in these if f.warm_s is not None]
        out[kind] = {
            "injected": len(these),
            "failed": sum(not f.ok for f in these),
            "recovery_median_s": round(statistics.median(rec), 3) if rec else None,
            "recovery_max_s": round(max(rec), 3) if rec else None,
            "warm_median_s": round(statistics.median(warm), 3) if warm else None,
            "warm_max_s": round(max(warm), 3) if warm else None,
        }
    return out
