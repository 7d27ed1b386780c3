"""Fault drill: a real `n3d run --simulate` under client load while faults are injected.

    .venv/bin/python bench/drills.py [--duration 240] [--seed N] [--short] [--json] [--keep]

Clients call ``status``, ``health`` and ``models.list`` continuously on their own
connections, and a subscriber stays connected to ``events.subscribe``. Meanwhile
the drill, one fault at a time with random gaps, SIGKILLs serve, SIGSTOPs it
(briefly: SIGCONT once n3d marks it degraded; or until n3d replaces it), flips the
simulator's ``hang`` and ``fail_pulls`` switches through its control file, runs
concurrent pulls (the same model from several clients, other models, one
cancelled with ``$/cancelRequest``, one abandoned by closing the connection),
opens a burst of 300 connections, sends garbage, oversized and half-written
frames, reloads a changed and then an invalid config with SIGHUP, and (first,
before the leak baseline) SIGKILLs n3d itself and starts it again on the same home.

Invariants, checked throughout and at the end (exit status 1 if one fails):

- every well-formed request got a result or a documented error code within
  ``REQUEST_BOUND_S`` (requests cut by n3d's own SIGKILL are counted apart);
- once a new serve runs, no process of the previous serve's group is left, and
  after n3d's SIGKILL the next n3d stopped the orphaned group; after SIGTERM to
  n3d at the end, no process of any group it spawned is left;
- the warm model is loaded again within ``RECOVERY_BOUND_S`` of every disruption;
- n3d's open fds and RSS do not grow from the baseline (after the warm-up faults)
  to the end;
- every line of n3d's log (stdout) is a JSON object, with nothing but n3d's own
  lines on stderr;
- every logged ``server.state`` edge (and every one the subscriber received) is in
  ``n3d.state.TRANSITIONS`` and starts where the previous one ended.

The engine is :func:`run_drill`; ``tests/drills`` runs it with ``short=True``
(every fault kind once, short gaps) and asserts on the returned :class:`DrillResult`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import selectors
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from n3d.client import Connection, DaemonUnreachable, RpcError
from n3d.state import TRANSITIONS, ServerState
from n3d.testing import DaemonProcess

__all__ = ["DrillResult", "run_drill", "render"]

REQUEST_BOUND_S = 10.0  # a reply (result or documented error) must come within this
RECOVERY_BOUND_S = 30.0  # running again, warm model loaded, after a disruption
FRAME_TIMEOUT_S = 10.0  # n3d's partial-frame limit (n3d.rpc.connection.Limits)
BURST = 300
MAX_MESSAGE_BYTES = 65_536
WARM_MODEL = "tinyllama"
PULLABLE = ("llama3.2:1b", "qwen2.5:0.5b", "all-minilm", "nomic-embed-text", "phi3", "mistral")
DOCUMENTED_CODES = frozenset(
    {-32700, -32600, -32601, -32602, -32603, -32800, -32000, *range(1001, 1011)}
)
FD_TOLERANCE = 10
RSS_TOLERANCE_BYTES = 12 * 1_048_576
RSS_TOLERANCE_FRACTION = 0.15

# Config A and B differ in keys a reload applies at once; the invalid one has a wrong type.
CONFIG_A = {"ollama": {"health_check_interval": 1, "model_cache_ttl": 60}}
CONFIG_B = {"ollama": {"health_check_interval": 1.25, "model_cache_ttl": 30}}
BASE_CONFIG: dict[str, dict[str, Any]] = {
    "server": {"stop_timeout": 2, "health_timeout": 2, "start_timeout": 15},
    "restart": {"backoff_initial": 0.05, "backoff_max": 2},
    "warm": {"models": [WARM_MODEL]},
    "socket": {"max_message_bytes": MAX_MESSAGE_BYTES},
}
INVALID_CONFIG_LINE = '\n[server]\nstop_timeout = "soon"\n'


# --------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------- plumbing


class Stats:
    """Request outcomes per method, shared by every client thread."""

    def __init__(self, down: DownWindows) -> None:
        self._lock = threading.Lock()
        self._down = down
        self.methods: dict[str, MethodStats] = {}
        self.failures: list[str] = []
        self.events: Counter[str] = Counter()
        self.event_edges: list[tuple[str, str, int]] = []  # from, to, subscription number

    def _m(self, method: str) -> MethodStats:
        return self.methods.setdefault(method, MethodStats())

    def ok(self, method: str, latency_s: float) -> None:
        with self._lock:
            m = self._m(method)
            m.sent += 1
            m.latencies_ms.append(latency_s * 1000)
            if latency_s > REQUEST_BOUND_S:
                m.failed += 1
                self._fail(f"{method}: answered after {latency_s:.1f}s")
            else:
                m.ok += 1

    def error(self, method: str, code: int, latency_s: float, message: str = "") -> None:
        with self._lock:
            m = self._m(method)
            m.sent += 1
            m.latencies_ms.append(latency_s * 1000)
            if code in DOCUMENTED_CODES and latency_s <= REQUEST_BOUND_S:
                m.errors[str(code)] = m.errors.get(str(code), 0) + 1
            else:
                m.failed += 1
                self._fail(f"{method}: error {code} after {latency_s:.1f}s: {message[:120]}")

    def unreachable(
        self, method: str, exc: DaemonUnreachable, t0: float, opened_at: float, sent: bool
    ) -> None:
        """A call that got no answer: n3d's own kill, or a failure."""
        t1 = time.monotonic()
        crossed = self._down.crossed(opened_at, t0, t1)
        with self._lock:
            m = self._m(method)
            if crossed and not sent:
                m.unavailable += 1
            elif crossed:
                m.sent += 1
                m.lost_to_n3d_kill += 1
            else:
                m.sent += 1
                m.failed += 1
                self._fail(f"{method}: {type(exc).__name__}: {exc.detail} after {t1 - t0:.1f}s")

    def fail(self, message: str) -> None:
        with self._lock:
            self._fail(message)

    def _fail(self, message: str) -> None:
        if len(self.failures) < 200:
            self.failures.append(message)

    def event(self, topic: str, params: dict[str, Any], subscription: int) -> None:
        with self._lock:
            self.events[topic] += 1
            if topic == "server.state":
                edge = (str(params.get("from")), str(params.get("to")), subscription)
                self.event_edges.append(edge)


class DownWindows:
    """When n3d was down (SIGKILLed, not yet answering again), in monotonic seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: list[list[float]] = []  # [start, end]; end = inf while down

    def begin(self) -> None:
        with self._lock:
            self._windows.append([time.monotonic(), float("inf")])

    def end(self) -> None:
        with self._lock:
            self._windows[-1][1] = time.monotonic()

    @property
    def up(self) -> bool:
        with self._lock:
            return not self._windows or self._windows[-1][1] != float("inf")

    def crossed(self, opened_at: float, t0: float, t1: float) -> bool:
        """Whether a call made over [t0, t1] on a connection opened at ``opened_at``
        overlapped a down window, or its connection outlived an n3d kill."""
        with self._lock:
            return any(
                (start <= t1 and end >= t0) or opened_at <= start <= t1
                for start, end in self._windows
            )


class RawConn:
    """A bare NDJSON connection, for what :class:`Connection` will not send."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.sock.connect(str(path))
                    break
                except BlockingIOError:  # a full backlog refuses at once; retry
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        except OSError:
            self.sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message).encode() + b"\n")

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None at EOF (or reset); TimeoutError if none in time."""
        deadline = time.monotonic() + timeout
        while True:
            head = self.buf.find(b"\r\n\r\n")
            if self.buf[:15].lower() == b"content-length:" and head >= 0:  # LSP framing
                length = int(self.buf[15:head].split(b"\r\n")[0])
                if len(self.buf) >= head + 4 + length:
                    body = bytes(self.buf[head + 4 : head + 4 + length])
                    del self.buf[: head + 4 + length]
                    lsp: dict[str, Any] = json.loads(body)
                    return lsp
            nl = -1 if self.buf[:1] in (b"C", b"c") else self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[: nl + 1]
                if line.strip():
                    message: dict[str, Any] = json.loads(line)
                    return message
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def read_until(
        self, want: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            message = self.read(max(0.01, deadline - time.monotonic()))
            if message is None or want(message):
                return message

    def close(self) -> None:
        self.sock.close()


def poll(check: Callable[[], Any], within_s: float, every_s: float = 0.1) -> Any:
    """``check()`` every ``every_s`` until truthy (that value) or ``within_s`` passed (None)."""
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(DaemonUnreachable, RpcError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            return None
        time.sleep(every_s)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
    return found


# --------------------------------------------------------------------------- the drill


class Drill:
    def __init__(self, home: Path, seed: int, short: bool, progress: Callable[[str], None]):
        self.home = home
        self.rng = random.Random(seed)
        self.short = short
        self.say = progress
        self.control_path = home / "ctl.json"
        self.overrides: dict[str, Any] = {"pull_seconds": 1.5}
        self.write_control()
        self.config: dict[str, dict[str, Any]] = {**BASE_CONFIG, **CONFIG_A}
        self.d = DaemonProcess(
            home,
            config=self.config,
            OLLAMA_SIM_CONTROL=str(self.control_path),
            OLLAMA_SIM_MODELS_PRELOAD=WARM_MODEL,
        )
        self.down = DownWindows()
        self.stats = Stats(self.down)
        self.faults: list[FaultRecord] = []
        self.samples: list[LeakSample] = []
        self.phase = "warmup"
        self.kill_offsets: list[int] = []  # log size when n3d was SIGKILLed
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.late_checks: list[threading.Thread] = []
        self.t0 = time.monotonic()
        self.pull_round = 0
        # Models whose download was interrupted: the simulator keeps the partial blob
        # and the next pull resumes it, so fast that a cancel may arrive after success.
        self.partial: set[str] = set()
        self._ctl: Connection | None = None
        self._ctl_opened = 0.0

    # ---- control calls (counted like any client's) --------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        t0 = time.monotonic()
        if self._ctl is None:
            try:
                self._ctl = Connection(self.d.socket, timeout=REQUEST_BOUND_S + 1)
            except DaemonUnreachable as exc:
                self.stats.unreachable(method, exc, t0, t0, sent=False)
                raise
            self._ctl_opened = t0
        try:
            result = self._ctl.call(method, params)
        except RpcError as exc:
            self.stats.error(method, exc.code, time.monotonic() - t0, exc.message)
            raise
        except DaemonUnreachable as exc:
            self.stats.unreachable(method, exc, t0, self._ctl_opened, sent=True)
            self._ctl.close()
            self._ctl = None
            raise
        self.stats.ok(method, time.monotonic() - t0)
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")
        return result

    def write_control(self) -> None:
        tmp = self.control_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.overrides))
        tmp.replace(self.control_path)

    def now(self) -> float:
        return time.monotonic() - self.t0

    # ---- load ---------------------------------------------------------------------

    def start_load(self) -> None:
        for method, interval in (("status", 0.25), ("health", 0.3), ("models.list", 0.5)):
            self._spawn(self._poller, method, interval)
        self._spawn(self._subscriber)
        self._spawn(self._sampler)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception as exc:  # a bug in the drill itself: report, never hide
                self.stats.fail(f"drill thread {target.__name__} crashed: {exc!r}")

        thread = threading.Thread(target=guarded, daemon=True, name=target.__name__)
        thread.start()
        self.threads.append(thread)

    def _poller(self, method: str, interval: float) -> None:
        conn: Connection | None = None
        opened = 0.0
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                if conn is None:
                    opened = t0
                    try:
                        conn = Connection(self.d.socket, timeout=REQUEST_BOUND_S + 1)
                    except DaemonUnreachable as exc:
                        self.stats.unreachable(method, exc, t0, t0, sent=False)
                        self.stop.wait(0.2)
                        continue
                conn.call(method)
                self.stats.ok(method, time.monotonic() - t0)
            except RpcError as exc:
                self.stats.error(method, exc.code, time.monotonic() - t0, exc.message)
            except DaemonUnreachable as exc:
                self.stats.unreachable(method, exc, t0, opened, sent=True)
                if conn is not None:
                    conn.close()
                conn = None
            self.stop.wait(interval)
        if conn is not None:
            conn.close()

    def _subscriber(self) -> None:
        subscription = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                conn = RawConn(self.d.socket, REQUEST_BOUND_S)
            except OSError:
                self.stop.wait(0.2)
                continue
            subscription += 1
            try:
                conn.send_json({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe"})
                reply = conn.read_until(lambda m: m.get("id") == 1, REQUEST_BOUND_S)
                if reply is None:
                    raise ConnectionResetError("closed before answering events.subscribe")
                if "error" in reply:
                    err = reply["error"]
                    self.stats.error("events.subscribe", err["code"], time.monotonic() - t0,
                                     err.get("message", ""))
                    self.stop.wait(0.5)
                    continue
                self.stats.ok("events.subscribe", time.monotonic() - t0)
                while not self.stop.is_set():
                    try:
                        message = conn.read(1.0)  # wake up now and then to notice the end
                    except TimeoutError:
                        continue
                    if message is None:
                        raise ConnectionResetError("n3d closed the subscription")
                    params = message.get("params")
                    if message.get("method") == "event" and isinstance(params, dict):
                        self.stats.event(str(params.get("topic")), params, subscription)
            except (OSError, TimeoutError) as exc:
                if not self.down.crossed(t0, t0, time.monotonic()):
                    self.stats.fail(f"subscriber lost its connection while n3d ran: {exc!r}")
                    self.stop.wait(0.2)
            finally:
                conn.close()

    def _sampler(self) -> None:
        every = 1.0 if self.short else 3.0
        while not self.stop.wait(every):
            if not self.down.up or self.d.proc is None or self.d.proc.poll() is not None:
                continue
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(self.d.pid)
                self.samples.append(
                    LeakSample(round(self.now(), 2), proc.pid, proc.num_fds(),
                               proc.memory_info().rss, self.phase)
                )

    # ---- waiting on observed state ------------------------------------------------

    def settled(self, within_s: float = RECOVERY_BOUND_S) -> dict[str, Any] | None:
        """Running for a while (a kill now is not a failed start), warm model loaded."""

        def check() -> dict[str, Any] | None:
            st = self.status()
            if st["server"]["state"] != "running" or time.time() - st["server"]["since"] < 2.0:
                return None
            return st if self.warm_loaded() else None

        result: dict[str, Any] | None = poll(check, within_s, 0.2)
        return result

    def warm_loaded(self) -> bool:
        warm = self.call("warm.list")["models"]
        if not warm or not all(m["loaded"] for m in warm):
            return False
        loaded = {m["name"] for m in self.call("models.loaded")["models"]}
        return all(m["name"] in loaded for m in warm)

    def recover(self, rec: FaultRecord, t_inject: float, *, old_pid: int | None,
                new_pid: bool, t_from: float | None = None) -> None:
        """Wait for running (with a new serve pid if ``new_pid``), the old group empty,
        and the warm model loaded; record the times or the failure."""

        def running() -> dict[str, Any] | None:
            st = self.status()
            srv = st["server"]
            if srv["state"] != "running" or (new_pid and srv["pid"] == old_pid):
                return None
            return st

        st = poll(running, RECOVERY_BOUND_S)
        if st is None:
            rec.fail(f"not running{' with a new serve' if new_pid else ''} within "
                     f"{RECOVERY_BOUND_S}s: {self.describe_state()}")
            return
        rec.recovery_s = round(time.monotonic() - (t_from or t_inject), 3)
        rec.detail["new_pid"] = st["server"]["pid"]
        if old_pid is not None and st["server"]["pid"] != old_pid:
            left = group_members(old_pid)
            rec.detail["old_group_left"] = left
            if left:
                rec.fail(f"group {old_pid} of the old serve still has {left} while the new runs")
        if poll(self.warm_loaded, RECOVERY_BOUND_S, 0.2):
            rec.warm_s = round(time.monotonic() - t_inject, 3)
        else:
            rec.fail(f"warm model not loaded within {RECOVERY_BOUND_S}s")

    def describe_state(self) -> str:
        try:
            srv = self.status()["server"]
            return f"state {srv['state']} pid {srv['pid']} ({srv['reason']})"
        except (DaemonUnreachable, RpcError) as exc:
            return f"status failed: {exc}"

    def log_events(self, name: str, offset: int = 0) -> list[dict[str, Any]]:
        out = []
        with self.d.log.open("rb") as f:
            f.seek(offset)
            for line in f.read().splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict) and entry.get("event") == name:
                        out.append(entry)
        return out

    def log_size(self) -> int:
        return self.d.log.stat().st_size if self.d.log.exists() else 0

    # ---- faults ---------------------------------------------------------------------

    def fault(self, kind: str) -> FaultRecord:
        rec = FaultRecord(kind, round(self.now(), 2))
        self.faults.append(rec)
        if kind not in ("burst", "bad_frames") and not self.settled():
            rec.fail(f"not settled before the fault: {self.describe_state()}")
            return rec
        self.say(f"{self.now():7.1f}s  {kind}")
        try:
            getattr(self, f"fault_{kind}")(rec)
        except (DaemonUnreachable, RpcError, OSError) as exc:
            rec.fail(f"drill step failed: {exc!r}")
        return rec

    def fault_serve_kill(self, rec: FaultRecord) -> None:
        """SIGKILL serve (every other time with a pull running: it must end, documented)."""
        pid = self.status()["server"]["pid"]
        pulling: list[str] = []
        puller = None
        if sum(f.kind == "serve_kill" for f in self.faults) % 2 == 0:
            model = PULLABLE[self.pull_round % len(PULLABLE)]
            self.pull_round += 1
            rec.detail["pull_during_kill"] = model
            offset = self.log_size()
            puller = threading.Thread(target=lambda: pulling.append(self.pull(model)[0]))
            puller.start()
            poll(lambda: self.log_events("pull.started", offset), REQUEST_BOUND_S)
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        self.recover(rec, t, old_pid=pid, new_pid=True)
        if puller is not None:
            puller.join(REQUEST_BOUND_S * 2)
            rec.detail["pull_outcome"] = pulling
            if not pulling or pulling[0] not in ("ok", "1001", "1004", "1010"):
                rec.fail(f"pull cut by the serve kill ended {pulling or 'never'}")
            if pulling != ["ok"]:
                self.partial.add(rec.detail["pull_during_kill"])
            self.delete_models([rec.detail["pull_during_kill"]])

    def fault_sigstop(self, rec: FaultRecord) -> None:
        """SIGSTOP serve. Odd drills: SIGCONT once n3d says degraded (no restart needed);
        even ones: leave it stopped until n3d has replaced it, then SIGCONT (harmless)."""
        brief = sum(f.kind == "sigstop" for f in self.faults) % 2 == 0
        rec.detail["variant"] = "brief" if brief else "until_replaced"
        pid = self.status()["server"]["pid"]
        t = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            if brief:
                seen = poll(lambda: self.status()["server"]["state"] != "running", RECOVERY_BOUND_S)
                if not seen:
                    rec.fail("n3d never noticed a stopped serve")
                os.kill(pid, signal.SIGCONT)
                self.recover(rec, t, old_pid=pid, new_pid=False)
            else:
                self.recover(rec, t, old_pid=pid, new_pid=True)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def fault_sim_hang(self, rec: FaultRecord) -> None:
        """The simulator stops answering. Odd drills: answer again once n3d says degraded;
        even ones: only after n3d has decided to restart it (state stopping)."""
        brief = sum(f.kind == "sim_hang" for f in self.faults) % 2 == 1
        rec.detail["variant"] = "brief" if brief else "until_restart"
        pid = self.status()["server"]["pid"]
        t = time.monotonic()
        self.overrides["hang"] = True
        self.write_control()
        try:
            target = ("degraded", "stopping") if brief else ("stopping", "backoff", "starting")
            seen = poll(lambda: self.status()["server"]["state"] in target, RECOVERY_BOUND_S)
            if not seen:
                rec.fail(f"never reached {target}: {self.describe_state()}")
        finally:
            self.overrides.pop("hang", None)
            self.write_control()
        t_clear = time.monotonic()
        self.recover(rec, t, old_pid=pid, new_pid=not brief, t_from=t_clear)

    def pull(self, model: str) -> tuple[str, Any]:
        """One `models.pull` on its own connection with progress; (outcome, detail)."""
        t0 = time.monotonic()
        progress: list[dict[str, Any]] = []
        try:
            with Connection(self.d.socket, timeout=REQUEST_BOUND_S) as conn:
                result = conn.call("models.pull", {"model": model}, progress=progress.append)
        except RpcError as exc:
            self.stats.error("models.pull", exc.code, time.monotonic() - t0, exc.message)
            return str(exc.code), exc.message
        except DaemonUnreachable as exc:
            self.stats.unreachable("models.pull", exc, t0, t0, sent=True)
            return "unreachable", exc.detail
        self.stats.ok("models.pull", time.monotonic() - t0)
        return "ok", {"result": result, "progress": len(progress)}

    def fault_fail_pulls(self, rec: FaultRecord) -> None:
        model = PULLABLE[self.pull_round % len(PULLABLE)]
        self.pull_round += 1
        self.overrides["fail_pulls"] = True
        self.write_control()
        time.sleep(0.3)  # the simulator re-reads its control file at most every 100 ms
        outcome, detail = self.pull(model)
        rec.detail["while_failing"] = outcome
        if outcome != "1004":
            rec.fail(f"pull with fail_pulls on: {outcome} {detail}")
        self.overrides.pop("fail_pulls")
        self.write_control()
        t = time.monotonic()
        for _attempt in range(5):
            outcome, detail = self.pull(model)
            if outcome == "ok":
                rec.recovery_s = round(time.monotonic() - t, 3)
                break
            time.sleep(0.2)
        else:
            rec.fail(f"pulls still failing after the switch was cleared: {outcome} {detail}")
        self.delete_models([model])

    def delete_models(self, models: list[str]) -> None:
        for model in models:
            with contextlib.suppress(RpcError):
                self.call("models.delete", {"model": model})

    def fault_pulls(self, rec: FaultRecord) -> None:
        """3 clients pull one model, 2 others pull other models; one more pull is
        cancelled with $/cancelRequest and one abandoned by closing its connection."""
        fresh = [m for m in PULLABLE if m not in self.partial]
        cancelled = self.rng.choice(fresh or PULLABLE)
        models = [cancelled, *self.rng.sample([m for m in PULLABLE if m != cancelled], 4)]
        shared, others, abandoned = models[1], models[2:4], models[4]
        rec.detail["models"] = models
        before = len(self.d.requests("/api/pull"))
        outcomes: dict[str, list[str]] = {m: [] for m in models}
        lock = threading.Lock()

        def one(model: str) -> None:
            outcome, _ = self.pull(model)
            with lock:
                outcomes[model].append(outcome)

        threads = [threading.Thread(target=one, args=(m,)) for m in [shared] * 3 + others]
        for thread in threads:
            thread.start()
        outcomes[cancelled].append(self.cancelled_pull(cancelled, rec))
        outcomes[abandoned].append(self.abandoned_pull(abandoned, rec))
        for thread in threads:
            thread.join(REQUEST_BOUND_S * 3)
        rec.detail["outcomes"] = outcomes
        for model in [shared, *others]:
            if any(o != "ok" for o in outcomes[model]):
                rec.fail(f"pull of {model}: {outcomes[model]}")
        # A resumed download can finish before the cancel is read: then it is not cancelled.
        resumed_fast = not fresh and outcomes[cancelled] == ["ok"]
        if outcomes[cancelled] != ["-32800"] and not resumed_fast:
            rec.fail(f"cancelled pull of {cancelled}: {outcomes[cancelled]}")
        for model, got in outcomes.items():
            if got and all(o == "ok" for o in got):
                self.partial.discard(model)
            else:
                self.partial.add(model)
        # One download per model, however many callers (the simulator logs each /api/pull).
        downloads = len(self.d.requests("/api/pull")) - before
        rec.detail["downloads"] = downloads
        if downloads > len(models):
            rec.fail(f"{downloads} /api/pull requests for {len(models)} models")
        if self.call("status")["server"]["state"] != "running":
            rec.fail(f"server left running during pulls: {self.describe_state()}")
        self.delete_models(models)

    def _start_raw_pull(self, model: str, token: str) -> tuple[RawConn, float]:
        conn = RawConn(self.d.socket, REQUEST_BOUND_S)
        conn.send_json({"jsonrpc": "2.0", "id": 1, "method": "models.pull",
                        "params": {"model": model, "workDoneToken": token}})
        t0 = time.monotonic()
        first = conn.read_until(lambda m: m.get("method") == "$/progress" or "id" in m,
                                REQUEST_BOUND_S)
        if first is None or "id" in first:
            conn.close()
            raise OSError(f"pull of {model} ended before any progress: {first}")
        return conn, t0

    def cancelled_pull(self, model: str, rec: FaultRecord) -> str:
        try:
            conn, t0 = self._start_raw_pull(model, "drill-cancel")
        except (OSError, TimeoutError) as exc:
            rec.fail(f"cancel drill: {exc}")
            return "not started"
        try:
            conn.send_json({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}})
            reply = conn.read_until(lambda m: m.get("id") == 1, REQUEST_BOUND_S)
        except TimeoutError:
            self.stats.error("models.pull", 0, time.monotonic() - t0, "no reply to a cancel")
            return "timeout"
        finally:
            conn.close()
        if reply is None:
            self.stats.fail("models.pull: closed without a reply after $/cancelRequest")
            return "closed"
        if "error" in reply:
            code = int(reply["error"]["code"])
            self.stats.error("models.pull", code, time.monotonic() - t0, reply["error"]["message"])
            return str(code)
        self.stats.ok("models.pull", time.monotonic() - t0)
        return "ok"

    def abandoned_pull(self, model: str, rec: FaultRecord) -> str:
        try:
            conn, _ = self._start_raw_pull(model, "drill-abandon")
        except (OSError, TimeoutError) as exc:
            rec.fail(f"abandon drill: {exc}")
            return "not started"
        conn.close()
        return "abandoned"

    def fault_burst(self, rec: FaultRecord) -> None:
        """BURST connections at once, a `status` on each: a result or a refusal, never a hang."""
        socks: list[socket.socket] = []
        connect_failed = 0
        try:
            for _ in range(BURST):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5)
                try:
                    s.connect(str(self.d.socket))
                except OSError:
                    connect_failed += 1
                    s.close()
                    continue
                socks.append(s)
            t = time.monotonic()
            outcome: dict[socket.socket, str] = {}
            bufs: dict[socket.socket, bytes] = {}
            sel = selectors.DefaultSelector()
            for i, s in enumerate(socks):
                try:
                    s.sendall(b'{"jsonrpc":"2.0","id":%d,"method":"status"}\n' % i)
                except OSError:
                    outcome[s] = "closed"
                    continue
                s.setblocking(False)
                bufs[s] = b""
                sel.register(s, selectors.EVENT_READ)
            deadline = t + REQUEST_BOUND_S
            while len(outcome) < len(socks) and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    s = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        outcome[s] = "closed"
                    else:
                        bufs[s] += chunk
                        if b"\n" not in bufs[s]:
                            continue
                        reply = json.loads(bufs[s].split(b"\n", 1)[0])
                        if "result" in reply:
                            outcome[s] = "result"
                        elif reply.get("error", {}).get("code") == -32000:
                            outcome[s] = "busy"
                        else:
                            outcome[s] = f"error {reply.get('error')}"
                    sel.unregister(s)
            sel.close()
            counts = Counter(outcome.values())
            counts["hung"] = len(socks) - len(outcome)
            counts["connect_failed"] = connect_failed
            rec.detail.update(counts)
            rec.recovery_s = round(time.monotonic() - t, 3)
            if counts["hung"] or connect_failed:
                rec.fail(f"{counts['hung']} connections hung, {connect_failed} could not connect")
            if set(counts) - {"result", "busy", "closed", "hung", "connect_failed"}:
                rec.fail(f"unexpected replies: {dict(counts)}")
            if counts["result"] < 200 or counts["result"] > 256:
                rec.fail(f"{counts['result']} of {BURST} served (max_connections 256)")
            if counts["busy"] + counts["closed"] < BURST - 256:
                rec.fail(f"only {counts['busy'] + counts['closed']} refused")
        finally:
            for s in socks:
                s.close()
        st = self.status()  # the daemon still answers, on a fresh request
        if st["server"]["state"] not in ("running", "degraded"):
            rec.fail(f"server state after the burst: {st['server']['state']}")

    def fault_bad_frames(self, rec: FaultRecord) -> None:
        """Garbage, bad LSP headers, an oversized line: -32700 then close. Valid JSON
        that is no request: -32600, the connection stays usable. Half a line then
        close: nothing. Half a line held open: -32700 after the frame timeout."""
        t = time.monotonic()
        oversized = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":"'
        oversized += b"a" * (MAX_MESSAGE_BYTES + 10) + b'"}}\n'
        for name, data in (
            ("garbage", b"hello, is this ollama?\n"),
            ("bad_lsp", b"Content-Length: lots\r\n\r\n{}"),
            ("oversized", oversized),
        ):
            conn = RawConn(self.d.socket)
            try:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.send(data)
                first = conn.read(REQUEST_BOUND_S)
                after = conn.read(REQUEST_BOUND_S) if first is not None else None
            except TimeoutError:
                rec.fail(f"{name}: no reply and no close within {REQUEST_BOUND_S}s")
                continue
            finally:
                conn.close()
            code = (first or {}).get("error", {}).get("code")
            rec.detail[name] = code
            if code != -32700 or after is not None:
                rec.fail(f"{name}: expected -32700 and close, got {first} then {after}")
        conn = RawConn(self.d.socket)
        replies: list[dict[str, Any] | None] = []
        try:
            conn.send(b'{"jsonrpc":"2.0","id":5,"method":42}\n'
                      b'{"jsonrpc":"2.0","id":6,"method":"health"}\n')
            for _ in range(2):
                replies.append(conn.read(REQUEST_BOUND_S))
        except TimeoutError:
            pass
        finally:
            conn.close()
        rec.detail["not_a_request"] = [
            (r or {}).get("error", {}).get("code", "result" if r and "result" in r else None)
            for r in replies
        ]
        if rec.detail["not_a_request"] not in ([-32600, "result"], ["result", -32600]):
            rec.fail(f"invalid request then health on one connection: {replies}")
        conn = RawConn(self.d.socket)
        conn.send(b'{"jsonrpc":"2.0","id":1,"method":"sta')
        conn.close()
        rec.recovery_s = round(time.monotonic() - t, 3)
        self.status()  # still serving
        held = RawConn(self.d.socket, FRAME_TIMEOUT_S + REQUEST_BOUND_S)
        held.send(b'{"jsonrpc":"2.0","id":1,"method":"sta')
        thread = threading.Thread(target=self._held_half_frame, args=(held, rec), daemon=True)
        thread.start()
        self.late_checks.append(thread)

    def _held_half_frame(self, conn: RawConn, rec: FaultRecord) -> None:
        t = time.monotonic()
        try:
            first = conn.read(FRAME_TIMEOUT_S + REQUEST_BOUND_S)
            after = conn.read(REQUEST_BOUND_S) if first is not None else None
        except (TimeoutError, OSError) as exc:
            first, after = {"exception": repr(exc)}, None
        finally:
            conn.close()
        waited = round(time.monotonic() - t, 2)
        rec.detail["half_frame_held"] = {"reply": first, "after_s": waited}
        code = (first or {}).get("error", {}).get("code")
        if code != -32700 or after is not None:
            rec.fail(f"half frame held open: expected -32700 then close, got {first}, {after}")

    def fault_sighup(self, rec: FaultRecord) -> None:
        """Reload a changed config (applied at once), then an invalid one (kept the old)."""
        current = self.call("config.get")["values"]["ollama"]
        nxt = CONFIG_B if current["health_check_interval"] == 1 else CONFIG_A
        self.config = {**BASE_CONFIG, **nxt}
        self.d.write_config(self.config)
        t = time.monotonic()
        offset = self.log_size()
        os.kill(self.d.pid, signal.SIGHUP)
        want = nxt["ollama"]

        def applied() -> bool:
            got = self.call("config.get")["values"]["ollama"]
            return all(got[k] == v for k, v in want.items())

        if not poll(applied, REQUEST_BOUND_S):
            rec.fail(f"config {want} not applied after SIGHUP")
        rec.recovery_s = round(time.monotonic() - t, 3)
        offset = self.log_size()
        with self.d.config_path.open("a") as f:
            f.write(INVALID_CONFIG_LINE)
        os.kill(self.d.pid, signal.SIGHUP)
        failed = poll(lambda: self.log_events("config.reload_failed", offset), REQUEST_BOUND_S)
        if not failed:
            rec.fail("no config.reload_failed after an invalid config")
        else:
            rec.detail["reload_failed"] = failed[0].get("error", "")[:160]
        if not applied():
            rec.fail("the invalid config changed the running settings")
        if self.status()["server"]["state"] not in ("running", "degraded"):
            rec.fail(f"after the invalid reload: {self.describe_state()}")
        # Leave a valid file behind (n3d is restarted from it) and in force.
        self.d.write_config(self.config)
        offset = self.log_size()
        os.kill(self.d.pid, signal.SIGHUP)
        if not poll(lambda: self.log_events("config.reloaded", offset), REQUEST_BOUND_S):
            rec.fail("the restored config was not reloaded")

    def fault_n3d_kill(self, rec: FaultRecord) -> None:
        """SIGKILL n3d; the next n3d must stop the orphaned serve group and run again."""
        old = self.status()["server"]["pid"]
        rec.detail["orphan_group"] = old
        rec.detail["orphan_members"] = group_members(old)
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        t = time.monotonic()
        self.down.begin()
        self.d.kill()
        offset = self.log_size()
        self.kill_offsets.append(offset)
        self.d.start()
        if not poll(lambda: self.call("status"), RECOVERY_BOUND_S):
            rec.fail(f"n3d did not answer again: {self.d.describe()}")
            self.down.end()
            return
        self.down.end()
        rec.detail["socket_back_s"] = round(time.monotonic() - t, 3)
        self.recover(rec, t, old_pid=old, new_pid=True)
        found = [e for e in self.log_events("orphan.found", offset) if e.get("pid") == old]
        stopped = [e for e in self.log_events("orphan.stopped", offset) if e.get("pid") == old]
        rec.detail["orphan_stopped"] = stopped[0].get("processes") if stopped else None
        if not found or not stopped:
            rec.fail(f"the new n3d did not report stopping orphan {old}")

    # ---- the run --------------------------------------------------------------------

    def run(self, duration_s: float) -> None:
        self.d.start()
        self.d.wait_ready(within_s=RECOVERY_BOUND_S)
        self.start_load()
        gap = (0.2, 0.6) if self.short else (1.0, 4.0)
        warmup = ["n3d_kill", "burst"] if self.short else ["n3d_kill", "burst", "pulls"]
        kinds = ["serve_kill", "sigstop", "sim_hang", "fail_pulls", "pulls", "burst",
                 "bad_frames", "sighup"]
        for kind in warmup:
            self.fault(kind)
            time.sleep(self.rng.uniform(*gap))
        self.settled()
        self.phase = "measured"
        tail = 3.5 if self.short else 12.0
        round_no = 0
        while round_no == 0 or (not self.short and self.now() < duration_s - tail - 30):
            order = kinds[:]
            self.rng.shuffle(order)
            for kind in order:
                self.fault(kind)
                time.sleep(self.rng.uniform(*gap))
            round_no += 1
        for thread in self.late_checks:
            thread.join(FRAME_TIMEOUT_S + 2 * REQUEST_BOUND_S)
        self.settled()
        self.phase = "tail"
        time.sleep(tail)  # quiet load only, for the last leak samples

    def finish(self) -> tuple[int | None, list[int]]:
        """Stop the load, SIGTERM n3d; its exit code and what its groups left behind."""
        self.stop.set()
        for thread in self.threads:
            thread.join(REQUEST_BOUND_S + 2)
        if self._ctl is not None:
            self._ctl.close()
        code = None
        with contextlib.suppress(Exception):
            code = self.d.stop(within_s=30)
        left = [p for g in self.d.spawned_groups() for p in group_members(g)]
        return code, left


# --------------------------------------------------------------------------- invariants


def check_log(log: Path, kill_offsets: list[int]) -> tuple[int, list[str], int]:
    """(lines, bad lines, lines cut by n3d's SIGKILL) of the JSON log."""
    bad, cut, pos, lines = [], 0, 0, 0
    for raw in log.read_bytes().splitlines(keepends=True):
        start, pos = pos, pos + len(raw)
        lines += 1
        try:
            entry = json.loads(raw)
            ok = isinstance(entry, dict) and list(entry)[:4] == [
                "timestamp", "level", "logger", "event"]
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
            allowed = ServerState(dst) in TRANSITIONS[ServerState(src)]
        except ValueError:
            allowed = False
        if not allowed:
            problems.append(f"{src} → {dst} is not an edge ({e.get('reason')})")
        if last is not None and src != last:
            problems.append(f"{src} → {dst} follows a transition to {last}")
        last = dst
    return problems


def leak_verdict(samples: list[LeakSample]) -> tuple[bool, str]:
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
    detail = (f"fds {fds0:g} → {fds1:g} (tolerance +{FD_TOLERANCE}), rss {rss0 / 2**20:.1f} → "
              f"{rss1 / 2**20:.1f} MiB (tolerance +{rss_allowed / 2**20:.1f})")
    return ok, detail


def run_drill(
    duration_s: float = 240.0,
    seed: int | None = None,
    *,
    short: bool = False,
    keep_home: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DrillResult:
    """Run the drill (``short``: each fault kind once, short gaps); the result."""
    seed = random.randrange(1 << 30) if seed is None else seed
    home = Path(tempfile.mkdtemp(prefix="n3dd", dir="/tmp"))
    drill = Drill(home, seed, short, progress or (lambda _msg: None))
    crashed: str | None = None
    try:
        drill.run(duration_s)
    except Exception as exc:  # keep going to the checks; the result says what happened
        crashed = f"{type(exc).__name__}: {exc}"
    finally:
        exit_code, left = drill.finish()
        drill.d.cleanup()
    result = evaluate(drill, seed, exit_code, left, crashed)
    if result.ok and not keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return result


def evaluate(
    drill: Drill, seed: int, exit_code: int | None, left: list[int], crashed: str | None
) -> DrillResult:
    inv: list[Invariant] = []

    def check(name: str, ok: bool, detail: str) -> None:
        inv.append(Invariant(name, ok, detail))

    check("drill completed", crashed is None, crashed or "every step ran")
    stats = drill.stats
    failed = sum(m.failed for m in stats.methods.values())
    lost = sum(m.lost_to_n3d_kill for m in stats.methods.values())
    sent = sum(m.sent for m in stats.methods.values())
    check("every request answered in time", failed == 0 and not stats.failures,
          f"{sent} sent, {failed} failed, {lost} lost to n3d kill"
          + (f"; first: {stats.failures[:3]}" if stats.failures else ""))
    bad_faults = [f"{f.kind}@{f.at_s}s: {'; '.join(f.problems)}" for f in drill.faults if not f.ok]
    check("every fault recovered", not bad_faults,
          f"{len(drill.faults)} faults" + (f"; {bad_faults[:4]}" if bad_faults else ""))
    kinds = {f.kind for f in drill.faults}
    expected = {"n3d_kill", "serve_kill", "sigstop", "sim_hang", "fail_pulls", "pulls", "burst",
                "bad_frames", "sighup"}
    check("every fault kind injected", expected <= kinds, f"missing {sorted(expected - kinds)}")
    group_problems = [p for f in drill.faults for p in f.problems if "group" in p or "orphan" in p]
    check("no process outlives its group's stop", not group_problems and not left,
          f"left after n3d's SIGTERM: {left}; {group_problems[:3]}" if left or group_problems
          else f"{len(drill.d.spawned_groups())} groups spawned, none left")
    check("n3d exits 0 on SIGTERM", exit_code == 0, f"exit code {exit_code}")
    warm_fail = [f"{f.kind}@{f.at_s}s" for f in drill.faults
                 if any("warm" in p for p in f.problems)]
    check("warm model reloaded after every disruption", not warm_fail,
          f"not within {RECOVERY_BOUND_S}s: {warm_fail}" if warm_fail else "every time")
    ok, detail = leak_verdict(drill.samples)
    check("no fd or RSS growth", ok, detail)
    lines, bad, cut = check_log(drill.d.log, drill.kill_offsets)
    err_path = getattr(drill.d, "err", None)
    stderr = err_path.read_text(errors="replace") if isinstance(err_path, Path) and \
        err_path.exists() else ""
    check("every log line is a JSON object", not bad and "Traceback" not in stderr,
          f"{lines} lines, {len(bad)} bad, {cut} cut by n3d's SIGKILL, "
          f"{len(stderr.splitlines())} stderr lines" + (f"; {bad[:3]}" if bad else "")
          + (f"; stderr: {stderr[-500:]}" if stderr else ""))
    entries = [e for e in drill.d.events() if e.get("event") in ("n3d.starting", "server.state")]
    problems = check_transitions(entries)
    edges = Counter(f"{e['from']}→{e['to']}" for e in entries if e["event"] == "server.state")
    sub_bad = [f"{a}→{b}" for a, b, _ in stats.event_edges
               if ServerState(b) not in TRANSITIONS.get(ServerState(a), frozenset())]
    check("server.state history only takes allowed edges", not problems and not sub_bad,
          f"{sum(edges.values())} logged, {len(stats.event_edges)} received by the subscriber; "
          + (f"{problems[:3]} {sub_bad[:3]}" if problems or sub_bad else dict(edges).__repr__()))
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
    )


# --------------------------------------------------------------------------- output


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
        yield (f"burst ×{len(bursts)} of {BURST} connections: "
               + ", ".join(f"{k} {v}" for k, v in sorted(total.items()))
               + " (busy: -32000 reply; closed: closed without a reply)")
    held = [f.detail["half_frame_held"]["after_s"] for f in faults
            if "half_frame_held" in f.detail]
    if held:
        yield f"half frame held open: closed with -32700 after {min(held)}–{max(held)} s"
    for f in faults:
        if f.kind == "n3d_kill":
            yield (f"n3d SIGKILL: orphan group {f.detail.get('orphan_group')} "
                   f"({len(f.detail.get('orphan_members', []))} processes) stopped by the next "
                   f"n3d ({f.detail.get('orphan_stopped')}); socket back after "
                   f"{f.detail.get('socket_back_s')} s")
    pulls = [f.detail for f in faults if f.kind == "pulls" and "downloads" in f.detail]
    if pulls:
        yield (f"pulls: {sum(p['downloads'] for p in pulls)} /api/pull downloads for "
               f"{sum(len(p['models']) for p in pulls)} models pulled by "
               f"{sum(len(p['models']) + 2 for p in pulls)} callers")
    cut = [f.detail["pull_outcome"] for f in faults if "pull_outcome" in f.detail]
    if cut:
        yield f"pulls cut by a serve SIGKILL ended: {Counter(c[0] for c in cut if c)}"


def render(result: DrillResult) -> str:
    out = [f"n3d fault drill: {result.duration_s}s, seed {result.seed}"
           f"{' (short)' if result.short else ''}", "", "Faults (times in seconds)"]
    rows = [[k, s["injected"], s["failed"], s["recovery_median_s"], s["recovery_max_s"],
             s["warm_median_s"], s["warm_max_s"]] for k, s in fault_summary(result.faults).items()]
    out += _table(["fault", "n", "failed", "recover p50", "max", "warm again p50", "max"], rows)
    out += ["  recover: to running again (serve faults; sim_hang from the switch's clearing),",
            "  to a good pull (fail_pulls), to every burst connection's outcome, to a reload",
            "  applied (sighup); warm again: injection to the warm model loaded again"]
    out += ["", "Details"] + [f"  {line}" for line in _details(result.faults)]
    out += ["", "Requests"]
    rows = [[m, s["sent"], s["ok"], " ".join(f"{c}:{n}" for c, n in s["errors"].items()) or "",
             s["failed"], s["lost_to_n3d_kill"], s["unavailable"], s["p50_ms"], s["max_ms"]]
            for m, s in result.requests.items()]
    out += _table(["method", "sent", "ok", "errors (code:n)", "failed", "lost to kill",
                   "unavailable", "p50 ms", "max ms"], rows)
    out += ["", "Events received by the subscriber: "
            + ", ".join(f"{k} {v}" for k, v in sorted(result.events_received.items()))]
    out += ["", "Leak samples (n3d)"]
    samples = result.leak_samples
    step = max(1, len(samples) // 16)
    shown = samples[::step] + ([samples[-1]] if samples and samples[-1] is not samples[::step][-1]
                               else [])
    out += _table(["t s", "pid", "fds", "rss MiB", "phase"],
                  [[s.t_s, s.pid, s.fds, f"{s.rss_bytes / 2**20:.1f}", s.phase] for s in shown])
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=240.0, help="seconds (default 240)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--short", action="store_true", help="each fault once, short gaps")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp home")
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run_drill(args.duration, args.seed, short=args.short, keep_home=args.keep,
                       progress=say)
    print(json.dumps(result.to_json(), indent=1) if args.json else render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
