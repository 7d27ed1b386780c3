"""The server's state machine: named states, the allowed edges, snapshots, a store.

Standard library only, so the table can be read (and tested) without the rest of
n3d. Every transition goes through :meth:`StateStore.transition`, which refuses an
edge that is not in :data:`TRANSITIONS`; an illegal edge is a bug in the driver
(``n3d.supervisor``), never a user error, hence :class:`InvalidTransition`.

Change notification is a plain callback list, so the store works with any event
loop: the supervisor subscribes a callback that sets an ``anyio.Event``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from n3d.redact import redact_url

__all__ = [
    "TRANSITIONS",
    "InvalidTransition",
    "ServerState",
    "Snapshot",
    "StateStore",
    "Transition",
    "can_transition",
]


class ServerState(StrEnum):
    """What n3d knows about the Ollama server (lowercase strings in JSON)."""

    STOPPED = "stopped"  # nothing of ours runs; nothing adopted
    STARTING = "starting"  # our child is spawned; `HEAD /` has not answered yet
    RUNNING = "running"  # our child answers `HEAD /`
    DEGRADED = "degraded"  # our child runs but its last health check failed
    BACKOFF = "backoff"  # waiting before the next start attempt
    STOPPING = "stopping"  # SIGTERM sent (or about to be); waiting for the group to go
    FATAL = "fatal"  # too many failed starts; only `server.start` leaves it
    EXTERNAL = "external"  # a server we did not start (mode external, or adopted) answers
    UNREACHABLE = "unreachable"  # that server does not answer


S = ServerState

# Every allowed edge, with the reason it exists. Anything else is a driver bug.
TRANSITIONS: Mapping[ServerState, frozenset[ServerState]] = {
    S.STOPPED: frozenset(
        {
            S.STARTING,  # mode auto/managed at boot, or `server.start`
            S.EXTERNAL,  # mode external answers, or auto finds a server already answering
            S.UNREACHABLE,  # mode external and nothing answers
        }
    ),
    S.STARTING: frozenset(
        {
            S.RUNNING,  # `HEAD /` answered within start_timeout
            S.BACKOFF,  # the start failed (exit, timeout, port taken); retry after a delay
            S.FATAL,  # the start failed once too often inside the restart window
            S.STOPPING,  # `server.stop`/`server.restart`/shutdown during the start
        }
    ),
    S.RUNNING: frozenset(
        {
            S.DEGRADED,  # a health check failed
            S.BACKOFF,  # the child exited on its own (crash, OOM kill, SIGKILL)
            S.FATAL,  # it exited right after starting, once too often (crash loop)
            S.STOPPING,  # `server.stop`/`server.restart`/shutdown
        }
    ),
    S.DEGRADED: frozenset(
        {
            S.RUNNING,  # a later check passed again
            S.BACKOFF,  # the child exited while degraded
            S.FATAL,  # ... once too often
            S.STOPPING,  # failures_before_restart checks failed in a row (hung), or a command
        }
    ),
    S.BACKOFF: frozenset(
        {
            S.STARTING,  # the delay passed (or `server.start`/`server.restart` cut it short)
            S.EXTERNAL,  # auto: someone else's server answers now; adopt it instead
            S.STOPPED,  # `server.stop`/shutdown while waiting
        }
    ),
    S.STOPPING: frozenset(
        {
            S.STOPPED,  # the process group is gone after a stop or at shutdown
            S.BACKOFF,  # a hung server was killed; restart after the policy's delay
            S.FATAL,  # ... but it was a crash loop
            S.STARTING,  # `server.restart`: start again at once
        }
    ),
    S.FATAL: frozenset(
        {
            S.STARTING,  # `server.start`/`server.restart` clears fatal
            S.STOPPED,  # `server.stop`/shutdown
        }
    ),
    S.EXTERNAL: frozenset(
        {
            S.UNREACHABLE,  # the foreign server stopped answering
            S.STOPPED,  # shutdown: we only stop watching (never stop what we did not start)
        }
    ),
    S.UNREACHABLE: frozenset(
        {
            S.EXTERNAL,  # it answers again
            S.STARTING,  # mode auto: the adopted server is gone, so start our own
            S.STOPPED,  # shutdown
        }
    ),
}


# States whose STATUS= line says why (Snapshot.summary).
_SUMMARY_REASON = frozenset({S.BACKOFF, S.FATAL, S.DEGRADED, S.UNREACHABLE})


def can_transition(source: ServerState, target: ServerState) -> bool:
    """Whether ``source → target`` is an edge of the state machine."""
    return target in TRANSITIONS[source]


class InvalidTransition(RuntimeError):
    """The driver asked for an edge the state machine does not have (a bug)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent view of the server, as `status` reports it.

    Times are wall-clock seconds since the epoch (``since``) so they can be shown;
    ``restarts`` counts starts after the first one in this n3d's life.
    """

    state: ServerState = ServerState.STOPPED
    mode: str = "auto"
    base_url: str = ""  # for showing: credentials hidden (see __post_init__)
    pid: int | None = None  # serve's pid when we own it (or adopted an orphan)
    owned: bool = False  # True when n3d started (or adopted as its own) the process
    version: str | None = None  # Ollama's version, when known
    restarts: int = 0
    since: float = field(default_factory=time.time)  # when `state` was entered
    reason: str = ""  # why `state` was entered
    last_exit: str | None = None  # "exit code 1", "signal SIGKILL", ...
    last_error: str | None = None  # the last failed start or check, for humans
    port_holder: str | None = None  # "pid 123 (ollama)" when the port is taken
    next_start_in_s: float | None = None  # backoff delay, when in backoff

    def __post_init__(self) -> None:
        # A snapshot is what status, events and the service manager show; nothing
        # connects with it, so the URL's userinfo is hidden once, here.
        object.__setattr__(self, "base_url", redact_url(self.base_url))

    def summary(self) -> str:
        """One line for systemd's ``STATUS=``: ``ollama running (pid 12) at URL, 1 restart``.

        The reason is added where it is the news: a state that is waiting or failing.
        """
        text = f"ollama {self.state.value}"
        if self.pid:
            text += f" (pid {self.pid})"
        text += f" at {self.base_url}"
        if self.restarts:
            text += f", {self.restarts} restart{'s' if self.restarts != 1 else ''}"
        if self.state in _SUMMARY_REASON:
            text += f": {self.reason}"
        return text


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge taken: ``source → target`` because of ``reason``, at wall time ``at``."""

    source: ServerState
    target: ServerState
    reason: str
    at: float


Listener = Callable[[Transition | None, Snapshot], None]


class StateStore:
    """Holds the current :class:`Snapshot`, validates transitions, notifies listeners.

    Listeners are called synchronously after every change (``Transition`` is None
    for changes that keep the state, e.g. a new pid). A listener that raises is a
    bug and is not shielded. ``history`` keeps the last ``history_size`` edges.
    """

    def __init__(self, initial: Snapshot, *, history_size: int = 256) -> None:
        self._snapshot = initial
        self._listeners: list[Listener] = []
        self.history: deque[Transition] = deque(maxlen=history_size)
        self.version = 0  # bumped on every change, for cheap "did anything change?"

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def state(self) -> ServerState:
        return self._snapshot.state

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after each change; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def transition(self, target: ServerState, reason: str, **changes: Any) -> Transition:
        """Move to ``target`` (and apply ``changes``); raises :class:`InvalidTransition`."""
        source = self._snapshot.state
        if not can_transition(source, target):
            raise InvalidTransition(f"{source.value} → {target.value} is not allowed ({reason})")
        now = time.time()
        edge = Transition(source, target, reason, now)
        self._snapshot = replace(self._snapshot, state=target, since=now, reason=reason, **changes)
        self.history.append(edge)
        self._notify(edge)
        return edge

    def update(self, **changes: Any) -> Snapshot:
        """Change fields other than ``state`` (pid, version, last_error, ...)."""
        if "state" in changes:
            raise InvalidTransition("use transition() to change the state")
        self._snapshot = replace(self._snapshot, **changes)
        self._notify(None)
        return self._snapshot

    def _notify(self, edge: Transition | None) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener(edge, self._snapshot)
