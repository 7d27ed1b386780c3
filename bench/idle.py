"""Idle cost: n3d with one warm model beside supervisord with one program, over one window.

    .venv/bin/python bench/idle.py [--duration 60] [--settle 5] [--supervisor-bin DIR]

Both run at the same time, measured over the same window, so a machine that
gets busier hits both alike:

- ``n3d run --simulate`` (via :class:`n3d.testing.DaemonProcess`) with the
  default config (``fast=False``: ``health_check_interval = 30``, the default
  restart and stop settings, the simulator's own timings) and
  ``[warm] models = [MODEL]``, the model preloaded on disk with
  ``OLLAMA_SIM_MODELS_PRELOAD``. The window opens ``--settle`` seconds after
  `warm.list` first reports the model loaded. Logs go, as JSON at level info,
  to a file (as under systemd they go to the journal).
- ``supervisord`` (from the throwaway venv of :mod:`peers`, or
  ``--supervisor-bin``) supervising one ``sleep infinity``, with its control
  socket and log file.

For each, n3d's own process and supervisord's own (not their children): CPU
seconds (user+system, psutil; 10 ms resolution) over the window scaled to one
minute, and the same from the threads' on-CPU nanoseconds
(``/proc/PID/task/*/schedstat``: the precise figure when the ticks round to
zero), RSS and USS at the end, wakeups per second (voluntary + nonvoluntary
context switches summed over every thread in ``/proc/PID/task/*/status``),
threads and open fds at the end. Threads are polled every 0.5 s, so one born in
the window counts from zero and one that exits loses at most its last 0.5 s. The simulator
(serve + runner) is measured the same way, for information. Nothing here talks
to either daemon during the window.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil
from peers import supervisord

from n3d.testing import DaemonProcess, wait_until

MIB = 1024 * 1024
AIM_CPU_S_PER_MIN = 0.1
AIM_RSS_MIB = 50.0
POLL_S = 0.5


def _threads(pid: int) -> dict[int, tuple[int, int]]:
    """Per thread of ``pid``: (voluntary + nonvoluntary context switches, on-CPU ns)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # exited between the listing and the read
        out[int(tid)] = (switches, run_ns)
    return out


class Meter:
    """CPU time and context switches of a changing set of processes, polled from /proc.

    A process or thread first seen after the first poll was born in the window
    and counts from zero.
    """

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._procs: dict[int, psutil.Process] = {}
        self._cpu: dict[int, tuple[float, float]] = {}  # pid -> (first, last) CPU seconds
        # (pid, tid) -> (first switches, first ns, last switches, last ns)
        self._tasks: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._polls = 0
        self.started = self.ended = 0.0

    def poll(self) -> None:
        first = self._polls == 0
        now = time.monotonic()
        if first:
            self.started = now
        self.ended = now
        self._polls += 1
        for pid in self._pids():
            try:
                proc = self._procs.get(pid) or self._procs.setdefault(pid, psutil.Process(pid))
                times = proc.cpu_times()
            except psutil.Error:
                continue
            cpu = times.user + times.system
            start = self._cpu.get(pid, (cpu if first else 0.0, 0.0))[0]
            self._cpu[pid] = (start, cpu)
            for tid, (switches, run_ns) in _threads(pid).items():
                was = self._tasks.get((pid, tid))
                if was is None:
                    was = (switches, run_ns, 0, 0) if first else (0, 0, 0, 0)
                self._tasks[pid, tid] = (was[0], was[1], switches, run_ns)

    def result(self, label: str) -> Row:
        seconds = max(self.ended - self.started, 1e-9)
        cpu = sum(last - first for first, last in self._cpu.values())
        switches = sum(t[2] - t[0] for t in self._tasks.values())
        run_s = sum(t[3] - t[1] for t in self._tasks.values()) / 1e9
        rss = uss = threads = fds = 0
        for pid in self._pids():
            try:
                proc = self._procs.get(pid) or psutil.Process(pid)
                mem = proc.memory_full_info()
                rss, uss = rss + mem.rss, uss + mem.uss
                threads += proc.num_threads()
                fds += proc.num_fds()
            except psutil.Error:
                continue
        return Row(
            label,
            cpu * 60 / seconds,
            run_s * 60 / seconds,
            rss / MIB,
            uss / MIB,
            switches / seconds,
            threads,
            fds,
        )


@dataclass(frozen=True)
class Row:
    label: str
    cpu_s_per_min: float  # psutil user+system (clock ticks: 10 ms resolution)
    run_s_per_min: float  # schedstat on-CPU time (ns resolution)
    rss_mib: float
    uss_mib: float
    wakeups_per_s: float
    threads: int
    fds: int

    def cells(self) -> list[str]:
        return [
            self.label,
            f"{self.cpu_s_per_min:.3f}",
            f"{self.run_s_per_min:.4f}",
            f"{self.rss_mib:.1f}",
            f"{self.uss_mib:.1f}",
            f"{self.wakeups_per_s:.2f}",
            str(self.threads),
            str(self.fds),
        ]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def start_n3d(home: Path, model: str) -> DaemonProcess:
    """n3d with the default config (not the fast test one) and one warm model."""
    home.mkdir()
    daemon = DaemonProcess(
        home, config={"warm": {"models": [model]}}, fast=False, OLLAMA_SIM_MODELS_PRELOAD=model
    )
    daemon.env.pop("OLLAMA_SIM_REQUEST_LOG", None)  # a test aid, not part of an idle install
    return daemon.start()


def _warm_loaded(daemon: DaemonProcess) -> bool:
    rows = daemon.call("warm.list", timeout=5)["models"]
    return bool(rows) and all(row.get("loaded") for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured window, seconds")
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds between the model being warm and the window opening",
    )
    parser.add_argument("--model", default="llama3.2", help="the one warm model")
    parser.add_argument(
        "--supervisor-bin",
        type=Path,
        default=None,
        help="directory with supervisord (default: pip-install into a temp venv)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="n3i-", dir="/tmp") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        (tmp / "sv").mkdir()
        peer = stack.enter_context(
            supervisord(tmp / "sv", args.supervisor_bin, program="sleep infinity")
        )
        daemon = start_n3d(tmp / "d", args.model)
        stack.callback(daemon.cleanup)
        daemon.wait_ready(within_s=30)
        wait_until(lambda: _warm_loaded(daemon), 30, f"{args.model} warm")
        serve_pid = daemon.call("status")["server"]["pid"]
        time.sleep(args.settle)

        def sim_pids() -> list[int]:
            try:
                serve = psutil.Process(serve_pid)
                return [serve_pid, *(c.pid for c in serve.children(recursive=True))]
            except psutil.Error:
                return []

        meters = {"n3d": Meter(lambda: [daemon.pid]), "sim": Meter(sim_pids)}
        if peer is not None:
            meters["supervisord"] = Meter(lambda: [peer.proc.pid])
        deadline = time.monotonic() + args.duration
        while True:
            for meter in meters.values():
                meter.poll()
            if time.monotonic() >= deadline:
                break
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        n3d = meters["n3d"].result(f"n3d (1 warm model, {args.model})")
        sv = meters["supervisord"].result("supervisord (1 program)") if peer else None
        sim_count = len(sim_pids())
        sim = meters["sim"].result(f"simulator: serve + {sim_count - 1} runner (information)")
        still_warm = _warm_loaded(daemon)
        window = meters["n3d"].ended - meters["n3d"].started

    header = [
        "process",
        "CPU-s/min",
        "on-CPU s/min",
        "RSS MiB",
        "USS MiB",
        "wakeups/s",
        "threads",
        "fds",
    ]
    print(
        f"Idle cost over {window:.1f} s, both measured at the same time "
        f"({date.today()}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = [n3d, sv, sim] if sv else [n3d, sim]
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    if sv is not None:
        print(
            "| n3d / supervisord | "
            + " | ".join(
                [
                    _ratio(n3d.cpu_s_per_min, sv.cpu_s_per_min),
                    _ratio(n3d.run_s_per_min, sv.run_s_per_min),
                    _ratio(n3d.rss_mib, sv.rss_mib),
                    _ratio(n3d.uss_mib, sv.uss_mib),
                    _ratio(n3d.wakeups_per_s, sv.wakeups_per_s),
                    _ratio(n3d.threads, sv.threads),
                    _ratio(n3d.fds, sv.fds),
                ]
            )
            + " |"
        )
    else:
        print("\n(supervisord could not be started: no peer row)")
    if not still_warm:
        print(f"\nWARNING: {args.model} was no longer loaded at the end of the window")
    cpu_ok = n3d.cpu_s_per_min <= AIM_CPU_S_PER_MIN
    rss_ok = n3d.rss_mib <= AIM_RSS_MIB
    print(
        f'\n- Aim "≤ {AIM_CPU_S_PER_MIN} CPU-s per minute idle with one warm model": '
        f"**{'met' if cpu_ok else 'not met'}** ({n3d.cpu_s_per_min:.3f})."
    )
    print(
        f'- Aim "≤ {AIM_RSS_MIB:.0f} MiB RSS": **{"met" if rss_ok else "not met"}** '
        f"({n3d.rss_mib:.1f} MiB; USS {n3d.uss_mib:.1f} MiB)."
    )
    print(
        "- The issue's reference: supervisord with one program, 0.02 CPU-s and 19 MiB"
        + (f"; this run: {sv.cpu_s_per_min:.3f} CPU-s/min and {sv.rss_mib:.1f} MiB." if sv else ".")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
