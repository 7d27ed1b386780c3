"""The supervisor: owns (or watches) `ollama serve`, checks it, restarts it, stops it.

Modules: ``supervisor`` (the state-machine driver: public API, commands, the
control loop), ``lifecycle`` (one lifecycle: start attempts, backoff, fatal, the
cancel edges), ``foreign`` (adopt and watch a server n3d did not start), ``watch``
(the watching phases of our child), ``process`` (spawn, drain, stop the group),
``spawn`` (why a spawn failed, and whether retrying helps), ``output`` (the
child's lines, rate-limited), ``groups`` (process groups, the instance marker),
``escape`` (a command that daemonized itself), ``health`` (throttled,
single-flight probe), ``restart`` (pure backoff policy), ``pidfile``
(ollama.pid), ``orphans`` (what a killed n3d left), ``ports`` (who holds the
port) and ``notify`` (sd_notify).
docs/behavior.md describes the behaviour they implement together.
"""

from __future__ import annotations

from n3d.supervisor.supervisor import Supervisor

__all__ = ["Supervisor"]
