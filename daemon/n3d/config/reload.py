"""A config reload as one pure plan: what runs afterwards, what changed, what must wait.

``plan_reload(running, new)`` takes the settings n3d runs and those just loaded from
the file (SIGHUP or `config.reload`) and returns a :class:`ReloadPlan`:

- ``effective``: the settings n3d runs from now on: ``new``, except the keys below,
  which keep their running value (and its source) until n3d restarts, and with
  ``pending_restart`` naming those whose file value differs. `config.get` shows
  exactly this: what runs, and what waits;
- ``changed``: the dotted keys whose running value changes now;
- ``needs_restart``: the keys whose new value waits for a restart of n3d.

Keys that wait for a restart of n3d, and why:

- ``ollama.base_url`` (with ``host`` and ``port``, which are read from it): the
  health probe, the model client and the child's ``OLLAMA_HOST`` were all built
  for one address, and moving them one by one would split them;
- ``server.mode``: it decides the whole lifecycle (adopt, own, or only watch);
- ``socket.path``: the socket is bound once, before anything starts.

Every other key applies at once, and the daemon hands ``effective`` to every part
(docs/behavior.md, "Reload"): the supervisor (health timings, restart policy,
timeouts; ``[server].command`` and ``env`` at the next start of the server), the
model service (cache, pulls, keep-warm), the socket (``max_message_bytes`` and
``max_connections`` for connections accepted from now on) and the logs (``[log]``
level and format). No part keeps values of its own: this module is the one place
that decides what a reload may change.

Pure: no I/O, no clock; tested as a table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from n3d.config.settings import Settings

__all__ = ["RESTART_KEYS", "ReloadPlan", "plan_reload"]

RESTART_KEYS = ("ollama.base_url", "server.mode", "socket.path")
# The sources of a kept key: base_url's source is also host's and port's.
_KEPT_SOURCES = {
    "ollama.base_url": ("ollama.base_url", "ollama.host", "ollama.port"),
    "server.mode": ("server.mode",),
    "socket.path": ("socket.path",),
}


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload does; see the module docstring."""

    effective: Settings
    changed: tuple[str, ...]
    needs_restart: tuple[str, ...]


def plan_reload(running: Settings, new: Settings) -> ReloadPlan:
    """The settings to run after reading ``new`` from the file while ``running`` runs."""
    waiting = tuple(
        key
        for key, now, wanted in (
            ("ollama.base_url", running.ollama.base_url, new.ollama.base_url),
            ("server.mode", running.server.mode, new.server.mode),
            ("socket.path", running.socket.path, new.socket.path),
        )
        if now != wanted
    )
    sources = dict(new.sources)
    for key in RESTART_KEYS:
        for name in _KEPT_SOURCES[key]:
            if name in running.sources:
                sources[name] = running.sources[name]
    effective = dataclasses.replace(
        new,
        ollama=dataclasses.replace(new.ollama, base_url=running.ollama.base_url),
        server=dataclasses.replace(new.server, mode=running.server.mode),
        socket=dataclasses.replace(new.socket, path=running.socket.path),
        sources=sources,
        pending_restart=waiting,
    )
    before, after = _flat(running.as_dict()), _flat(effective.as_dict())
    changed = tuple(key for key, value in after.items() if before.get(key) != value)
    return ReloadPlan(effective, changed, waiting)


def _flat(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {f"{section}.{key}": v for section, keys in values.items() for key, v in keys.items()}
