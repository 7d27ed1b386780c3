"""What the daemon tells others when the server changes: systemd, clients, the model service.

The supervisor knows nothing of sockets or models (data flows one way); this
bridge listens to its state store and health checks and fans each change out:

- every state edge → ``STATUS=`` to systemd and the ``server.state`` event
  ``{from, to, reason, pid, restarts}``;
- entering ``running``/``external`` → :meth:`Models.on_server_ready` with a new
  generation (so warm models are loaded again after every restart);
  leaving for ``stopped``/``backoff``/``fatal``/``unreachable``/``stopping`` →
  :meth:`Models.on_server_lost` (running pulls fail at once, warm-ups pause);
- a health result whose ``ok`` differs from the previous one → the ``health`` event;
- a repair step (:class:`~n3d.supervisor.liveness.RepairEvent`) → the ``repair``
  event ``{stage, model, reason, at}``; after a ``runner`` step, ``rewarm()`` (keep-warm
  looks at `/api/ps` now, and loads the model again if it left).

It is given what it calls, not the daemon: ``publish`` (log the event and send it to
subscribed clients), ``set_status`` (systemd's ``STATUS=`` line) and ``rewarm``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from n3d.models.events import Publish
from n3d.state import ServerState, Snapshot, Transition
from n3d.supervisor.health import HealthResult
from n3d.supervisor.liveness import RepairEvent

__all__ = ["EventBridge", "ServerWatcher"]


class ServerWatcher(Protocol):
    """What the bridge tells the model service (:class:`n3d.models.Models` is one)."""

    def on_server_ready(self, generation: int) -> None: ...

    def on_server_lost(self) -> None: ...


_UP = {ServerState.RUNNING, ServerState.EXTERNAL}
_LOST = {
    ServerState.STOPPED,
    ServerState.BACKOFF,
    ServerState.FATAL,
    ServerState.UNREACHABLE,
    ServerState.STOPPING,
}


class EventBridge:
    """Listens to the supervisor; see the module docstring."""

    def __init__(
        self,
        models: ServerWatcher,
        *,
        publish: Publish,
        set_status: Callable[[str], object],
        rewarm: Callable[[], object] | None = None,
    ) -> None:
        self._models = models
        self._publish = publish
        self._set_status = set_status
        self._rewarm = rewarm
        self._generation = 0
        self._health_ok: bool | None = None

    def on_state(self, edge: Transition | None, snapshot: Snapshot) -> None:
        if edge is None:
            return
        self._set_status(snapshot.summary())
        self._publish(
            "server.state",
            {
                "from": edge.source.value,
                "to": edge.target.value,
                "reason": edge.reason,
                "pid": snapshot.pid,
                "restarts": snapshot.restarts,
                "at": edge.at,
            },
        )
        # degraded → running is the same server recovering, not a new one.
        if edge.target in _UP and edge.source != ServerState.DEGRADED:
            self._generation += 1
            self._models.on_server_ready(self._generation)
        elif edge.target in _LOST and edge.source not in _LOST:
            self._models.on_server_lost()

    def on_health(self, result: HealthResult) -> None:
        if result.ok == self._health_ok:
            return
        self._health_ok = result.ok
        payload: dict[str, object] = {
            "ok": result.ok,
            "latency_ms": None if result.latency_s is None else round(result.latency_s * 1e3, 3),
            "checked_at": result.checked_at,
        }
        if result.error is not None:
            payload["error"] = result.error
        self._publish("health", payload)

    def on_repair(self, event: RepairEvent) -> None:
        payload: dict[str, object] = {"stage": event.stage, "reason": event.reason}
        if event.model is not None:
            payload["model"] = event.model
        payload["at"] = event.at
        self._publish("repair", payload)
        if event.stage == "runner" and self._rewarm is not None:
            self._rewarm()
