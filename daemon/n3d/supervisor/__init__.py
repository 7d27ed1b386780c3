"""The supervisor: owns (or watches) `ollama serve`, checks it, restarts it, stops it.

Modules: ``supervisor`` (the state-machine driver: public API, commands, the
control loop), ``context`` (what the phases below may use of it: no
back-pointer), ``lifecycle`` (one lifecycle: start attempts, backoff, fatal, the
cancel edges), ``foreign`` (adopt and watch a server n3d did not start), ``watch``
(the watching phases of our child), ``spawn`` (start the child, drain its output,
and why a spawn failed), ``process`` (the running child: its exit, its resources,
the bounded stop of its group), ``output`` (the child's lines, rate-limited),
``groups`` (process groups, the instance marker), ``escape`` (a command that
daemonized itself), ``health`` (throttled, single-flight probe), ``restart``
(pure backoff policy), ``pidfile`` (ollama.pid, one per server), ``orphans``
(what a killed n3d left), ``models_dir`` (shared models directories and
OLLAMA_NOPRUNE) and ``ports`` (who holds the port). sd_notify is :mod:`n3d.service.notify`.
docs/behavior.md describes the behaviour they implement together.
"""

from __future__ import annotations

from n3d.supervisor.supervisor import Supervisor

__all__ = ["Supervisor"]
