"""What the phases of a lifecycle may use of the supervisor, and nothing more.

The phases (:mod:`~n3d.supervisor.lifecycle`, :mod:`~n3d.supervisor.watch`,
:mod:`~n3d.supervisor.foreign`) report to the state store, ask the health checker,
read the running settings, and record the child in the pid file. That is all a
:class:`Context` offers: no back-pointer to the :class:`~n3d.supervisor.Supervisor`
that they could write through, so each field has one owner (the supervisor owns
the store and the settings, the lifecycle its child) and the package has no import
circle. :class:`Wanted` is the one thing the control loop and the lifecycle share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from n3d.state import ServerState, Snapshot, StateStore
from n3d.supervisor.health import HealthChecker
from n3d.supervisor.liveness import Liveness
from n3d.supervisor.restart import RestartPolicy

if TYPE_CHECKING:
    from n3d.config import Settings

__all__ = ["Context", "Version", "Wanted"]

Version = Callable[[], Awaitable[str]]
"""``await version()`` → the server's version string; raises on failure."""


@dataclasses.dataclass(slots=True)
class Wanted:
    """What the last command asked for: the control loop and the lifecycle act on it.

    ``gen`` counts commands; ``applied`` is the one the current lifecycle acts on.
    """

    up: bool
    reason: str
    gen: int = 0
    applied: int = 0

    @property
    def pending(self) -> bool:
        """A command arrived that the current lifecycle was not started for."""
        return self.gen != self.applied


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """The narrow surface of the supervisor that its phases see.

    ``settings`` and ``command`` are read at each use: a reload replaces them
    (timings at once, the command at the next start). ``pid_file`` is None when
    there is no runtime dir; ``version`` is None when nothing can ask (a test's
    probe stands in for the server); ``liveness`` is None when nothing can reach
    inference (such a test again).
    """

    store: StateStore
    health: HealthChecker
    settings: Callable[[], Settings]
    command: Callable[[], tuple[str, ...]]
    pid_file: Path | None = None
    version: Version | None = None
    liveness: Liveness | None = None
    # The supervisor's drain hook (the proxy's), for a restart of a server that
    # still answers; None when nothing is in the request path.
    before_planned_stop: Callable[[], Awaitable[None]] | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self.store.snapshot

    def transition(self, target: ServerState, reason: str, **changes: object) -> None:
        """Take one edge of the state machine (the store refuses one it does not have)."""
        self.store.transition(target, reason, **changes)

    def policy(self) -> RestartPolicy:
        """The restart policy of the running settings (a reload applies at the next start)."""
        settings = self.settings()
        r = settings.restart
        return RestartPolicy(
            r.backoff_initial_s,
            r.backoff_max_s,
            r.max_failures,
            r.window_s,
            stable_after_s=settings.ollama.health_check_interval_s,
        )

    async def learn_version(self) -> None:
        """Ask the server its version for status (best effort, bounded)."""
        if self.version is None:
            return
        with anyio.move_on_after(self.settings().server.health_timeout_s):
            try:
                version = await self.version()
            except Exception:  # the version is a nicety, never a failure
                return
            self.store.update(version=version)
