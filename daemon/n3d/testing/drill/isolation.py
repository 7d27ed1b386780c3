"""Per-server invariants of a drill with several ``[[servers]]``.

Each server has its own state machine: its ``server.state`` history (log lines bound
with ``server``) must take only allowed edges and start where its last one ended
(:func:`per_server_transitions`). A fault aimed at one server never moves another:
no other server logs a ``server.state`` edge while it runs, except for the faults
that hit n3d itself (:data:`DAEMON_WIDE`: n3d's SIGKILL restarts every server)
(:func:`bystander_edges`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from n3d.testing.drill.records import FaultRecord

__all__ = ["DAEMON_WIDE", "bystander_edges", "per_server_events", "when"]

DAEMON_WIDE = frozenset({"n3d_kill"})


def when(entry: dict[str, Any], t0_wall: float) -> float:
    """A log line's time in drill seconds (its ``timestamp`` is ISO wall clock)."""
    stamp = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))
    return stamp.timestamp() - t0_wall


def per_server_events(
    entries: list[dict[str, Any]], names: tuple[str, ...]
) -> dict[str, list[dict[str, Any]]]:
    """Each server's ``n3d.starting`` and ``server.state`` lines, in order (every server
    starts from ``stopped`` with each n3d)."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for e in entries:
        if e["event"] == "n3d.starting":
            for events in out.values():
                events.append(e)
        elif e.get("server") in out:
            out[str(e["server"])].append(e)
    return out


def bystander_edges(
    faults: list[FaultRecord], entries: list[dict[str, Any]], t0_wall: float
) -> list[str]:
    """Edges of a server that a fault aimed at another server was running beside."""
    problems = []
    edges = [(when(e, t0_wall), e) for e in entries if e["event"] == "server.state"]
    for f in faults:
        target = f.detail.get("server")
        if target is None or f.kind in DAEMON_WIDE or f.ended_s is None:
            continue
        for t, e in edges:
            if f.at_s <= t <= f.ended_s and e.get("server") != target:
                problems.append(
                    f"{f.kind}@{f.at_s}s on {target} moved {e.get('server')}: "
                    f"{e.get('from')} → {e.get('to')} ({e.get('reason')})"
                )
    return problems
