"""Hostile batches on the control socket: n3d's memory and everyone else's `status`.

    .venv/bin/python bench/rpc_attack.py [--attackers 2] [--pollers 4] [--settle 3]
    /work/main/.venv/bin/python bench/rpc_attack.py   # the same attack on another checkout

Starts ``n3d run --simulate``, afresh for each scenario, from whichever n3d the
interpreter imports (:class:`n3d.testing.DaemonProcess`, default settings:
``max_message_bytes`` 1 MiB, 8 MiB of unread replies, 64 calls in flight per
connection), so one script measures a fix and the code before it. ``--pollers``
clients, connected before the attack, call ``status`` in a closed loop throughout;
n3d's RSS is sampled every 20 ms. The scenarios:

- ``discover``: ``--attackers`` connections each send one batch of ~20 000
  ``rpc.discover`` calls (just under 1 MiB; each answer is ~6.6 KB, so the whole
  reply would be ~133 MB) and read until the reply is complete or n3d closes.
- ``pulls``: one connection sends a batch of ~13 000 ``models.pull`` of one model
  whose download takes 10 minutes (the simulator's ``pull_seconds``), holds it for
  5 s, then hangs up.
- ``invalid``: one connection sends ``[1,1,…]`` (~524 000 invalid members, each
  answered ``-32600``) and reads until n3d closes.

Printed per scenario: RSS before, at its peak and ``--settle`` seconds after the
attackers left (MiB); the pollers' ``status`` p50, p99 and worst (ms) and failures
during the attack; what an attacker received (bytes, first error).

Measured 2026-12-06 on this 2-core machine (load ~0.3), one run each, main's code
(``/work/main/.venv/bin/python bench/rpc_attack.py``) then issue 13's:

    scenario  rss before  peak    after   status p50  p99      max      attacker got
    main
    discover  36.1        1599.4  320.9   47.6        2293.3   6351.6   the whole 130 MiB reply
    pulls     36.1        122.8   122.8   0.3         1.1      574.7    (hung up after 5 s)
    invalid   36.0        361.8   49.3    5.0         2222.6   2224.2   40.0 MiB of -32600
    issue 13
    discover  36.0        64.8    64.8    39.1        103.4    103.9    one -32000, then closed
    pulls     35.9        45.8    45.8    0.4         1.8      42.6     (hung up after 5 s)
    invalid   35.9        54.1    42.3    6.3         146.3    148.2    one -32000, then closed

RSS in MiB, latencies in ms; ``discover`` ran two attackers at once, each stopped when
its assembled reply reached the 8 MiB cap. What stays after ``discover`` is the allocator's
high-water mark, not a leak: five attacks in a row on one n3d held it at 52-56 MiB.
The remaining ``status`` delay is the parse of a 1 MiB message and the members run
before the cap is reached, all on the event loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from n3d.client import Connection
from n3d.testing import DaemonProcess

MIB = 1024 * 1024
LIMIT = 1_048_576  # n3d's default max_message_bytes
PULL_MODEL = "llama3.2:1b"


def batch_of(member: Callable[[int], bytes]) -> bytes:
    """The largest batch ``[member(0), member(1), …]`` that fits in one message."""
    parts: list[bytes] = []
    size = 2
    while size + len(member(len(parts))) + 1 < LIMIT - 16:
        parts.append(member(len(parts)))
        size += len(parts[-1]) + 1
    return b"[" + b",".join(parts) + b"]\n"


def discover_batch() -> bytes:
    return batch_of(lambda i: b'{"jsonrpc":"2.0","method":"rpc.discover","id":%d}' % i)


def pull_batch() -> bytes:
    return batch_of(
        lambda i: b'{"jsonrpc":"2.0","method":"models.pull","params":{"model":"%s"},"id":%d}'
        % (PULL_MODEL.encode(), i)
    )


def invalid_batch() -> bytes:
    return b"[" + b",".join(b"1" for _ in range((LIMIT - 4) // 2)) + b"]\n"


class Sampler(threading.Thread):
    """n3d's RSS every 20 ms, kept as (monotonic time, bytes)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                self.samples.append((time.monotonic(), self.proc.memory_info().rss))
            except psutil.Error:
                return

    def peak(self, since: float, until: float) -> int:
        return max((rss for t, rss in self.samples if since <= t <= until), default=0)

    def now(self) -> int:
        return int(self.proc.memory_info().rss)


class Poller(threading.Thread):
    """``status`` in a closed loop on its own connection; latencies with their start times."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.conn = Connection(path, timeout=60)
        self.calls: list[tuple[float, float]] = []
        self.failures: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                self.conn.call("status")
            except Exception as exc:  # counted, then a new connection
                self.failures.append((t0, repr(exc)[:120]))
                self.conn.close()
                time.sleep(0.1)
                self.conn = Connection(self.conn.path, timeout=60)
                continue
            self.calls.append((t0, time.monotonic() - t0))
            time.sleep(0.01)


def attack(path: Path, payload: bytes, hold_s: float | None) -> dict[str, Any]:
    """Send ``payload``; read until the reply is complete or n3d closes (or for
    ``hold_s``, then hang up)."""
    out: dict[str, Any] = {"bytes": 0, "first": None, "closed_by_n3d": False}
    try:
        return _attack(path, payload, hold_s, out)
    finally:
        out.setdefault("done_at", time.monotonic())


def _attack(
    path: Path, payload: bytes, hold_s: float | None, out: dict[str, Any]
) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.settimeout(60)
        try:
            sock.sendall(payload)
        except OSError as exc:
            out["first"] = f"send failed: {exc!r}"
            return out
        deadline = time.monotonic() + (hold_s if hold_s is not None else 60)
        head = b""
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            except OSError as exc:
                out["first"] = out["first"] or f"recv failed: {exc!r}"
                out["closed_by_n3d"] = True
                break
            if not chunk:
                out["closed_by_n3d"] = True
                break
            out["bytes"] += len(chunk)
            if len(head) < 400:
                head += chunk[:400]
            if hold_s is None and chunk.endswith(b"\n") and "done_at" not in out:
                out["done_at"] = time.monotonic()  # the whole reply came (one NDJSON line)
                deadline = min(deadline, out["done_at"] + 2.0)  # then: does n3d close?
        line = head.split(b"\n", 1)[0]
        if line.startswith(b"{"):
            try:
                out["first"] = json.loads(line).get("error")
            except ValueError:
                out["first"] = line[:200].decode(errors="replace")
        elif line:
            out["first"] = line[:60].decode(errors="replace") + "…"
    return out


def scenario(
    d: DaemonProcess,
    sampler: Sampler,
    pollers: list[Poller],
    payload: bytes,
    attackers: int,
    hold_s: float | None,
    settle_s: float,
) -> dict[str, Any]:
    time.sleep(1.0)
    before = sampler.now()
    t0 = time.monotonic()
    results: list[dict[str, Any]] = [{} for _ in range(attackers)]

    def one(i: int) -> None:
        results[i] = attack(d.socket, payload, hold_s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(attackers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = max(r["done_at"] for r in results)
    time.sleep(settle_s)
    after = sampler.now()
    latencies = sorted(s for p in pollers for t, s in p.calls if t0 <= t <= t1)
    failures = [f for p in pollers for t, f in p.failures if t0 <= t <= t1]
    return {
        "members": payload.count(b"},{") + 1 if payload.startswith(b"[{") else payload.count(b","),
        "attack_s": round(t1 - t0, 2),
        "rss_before_mib": round(before / MIB, 1),
        "rss_peak_mib": round(sampler.peak(t0, t1 + settle_s) / MIB, 1),
        "rss_after_mib": round(after / MIB, 1),
        "status_calls": len(latencies),
        "status_p50_ms": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
        "status_p99_ms": (
            round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3, 1)
            if latencies
            else None
        ),
        "status_max_ms": round(latencies[-1] * 1e3, 1) if latencies else None,
        "status_failures": failures[:3],
        "attackers": [{k: v for k, v in r.items() if k != "done_at"} for r in results],
    }


def fresh_daemon_run(
    name: str, payload: bytes, attackers: int, hold_s: float | None, args: argparse.Namespace
) -> dict[str, Any]:
    """One scenario against a daemon of its own, so each starts from a fresh n3d."""
    home = Path(tempfile.mkdtemp(prefix="n3atk", dir="/tmp"))
    d = DaemonProcess(home, fast=False, OLLAMA_SIM_MODELS_PRELOAD="tinyllama")
    pollers: list[Poller] = []
    try:
        d.start()
        d.wait_ready(within_s=60)
        d.set_control(pull_seconds=600)
        sampler = Sampler(d.pid)
        sampler.start()
        pollers = [Poller(d.socket) for _ in range(args.pollers)]
        for p in pollers:
            p.start()
        result = scenario(d, sampler, pollers, payload, attackers, hold_s, args.settle)
        sampler.stop.set()
        result["n3d_alive"] = d.proc is not None and d.proc.poll() is None
        return result
    finally:
        for p in pollers:
            p.stop.set()
        d.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=2, help="connections in `discover`")
    parser.add_argument("--pollers", type=int, default=4, help="clients calling status")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before RSS 'after'")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    import n3d

    report: dict[str, Any] = {"n3d": str(Path(n3d.__file__).resolve().parents[1])}
    report["discover"] = fresh_daemon_run("discover", discover_batch(), args.attackers, None, args)
    report["pulls"] = fresh_daemon_run("pulls", pull_batch(), 1, 5.0, args)
    report["invalid"] = fresh_daemon_run("invalid", invalid_batch(), 1, None, args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"n3d from {report['n3d']} (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(
        f"{'scenario':<9} {'members':>7} {'rss before':>10} {'peak':>7} {'after':>7} "
        f"{'status p50':>10} {'p99':>8} {'max':>8} {'fail':>4}  attacker got"
    )
    for name in ("discover", "pulls", "invalid"):
        r = report[name]
        got = "; ".join(
            f"{a['bytes'] / MIB:.1f} MiB, {a['first']}"[:90] for a in r["attackers"][:2]
        )
        print(
            f"{name:<9} {r['members']:>7} {r['rss_before_mib']:>10} {r['rss_peak_mib']:>7} "
            f"{r['rss_after_mib']:>7} {r['status_p50_ms']!s:>10} {r['status_p99_ms']!s:>8} "
            f"{r['status_max_ms']!s:>8} {len(r['status_failures']):>4}  {got}"
        )
    alive = all(report[name]["n3d_alive"] for name in ("discover", "pulls", "invalid"))
    print(f"n3d alive after each attack: {alive}")


if __name__ == "__main__":
    main()
