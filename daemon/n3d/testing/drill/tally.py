"""Request accounting shared by every client thread: outcomes per method and n3d's down windows.

:class:`Stats` sorts each call into ok, a documented error, a failure (late, undocumented
code, connection lost while n3d ran), lost to n3d's own SIGKILL, or unavailable (n3d down,
never sent), and counts the events the subscriber receives. :class:`DownWindows` records
when n3d was SIGKILLed and not yet answering, so a call cut by that kill is not a failure.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from n3d.client import DaemonUnreachable
from n3d.testing.drill.bounds import DOCUMENTED_CODES, REQUEST_BOUND_S
from n3d.testing.drill.records import MethodStats


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
