"""The invariant checks: processes left in a group, the JSON log, state edges, leaks.

:func:`evaluate` turns a finished :class:`~.drill.Drill` into its
:class:`~.records.DrillResult` with one :class:`~.records.Invariant` verdict each: the
drill completed, every request answered in time, every fault recovered (and every kind
injected), no process outlived its group's stop (:func:`group_members`), n3d exited 0,
the warm model came back, no proxied request failed (:func:`stream_verdict`, with the
proxy on), no fd or RSS growth (:func:`leak_verdict`), every log line is
a JSON object (:func:`check_log`), and every ``server.state`` edge is allowed
(:func:`check_transitions`).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import psutil

from n3d.state import TRANSITIONS, ServerState
from n3d.testing import DaemonProcess
from n3d.testing.drill.bounds import (
    FD_TOLERANCE,
    RECOVERY_BOUND_S,
    RSS_TOLERANCE_BYTES,
    RSS_TOLERANCE_FRACTION,
)
from n3d.testing.drill.isolation import bystander_edges, per_server_events
from n3d.testing.drill.records import DrillResult, FaultRecord, Invariant, LeakSample
from n3d.testing.drill.streams import KILLS_RUNNER, KILLS_SERVE, StreamTally
from n3d.testing.drill.tally import Stats


class FinishedDrill(Protocol):
    """What :func:`evaluate` reads of a finished :class:`~.drill.Drill`.

    The drill imports this module (:func:`group_members`), so this one names what
    it needs instead of importing the drill back: no import circle.
    """

    home: Path
    short: bool
    d: DaemonProcess
    stats: Stats
    faults: list[FaultRecord]
    samples: list[LeakSample]
    kill_offsets: list[int]
    proxy_clients: int
    streams: StreamTally
    names: tuple[str, ...]
    t0_wall: float
    kinds: tuple[str, ...]

    def now(self) -> float: ...


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
    return found


def check_log(log: Path, kill_offsets: list[int]) -> tuple[int, list[str], int]:
    """(lines, bad lines, lines cut by n3d's SIGKILL) of the JSON log."""
    bad, cut, pos, lines = [], 0, 0, 0
    for raw in log.read_bytes().splitlines(keepends=True):
        start, pos = pos, pos + len(raw)
        lines += 1
        try:
            entry = json.loads(raw)
            ok = isinstance(entry, dict) and list(entry)[:4] == [
                "timestamp",
                "level",
                "logger",
                "event",
            ]
        except ValueError:
            ok = False
        if ok:
            continue
        if any(start < off <= pos for off in kill_offsets):
            cut += 1
        else:
            bad.append(raw[:200].decode(errors="replace"))
    return lines, bad, cut


def check_transitions(events: list[dict[str, Any]]) -> list[str]:
    """Edges not in TRANSITIONS, or not starting where the last one ended.

    ``events`` are the log's ``n3d.starting`` and ``server.state`` entries in order:
    each n3d starts from ``stopped``.
    """
    problems, last = [], None
    for e in events:
        if e["event"] == "n3d.starting":
            last = "stopped"
            continue
        src, dst = e.get("from"), e.get("to")
        try:
            allowed = ServerState(str(dst)) in TRANSITIONS[ServerState(str(src))]
        except ValueError:
            allowed = False
        if not allowed:
            problems.append(f"{src} → {dst} is not an edge ({e.get('reason')})")
        if last is not None and src != last:
            problems.append(f"{src} → {dst} follows a transition to {last}")
        last = dst
    return problems


def leak_verdict(samples: list[LeakSample]) -> tuple[bool, str]:
    """(ok, detail): the median fds and RSS of the first and last samples after the warm-up."""
    measured = [s for s in samples if s.phase in ("measured", "tail")]
    if len(measured) < 4:
        return False, f"only {len(measured)} samples after the warm-up"
    if len({s.pid for s in measured}) != 1:
        return False, "n3d's pid changed after the warm-up"
    k = 3 if len(measured) >= 8 else 2
    base, end = measured[:k], measured[-k:]
    fds0, fds1 = statistics.median(s.fds for s in base), statistics.median(s.fds for s in end)
    rss0 = statistics.median(s.rss_bytes for s in base)
    rss1 = statistics.median(s.rss_bytes for s in end)
    rss_allowed = max(RSS_TOLERANCE_BYTES, rss0 * RSS_TOLERANCE_FRACTION)
    ok = fds1 - fds0 <= FD_TOLERANCE and rss1 - rss0 <= rss_allowed
    detail = (
        f"fds {fds0:g} → {fds1:g} (tolerance +{FD_TOLERANCE}), rss {rss0 / 2**20:.1f} → "
        f"{rss1 / 2**20:.1f} MiB (tolerance +{rss_allowed / 2**20:.1f})"
    )
    return ok, detail


def stream_verdict(drill: FinishedDrill) -> tuple[dict[str, int], str]:
    """The proxied requests by outcome, and the invariant's detail.

    A stream cut after it began is excused only while a fault that ends serve or a
    runner was under way (from its injection to a second after its injector returned),
    and Ollama's 500 for a request whose hung runner n3d replaced only while a runner
    hung.
    """

    def windows(kinds: frozenset[str]) -> list[tuple[float, float]]:
        return [
            (f.at_s, (f.ended_s if f.ended_s is not None else drill.now()) + 1.0)
            for f in drill.faults
            if f.kind in kinds
        ]

    outcomes = drill.streams.judged(windows(KILLS_SERVE), windows(KILLS_RUNNER))
    counts = drill.streams.summary(outcomes)
    counts["retried"] = sum(1 for e in drill.d.events("request") if e.get("retried"))
    failures = [f"{o.kind}@{o.sent_s}s: {o.detail}" for o in outcomes if o.kind == "failed"]
    detail = (
        f"{counts['sent']} sent, {counts['ok']} ok, {counts['cut']} begun streams cut "
        f"({counts['cut_serve']} by serve's end, {counts['cut_runner']} by a runner's), "
        f"{counts['runner_killed']} not begun when n3d replaced their hung runner (500), "
        f"{counts['retried']} retried, {counts['lost_to_n3d_kill']} lost to n3d kill, "
        f"{counts['failed']} failed" + (f"; first: {failures[:3]}" if failures else "")
    )
    return counts, detail


def evaluate(
    drill: FinishedDrill, seed: int, exit_code: int | None, left: list[int], crashed: str | None
) -> DrillResult:
    """The finished drill's result, with a verdict on every invariant."""
    inv: list[Invariant] = []

    def check(name: str, ok: bool, detail: str) -> None:
        inv.append(Invariant(name, ok, detail))

    check("drill completed", crashed is None, crashed or "every step ran")
    stats = drill.stats
    failed = sum(m.failed for m in stats.methods.values())
    lost = sum(m.lost_to_n3d_kill for m in stats.methods.values())
    sent = sum(m.sent for m in stats.methods.values())
    check(
        "every request answered in time",
        failed == 0 and not stats.failures,
        f"{sent} sent, {failed} failed, {lost} lost to n3d kill"
        + (f"; first: {stats.failures[:3]}" if stats.failures else ""),
    )
    bad_faults = [f"{f.kind}@{f.at_s}s: {'; '.join(f.problems)}" for f in drill.faults if not f.ok]
    check(
        "every fault recovered",
        not bad_faults,
        f"{len(drill.faults)} faults" + (f"; {bad_faults[:4]}" if bad_faults else ""),
    )
    kinds = {f.kind for f in drill.faults}
    expected = set(drill.kinds)
    check("every fault kind injected", expected <= kinds, f"missing {sorted(expected - kinds)}")
    group_problems = [p for f in drill.faults for p in f.problems if "group" in p or "orphan" in p]
    check(
        "no process outlives its group's stop",
        not group_problems and not left,
        f"left after n3d's SIGTERM: {left}; {group_problems[:3]}"
        if left or group_problems
        else f"{len(drill.d.spawned_groups())} groups spawned, none left",
    )
    check("n3d exits 0 on SIGTERM", exit_code == 0, f"exit code {exit_code}")
    warm_fail = [
        f"{f.kind}@{f.at_s}s" for f in drill.faults if any("warm" in p for p in f.problems)
    ]
    check(
        "warm model reloaded after every disruption",
        not warm_fail,
        f"not within {RECOVERY_BOUND_S}s: {warm_fail}" if warm_fail else "every time",
    )
    streams: dict[str, int] = {}
    if drill.proxy_clients:
        streams, detail = stream_verdict(drill)
        check(
            "no proxied request fails, except streams begun when serve was killed",
            streams["failed"] == 0 and streams["ok"] > 0,
            detail,
        )
    ok, detail = leak_verdict(drill.samples)
    check("no fd or RSS growth", ok, detail)
    lines, bad, cut = check_log(drill.d.log, drill.kill_offsets)
    stderr = drill.d.stderr()
    check(
        "every log line is a JSON object",
        not bad and "Traceback" not in stderr,
        f"{lines} lines, {len(bad)} bad, {cut} cut by n3d's SIGKILL, "
        f"{len(stderr.splitlines())} stderr lines"
        + (f"; {bad[:3]}" if bad else "")
        + (f"; stderr: {stderr[-500:]}" if stderr else ""),
    )
    entries = [e for e in drill.d.events() if e.get("event") in ("n3d.starting", "server.state")]
    if len(drill.names) == 1:
        problems = check_transitions(entries)
    else:  # each server its own state machine
        by_server = per_server_events(entries, drill.names)
        problems = [f"{n}: {p}" for n, es in by_server.items() for p in check_transitions(es)]
        moved = bystander_edges(drill.faults, entries, drill.t0_wall)
        check(
            "a fault on one server never moves another",
            not moved,
            f"{sum(1 for f in drill.faults if 'server' in f.detail)} faults aimed at one of "
            f"{len(drill.names)} servers"
            + (f"; {moved[:3]}" if moved else "; no other server took an edge meanwhile"),
        )
    edges = Counter(f"{e['from']}→{e['to']}" for e in entries if e["event"] == "server.state")
    sub_bad = [
        f"{a}→{b}"
        for a, b, _ in stats.event_edges
        if ServerState(b) not in TRANSITIONS.get(ServerState(a), frozenset())
    ]
    check(
        "server.state history only takes allowed edges",
        not problems and not sub_bad,
        f"{sum(edges.values())} logged, {len(stats.event_edges)} received by the subscriber; "
        + (f"{problems[:3]} {sub_bad[:3]}" if problems or sub_bad else dict(edges).__repr__()),
    )
    return DrillResult(
        duration_s=round(drill.now(), 1),
        seed=seed,
        short=drill.short,
        faults=drill.faults,
        requests={k: v.summary() for k, v in sorted(stats.methods.items())},
        events_received=dict(stats.events),
        leak_samples=drill.samples,
        invariants=inv,
        failures=stats.failures,
        home=str(drill.home),
        streams=streams,
    )
