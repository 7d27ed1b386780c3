"""When the keep-warm keeper acts: pure functions of times, no I/O.

- **Polling**: `/api/ps` every ``poll_interval(health_check_interval_s)`` seconds, a
  third of the health interval clamped to 1-10 s (10 s with the default 30 s).
  `/api/ps` only reads the scheduler's table, so this is cheap for Ollama.
- **Refresh**: a warm model whose keep_alive is finite (K seconds) is refreshed
  ``refresh_lead(K, poll)`` seconds before its ``expires_at``: ``min(K/2, 2*poll + 1)``.
  Two polls of slack make sure it is caught before it expires; the K/2 cap means at
  most one warm request per K/2 seconds (Ollama's timer restarts at each request).
- **Overridden forever**: a model meant to stay forever that shows a finite expiry
  was given a keep_alive by some client (research §1: every request carrying
  keep_alive overwrites the timer). n3d does not fight each request; it puts
  "forever" back once, ``2*poll + 1`` s before that client's timer would unload it.
- **Backoff**: a model that must be warmed again soon after the last warm-up (it
  failed, or was evicted again) waits ``backoff_delay(attempts)``: 0 for the first
  attempt, then 0.5 s doubling to 60 s (:mod:`n3d.backoff`, shared with the restart
  policy). ``attempts`` goes back to 0 once the model
  stayed loaded for ``STABLE_S`` seconds or the server restarted.
"""

from __future__ import annotations

import math
from datetime import datetime

from n3d.backoff import exponential_backoff

__all__ = [
    "BACKOFF_INITIAL_S",
    "BACKOFF_MAX_S",
    "STABLE_S",
    "backoff_delay",
    "poll_interval",
    "refresh_at",
    "refresh_lead",
]

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 60.0
STABLE_S = 30.0
# Ollama shows a negative keep-alive as ~year 2318; anything this far out is forever.
_FOREVER_AFTER_S = 20 * 365 * 86400.0


def poll_interval(health_check_interval_s: float) -> float:
    """Seconds between `/api/ps` polls: a third of the health interval, within 1-10 s."""
    return max(1.0, min(10.0, health_check_interval_s / 3))


def refresh_lead(keep_alive_s: float, poll_s: float) -> float:
    """Seconds before ``expires_at`` at which a finite keep-alive is refreshed."""
    return min(keep_alive_s / 2, 2 * poll_s + 1.0)


def backoff_delay(attempts: int) -> float:
    """Seconds to wait before the next warm-up after ``attempts`` recent ones.

    The shared capped backoff (:mod:`n3d.backoff`): 60 s however many attempts failed.
    """
    return exponential_backoff(attempts, initial_s=BACKOFF_INITIAL_S, max_s=BACKOFF_MAX_S)


def refresh_at(
    expires: datetime | None, wanted_s: float, poll_s: float, now: datetime
) -> float | None:
    """Seconds from ``now`` until a loaded warm model should get a warm request.

    ``wanted_s`` is the warm keep_alive in seconds (``math.inf`` = forever). None
    means nothing to do: it is loaded forever, or Ollama sent no expiry. Zero or
    less means now.
    """
    if expires is None:
        return None
    remaining = (expires - now).total_seconds()
    if remaining > _FOREVER_AFTER_S:
        return None  # forever, whether n3d or someone else asked for it
    if math.isinf(wanted_s):
        return remaining - (2 * poll_s + 1.0)
    return remaining - refresh_lead(wanted_s, poll_s)
