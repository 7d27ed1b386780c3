"""One capped exponential backoff, for everything in n3d that retries a failure.

The restart policy (a failed start of `ollama serve`) and the keep-warm keeper (a
failed or evicted warm-up) both wait ``exponential_backoff(n, ...)`` before retry
``n``::

    n <= 0   ->  0
    n >= 1   ->  min(initial_s * 2**(n - 1), max_s)

so 0, initial, 2*initial, 4*initial, ... up to ``max_s`` and ``max_s`` from then on,
however large ``n`` grows. It is a pure function of its arguments (no clock, no
state) and never raises for any integer ``n``: the keeper once had its own copy of
this line without the cap on the exponent, and ``2.0 ** 1024`` raised OverflowError
after about 17 hours of failed warm-ups, which ended the daemon. Callers keep the
count; this module only turns it into seconds.
"""

from __future__ import annotations

__all__ = ["exponential_backoff"]

# 2.0 ** 1023 is the largest power of two a float holds; 2.0 ** 1024 raises
# OverflowError. Any positive initial delay has reached any cap long before.
_MAX_EXPONENT = 1023


def exponential_backoff(attempt: int, *, initial_s: float, max_s: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    ``initial_s`` is the first delay and ``max_s`` the cap, both in seconds with
    ``0 < initial_s <= max_s`` (the config checks guarantee it). The result is 0
    for ``attempt <= 0``, never decreases as ``attempt`` grows, and never exceeds
    ``max_s``.
    """
    if attempt <= 0:
        return 0.0
    exponent = min(attempt - 1, _MAX_EXPONENT)
    # initial_s * 2**1023 may be inf for a large initial_s: min() turns that into the cap.
    return min(initial_s * 2.0**exponent, max_s)
