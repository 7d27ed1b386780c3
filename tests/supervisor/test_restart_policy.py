"""The restart policy is pure: backoff doubles to a cap, too many failures give up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from n3d.backoff import exponential_backoff
from n3d.supervisor.restart import FailureRecord, RestartPolicy

POLICY = RestartPolicy(
    backoff_initial_s=0.5, backoff_max_s=8.0, max_failures=5, window_s=300.0, stable_after_s=30.0
)


def test_backoff_doubles_from_initial_up_to_max() -> None:
    assert [POLICY.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert POLICY.delay(0) == 0.0
    assert POLICY.delay(10_000) == 8.0


def test_more_than_max_failures_in_the_window_gives_up() -> None:
    record, now, delays = FailureRecord(), 0.0, []
    for _ in range(POLICY.max_failures):
        record, decision = record.failed_start(POLICY, now)
        assert not decision.give_up
        delays.append(decision.delay_s)
        now += decision.delay_s
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    record, decision = record.failed_start(POLICY, now)
    assert decision.give_up and decision.failures == POLICY.max_failures + 1
    assert "max_failures = 5" in decision.reason


def test_failures_outside_the_window_are_forgotten() -> None:
    record = FailureRecord()
    for t in (0.0, 1.0, 2.0, 3.0, 4.0):
        record, _ = record.failed_start(POLICY, t)
    # 400 s later the old failures have left the 300 s window: this is failure 1 again
    record, decision = record.failed_start(POLICY, 404.0)
    assert not decision.give_up and decision.failures == 1 and decision.delay_s == 0.5


def test_a_healthy_run_resets_the_count_and_restarts_at_once() -> None:
    record = FailureRecord()
    for t in (0.0, 1.0, 2.0):
        record, _ = record.failed_start(POLICY, t)
    record, decision = record.run_ended(POLICY, 100.0, healthy_for_s=31.0)
    assert decision.delay_s == 0.0 and not decision.give_up and record.times == ()
    assert FailureRecord((1.0, 2.0)).healthy().times == ()


def test_a_run_shorter_than_stable_counts_as_a_failed_start() -> None:
    record, decision = FailureRecord((0.0,)).run_ended(POLICY, 10.0, healthy_for_s=2.0)
    assert decision.failures == 2 and decision.delay_s == 1.0
    assert record.times == (0.0, 10.0)


@given(
    initial=st.floats(0.001, 10.0),
    cap=st.floats(0.001, 600.0),
    failures=st.integers(1, 500),
)
def test_delay_is_monotonic_and_bounded(initial: float, cap: float, failures: int) -> None:
    policy = RestartPolicy(backoff_initial_s=initial, backoff_max_s=cap)
    assert 0.0 < policy.delay(failures) <= cap
    assert policy.delay(failures) <= policy.delay(failures + 1)


@given(st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=40))
def test_never_gives_up_with_at_most_max_failures_in_any_window(gaps: list[float]) -> None:
    record, now = FailureRecord(), 0.0
    for gap in gaps:
        now += gap
        record, decision = record.failed_start(POLICY, now)
        in_window = sum(1 for t in record.times if now - t < POLICY.window_s)
        assert decision.give_up == (in_window > POLICY.max_failures)


@given(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(min_value=0.05, max_value=60.0),
    st.floats(min_value=60.0, max_value=1e9),
)
def test_restart_delay_is_the_shared_capped_backoff(
    failures: int, initial: float, cap: float
) -> None:
    policy = RestartPolicy(backoff_initial_s=initial, backoff_max_s=cap)
    assert policy.delay(failures) == exponential_backoff(failures, initial_s=initial, max_s=cap)
