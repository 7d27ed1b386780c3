"""The drill's report: the plain-text tables :func:`render` prints (``--json`` prints
:meth:`~.records.DrillResult.to_json` instead).

Faults per kind with recovery and warm-again times, details worth reading (burst
outcomes, the held half frame, orphans stopped after n3d's SIGKILL, downloads per
pulled model), requests per method, the generates through the proxy by outcome, the
events the subscriber received, a thinned series of leak samples, the invariants with
PASS or FAIL, and what failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from n3d.testing.drill.bounds import BURST
from n3d.testing.drill.records import DrillResult, FaultRecord, fault_summary

__all__ = ["render"]


def _table(header: list[str], rows: list[list[Any]]) -> Iterator[str]:
    cells = [header] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        yield "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        if n == 0:
            yield "  ".join("-" * w for w in widths)


def _details(faults: list[FaultRecord]) -> Iterator[str]:
    bursts = [f.detail for f in faults if f.kind == "burst"]
    if bursts:
        total = Counter[str]()
        for b in bursts:
            total.update({k: v for k, v in b.items() if isinstance(v, int)})
        yield (
            f"burst ×{len(bursts)} of {BURST} connections: "
            + ", ".join(f"{k} {v}" for k, v in sorted(total.items()))
            + " (busy: -32000 reply; closed: closed without a reply)"
        )
    held = [f.detail["half_frame_held"]["after_s"] for f in faults if "half_frame_held" in f.detail]
    if held:
        yield f"half frame held open: closed with -32700 after {min(held)}–{max(held)} s"
    for f in faults:
        if f.kind == "n3d_kill":
            yield (
                f"n3d SIGKILL: orphan group {f.detail.get('orphan_group')} "
                f"({len(f.detail.get('orphan_members', []))} processes) stopped by the next "
                f"n3d ({f.detail.get('orphan_stopped')}); socket back after "
                f"{f.detail.get('socket_back_s')} s"
            )
    pulls = [f.detail for f in faults if f.kind == "pulls" and "downloads" in f.detail]
    if pulls:
        yield (
            f"pulls: {sum(p['downloads'] for p in pulls)} /api/pull downloads for "
            f"{sum(len(p['models']) for p in pulls)} models pulled by "
            f"{sum(len(p['models']) + 2 for p in pulls)} callers"
        )
    cut = [f.detail["pull_outcome"] for f in faults if "pull_outcome" in f.detail]
    if cut:
        yield f"pulls cut by a serve SIGKILL ended: {Counter(c[0] for c in cut if c)}"


def render(result: DrillResult) -> str:
    out = [
        f"n3d fault drill: {result.duration_s}s, seed {result.seed}"
        f"{' (short)' if result.short else ''}",
        "",
        "Faults (times in seconds)",
    ]
    rows = [
        [
            k,
            s["injected"],
            s["failed"],
            s["recovery_median_s"],
            s["recovery_max_s"],
            s["warm_median_s"],
            s["warm_max_s"],
        ]
        for k, s in fault_summary(result.faults).items()
    ]
    out += _table(["fault", "n", "failed", "recover p50", "max", "warm again p50", "max"], rows)
    out += [
        "  recover: to running again (serve faults; sim_hang from the switch's clearing),",
        "  to a good pull (fail_pulls), to every burst connection's outcome, to a reload",
        "  applied (sighup); warm again: injection to the warm model loaded again",
    ]
    out += ["", "Details"] + [f"  {line}" for line in _details(result.faults)]
    out += ["", "Requests"]
    rows = [
        [
            m,
            s["sent"],
            s["ok"],
            " ".join(f"{c}:{n}" for c, n in s["errors"].items()) or "",
            s["failed"],
            s["lost_to_n3d_kill"],
            s["unavailable"],
            s["p50_ms"],
            s["max_ms"],
        ]
        for m, s in result.requests.items()
    ]
    out += _table(
        [
            "method",
            "sent",
            "ok",
            "errors (code:n)",
            "failed",
            "lost to kill",
            "unavailable",
            "p50 ms",
            "max ms",
        ],
        rows,
    )
    if result.streams:
        out += [
            "",
            "Generates through the proxy: "
            + ", ".join(f"{k} {v}" for k, v in result.streams.items())
            + " (cut: began, then ended with an in-stream error while serve or its runner"
            " was killed)",
        ]
    out += [
        "",
        "Events received by the subscriber: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.events_received.items())),
    ]
    out += ["", "Leak samples (n3d)"]
    samples = result.leak_samples
    step = max(1, len(samples) // 16)
    shown = samples[::step] + (
        [samples[-1]] if samples and samples[-1] is not samples[::step][-1] else []
    )
    out += _table(
        ["t s", "pid", "fds", "rss MiB", "phase"],
        [[s.t_s, s.pid, s.fds, f"{s.rss_bytes / 2**20:.1f}", s.phase] for s in shown],
    )
    out += ["", "Invariants"]
    out += [f"  {'PASS' if i.ok else 'FAIL'}  {i.name}: {i.detail}" for i in result.invariants]
    bad = [f for f in result.faults if not f.ok]
    if bad:
        out += ["", "Failed faults"] + [f"  {f.kind}@{f.at_s}s: {f.problems}" for f in bad]
    if result.failures:
        out += ["", "Request failures (first 10)"] + [f"  {f}" for f in result.failures[:10]]
    if not result.ok:
        out += ["", f"Kept for inspection: {result.home}"]
    return "\n".join(out)
