"""Single flight: concurrent callers of one key share one call instead of each making it.

``await flights.run(key, call)`` runs ``call()`` in the caller's own task, unless a
call for ``key`` is already running; then it waits for that call and shares how it
ended:

- its result: the same object for every waiter;
- its failure (an :class:`Exception`): each waiter raises its own copy, with the
  same cause, because one exception object raised from many tasks piles all their
  tracebacks onto it;
- no outcome, because the task running it was cancelled: then one waiter takes
  over and runs its own ``call``, the others wait for that one. Nobody waits
  forever and nobody fails of someone else's cancellation. A waiter that is
  itself cancelled just leaves.

``forget(key)`` detaches the running call: whoever already waits still gets its
outcome, callers from then on start a new one (the model cache after a pull).

Nothing is cached here; each user keeps its own freshness rule. The three users:
the health checker and the model cache (:meth:`SingleFlight.run`), and the pull
jobs, which run in a task group, outlive their callers and fan out progress, so
they use :class:`Flight` alone for the outcome they share.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

__all__ = ["Flight", "SingleFlight", "shared_error"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def shared_error(error: E) -> E:
    """``error`` for one more waiter: a copy with the same cause and its own traceback.

    An exception that cannot be copied (a constructor ``copy`` cannot call again)
    is shared as it is: tracebacks piling up on it beat a waiter failing with a
    TypeError instead of the call's error.
    """
    try:
        dup = copy.copy(error)
    except Exception:  # any failure to copy: fall back to the original
        return error
    dup.__cause__ = error.__cause__  # also sets __suppress_context__, as `raise from` does
    return dup


class Flight(Generic[T]):
    """One call's outcome for every task that waits on it.

    ``result`` (set with :meth:`succeed`) or ``error`` is set before ``finished``;
    with neither, the call was abandoned (the task running it was cancelled).
    """

    def __init__(self) -> None:
        self.finished = anyio.Event()
        self.error: Exception | None = None
        self._result: tuple[T] | None = None  # boxed: a call may succeed with None

    @property
    def result(self) -> T | None:
        return None if self._result is None else self._result[0]

    def succeed(self, result: T) -> None:
        self._result = (result,)

    def finish(self) -> None:
        """Wake every waiter; set ``result`` or ``error`` first."""
        self.finished.set()

    @property
    def abandoned(self) -> bool:
        return self.finished.is_set() and self._result is None and self.error is None

    def outcome(self) -> T:
        """The result, else this waiter's own copy of the error (once ``finished``)."""
        if self._result is not None:
            return self._result[0]
        if self.error is not None:
            raise shared_error(self.error)
        raise RuntimeError("the call ended without an outcome")


class SingleFlight(Generic[K, T]):
    """At most one running call per key; concurrent callers share it."""

    def __init__(self) -> None:
        self._flights: dict[K, Flight[T]] = {}

    def forget(self, key: K) -> None:
        """Let the next caller start a new call; those waiting keep the running one."""
        self._flights.pop(key, None)

    async def run(self, key: K, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``'s outcome, shared with every concurrent caller of ``key``."""
        while True:
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, call)
            await flight.finished.wait()
            if not flight.abandoned:
                return flight.outcome()
            # Its runner was cancelled: the first waiter back here runs the call.

    async def _lead(self, key: K, call: Callable[[], Awaitable[T]]) -> T:
        flight: Flight[T] = Flight()
        self._flights[key] = flight
        try:
            result = await call()
            flight.succeed(result)
            return result
        except Exception as exc:
            flight.error = exc
            raise
        finally:  # cancellation (a BaseException) leaves the flight abandoned
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.finish()
