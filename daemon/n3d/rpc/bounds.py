"""The control socket's per-connection bounds as plain bookkeeping: no I/O, no clock.

Each decision here is a pure function of numbers the transport layer reads off
its sockets, so it is tested without a socket and survives a change of I/O model
(tests/rpc/test_bounds.py):

- :class:`Limits`: the numbers themselves, as the server hands them to each connection.
- :class:`ReplyBudget`: the unread-reply cap. A reply is checked *before* it is
  buffered, and a batch's reply is counted member by member while it is
  assembled, so one huge reply, or a batch whose replies add up past the cap,
  ends that connection instead of growing the daemon (a batch of 20 000
  ``rpc.discover`` would be 133 MB).
- :class:`Slots`: a connection's calls in flight. A single request takes one;
  a batch takes one for itself and its members run from a pool that takes more
  as they are free, so a batch obeys the same bound as pipelined requests.
- :func:`longest_idle`: which connection makes room when ``max_connections``
  is reached: the one idle longest, if it has been idle long enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Limits", "ReplyBudget", "Slots", "longest_idle"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds (bytes, seconds, counts)."""

    max_message_bytes: int = 1_048_576
    frame_timeout_s: float = 10.0
    max_outgoing_bytes: int = 8 * 1_048_576
    max_inflight: int = 64


@dataclass(slots=True)
class ReplyBudget:
    """Reply bytes one connection holds that its client has not read yet, against ``cap``.

    Two kinds count: bytes already handed to the transport and not yet taken by
    the kernel (``unread``: the caller reads it off its transport each time), and
    bytes of a batch reply being assembled (:attr:`assembling`, counted here).
    """

    cap: int
    assembling: int = 0

    def admits(self, unread: int, size: int) -> bool:
        """Whether ``size`` more bytes stay within the cap."""
        return unread + self.assembling + size <= self.cap

    def hold(self, unread: int, size: int) -> bool:
        """Count ``size`` bytes of a batch reply being assembled; False (none counted) if over."""
        if not self.admits(unread, size):
            return False
        self.assembling += size
        return True

    def release(self, size: int) -> None:
        """The assembled bytes leave the budget (they are written, or dropped)."""
        self.assembling = max(0, self.assembling - size)

    def refusal(self, unread: int, size: int) -> str:
        """What the client is told when ``size`` more bytes would pass the cap."""
        return (
            f"Server busy: the replies would leave {unread + self.assembling + size} bytes "
            f"unread on this connection, over its cap of {self.cap}; closing it"
        )


@dataclass(slots=True)
class Slots:
    """Calls in flight on one connection, at most ``limit``; one batch at a time.

    A batch holds one slot for as long as it runs (its first member runs in it)
    and takes more for its other members while they are free. Only one batch
    runs at a time, so a connection never holds more than one batch's members
    (at most one ``max_message_bytes`` message of them) waiting for slots.
    """

    limit: int
    used: int = 0
    batch: bool = False  # a batch is running

    def can_start(self, *, batch: bool) -> bool:
        """Whether a frame (a single request, or a batch) may start now."""
        return self.used < self.limit and not (batch and self.batch)

    def start(self, *, batch: bool) -> None:
        self.used += 1
        self.batch = self.batch or batch

    def finish(self, *, batch: bool) -> None:
        self.used -= 1
        if batch:
            self.batch = False

    def take(self) -> bool:
        """One more slot for a batch member, if one is free."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give(self) -> None:
        self.used -= 1


def longest_idle(
    idle_since: Iterable[tuple[int, float]], now: float, min_idle_s: float
) -> int | None:
    """The connection idle longest, if idle at least ``min_idle_s``; else None.

    ``idle_since`` pairs each *evictable* connection's id with the time its last
    request was answered (or it connected); a connection with a call in flight,
    a subscription, a half-read frame or replies not yet read is not evictable
    and is left out by the caller. ``min_idle_s`` keeps a burst of newcomers
    from evicting each other: only a connection idle that long makes room.
    """
    best: tuple[float, int] | None = None
    for connection_id, since in idle_since:
        if now - since >= min_idle_s and (best is None or since < best[0]):
            best = (since, connection_id)
    return None if best is None else best[1]
