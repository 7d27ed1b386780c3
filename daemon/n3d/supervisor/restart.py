"""The restart policy: pure functions of the settings, the failure record and the time.

Rules (docs/behavior.md, "Restart policy"):

* A **failed start** is a start that never answered `HEAD /` within `start_timeout`
  (exit, timeout, port taken, executable missing), *or* a run that ended before it
  had been healthy for ``stable_after_s`` (a crash loop must not restart at full
  speed just because each run answered once).
* The n-th failed start inside ``window_s`` waits ``backoff_initial_s * 2**(n-1)``
  seconds, capped at ``backoff_max_s`` (:func:`n3d.backoff.exponential_backoff`,
  the one backoff rule of n3d).
* More than ``max_failures`` failed starts inside ``window_s`` give up: state
  ``fatal`` until an explicit `server.start`.
* A run that stayed healthy for ``stable_after_s`` clears the record, and the
  exit that ends it restarts at once (delay 0).

Nothing here reads a clock or sleeps: callers pass ``now`` (monotonic seconds), so
the policy is tested exhaustively without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from n3d.backoff import exponential_backoff

__all__ = ["Decision", "FailureRecord", "RestartPolicy"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """The settings of the policy; all durations in seconds."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    max_failures: int = 5
    window_s: float = 300.0
    stable_after_s: float = 30.0  # a run this long without trouble counts as healthy

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed start in the window (>= 1)."""
        return exponential_backoff(
            failures, initial_s=self.backoff_initial_s, max_s=self.backoff_max_s
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a start failed or a run ended.

    ``give_up`` means state ``fatal``; otherwise start again after ``delay_s``.
    ``failures`` is the number of failed starts inside the window, this one included.
    """

    give_up: bool
    delay_s: float
    failures: int
    reason: str


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """Monotonic times of the failed starts since the last healthy run (oldest first)."""

    times: tuple[float, ...] = ()

    def in_window(self, policy: RestartPolicy, now: float) -> FailureRecord:
        """The record without failures older than the window."""
        return FailureRecord(tuple(t for t in self.times if now - t < policy.window_s))

    def failed_start(self, policy: RestartPolicy, now: float) -> tuple[FailureRecord, Decision]:
        """Record a failed start at ``now`` and decide: retry after a delay, or give up."""
        record = FailureRecord((*self.in_window(policy, now).times, now))
        count = len(record.times)
        if count > policy.max_failures:
            return record, Decision(
                True,
                0.0,
                count,
                f"{count} failed starts within {policy.window_s:g}s "
                f"(max_failures = {policy.max_failures})",
            )
        delay = policy.delay(count)
        return record, Decision(False, delay, count, f"failed start {count}, retry in {delay:g}s")

    def run_ended(
        self, policy: RestartPolicy, now: float, healthy_for_s: float
    ) -> tuple[FailureRecord, Decision]:
        """A run that had reached `running` ended (exit or hang) after ``healthy_for_s``.

        A run healthy for at least ``stable_after_s`` clears the record and restarts
        at once; a shorter one counts as a failed start.
        """
        if healthy_for_s >= policy.stable_after_s:
            return FailureRecord(), Decision(False, 0.0, 0, "ended after a healthy run")
        return self.failed_start(policy, now)

    def healthy(self) -> FailureRecord:
        """A run stayed healthy (or `server.start` cleared fatal): forget the failures."""
        return FailureRecord()
