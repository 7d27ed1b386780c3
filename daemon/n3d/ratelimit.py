"""One token bucket, for whatever n3d re-emits on behalf of someone else.

Ollama's output lines (:mod:`n3d.supervisor.output`) and the warnings about
Ollama's unusable answers (:mod:`n3d.ollama.wire`) both come at a rate someone
outside n3d chooses; both pass a :class:`TokenBucket`, which lets a burst through,
then a steady rate, and counts what it held back so a summary can say how much.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; counts what it holds back.

    ``summary_every_s`` spaces the summaries of what was held back; ``clock`` is
    monotonic seconds (injected by tests, which then never sleep).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        summary_every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.summary_every_s = summary_every_s
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._summarized_at = self._at
        self.pending = 0  # held back since the last summary
        self.suppressed = 0  # held back in all

    def take(self, count: int) -> int:
        """How many of ``count`` new items may pass (the first ones); the rest count
        as suppressed. Whole batches at a time: a flood costs no work per item."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        allowed = min(count, int(self._tokens))
        self._tokens -= allowed
        self.pending += count - allowed
        self.suppressed += count - allowed
        return allowed

    def summary_due(self, *, final: bool = False) -> int:
        """How many held-back items to report now (0: none, or not yet); resets the count.

        Due ``summary_every_s`` after the previous summary (or the bucket's creation),
        or at the end (``final``): a summary per item would itself be a flood.
        """
        if not self.pending:
            return 0
        now = self._clock()
        if not final and now - self._summarized_at < self.summary_every_s:
            return 0
        count, self.pending, self._summarized_at = self.pending, 0, now
        return count
