"""The supervisor: owns (or watches) `ollama serve`, checks it, restarts it, stops it.

Modules: ``process`` (spawn, drain, stop the group), ``health`` (throttled,
single-flight probe), ``restart`` (pure backoff policy), ``orphans`` (ollama.pid),
``ports`` (who holds the port), ``watch`` (the watching phases), ``notify``
(sd_notify) and ``supervisor`` (the state-machine driver). docs/behavior.md
describes the behaviour they implement together.
"""

from __future__ import annotations

from n3d.supervisor.supervisor import Supervisor

__all__ = ["Supervisor"]
