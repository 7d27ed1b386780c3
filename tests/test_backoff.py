"""The one capped backoff: 0, then doubling from the initial delay up to the cap, forever."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from n3d.backoff import exponential_backoff

attempts = st.integers(min_value=-(10**6), max_value=10**30)
delays = st.floats(min_value=0.05, max_value=1e9, allow_nan=False, allow_infinity=False)


def test_backoff_is_zero_before_the_first_attempt_then_doubles_to_the_cap() -> None:
    delays = [exponential_backoff(n, initial_s=0.5, max_s=60.0) for n in range(10)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert exponential_backoff(-3, initial_s=0.5, max_s=60.0) == 0.0


def test_backoff_at_attempt_ten_thousand_is_the_cap_not_an_overflow() -> None:
    # 0.5 * 2.0 ** 10_000 raised OverflowError in the keeper's own copy of this rule.
    assert exponential_backoff(1_025, initial_s=0.5, max_s=60.0) == 60.0
    assert exponential_backoff(10_000, initial_s=0.5, max_s=60.0) == 60.0
    assert exponential_backoff(10**100, initial_s=0.5, max_s=60.0) == 60.0
    assert exponential_backoff(10**100, initial_s=1e9, max_s=1e9) == 1e9


@given(attempts, attempts, delays, delays)
def test_backoff_never_decreases_and_never_exceeds_the_cap(
    a: int, b: int, x: float, y: float
) -> None:
    initial, cap = min(x, y), max(x, y)
    low, high = sorted((a, b))
    first = exponential_backoff(low, initial_s=initial, max_s=cap)
    second = exponential_backoff(high, initial_s=initial, max_s=cap)
    assert 0.0 <= first <= second <= cap


@given(st.integers(min_value=1, max_value=10**30), delays, delays)
def test_backoff_after_a_failure_is_at_least_the_initial_delay(
    attempt: int, x: float, y: float
) -> None:
    initial, cap = min(x, y), max(x, y)
    assert initial <= exponential_backoff(attempt, initial_s=initial, max_s=cap) <= cap
