"""A config reload as one pure plan: what runs afterwards, what changed, what must wait.

``plan_reload(running, new)`` takes the settings n3d runs and those just loaded from
the file (SIGHUP or `config.reload`) and returns a :class:`ReloadPlan`:

- ``effective``: the settings n3d runs from now on: ``new``, except the keys below,
  which keep their running value (and its source) until n3d restarts, and with
  ``pending_restart`` naming those whose file value differs. `config.get` shows
  exactly this: what runs, and what waits;
- ``changed``: the dotted keys whose running value changes now;
- ``needs_restart``: the keys whose new value waits for a restart of n3d.

The keys that wait for a restart of n3d are those marked ``live=False`` in
:data:`n3d.config.schema.SCHEMA`, with a comment there saying why: ``ollama.base_url``
(with ``host`` and ``port``, which are part of it), ``server.mode`` and
``socket.path``. A kept key keeps every field it lands on and its source (and its
parts' sources). The list of ``[[servers]]`` (their number, names and addresses)
waits too, reported as ``servers``: each server is a supervised process with its own
pid file, health and routes. A server's ``env`` and ``models`` apply at once (the
next start of that server, the next warm pass), as ``[server].env`` does.

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

from n3d.config.schema import SCHEMA, with_parts
from n3d.config.servers import ServerSpec, written
from n3d.config.settings import Settings

__all__ = ["RESTART_KEYS", "ReloadPlan", "plan_reload"]

# Dotted keys whose new value waits for a restart of n3d, in file order.
RESTART_KEYS = tuple(
    f"{section}.{name}"
    for section, keys in SCHEMA.items()
    for name, key in keys.items()
    if not key.live
)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload does; see the module docstring."""

    effective: Settings
    changed: tuple[str, ...]
    needs_restart: tuple[str, ...]


def plan_reload(running: Settings, new: Settings) -> ReloadPlan:
    """The settings to run after reading ``new`` from the file while ``running`` runs."""
    waiting = tuple(key for key in RESTART_KEYS if _kept(running, key) != _kept(new, key))
    servers = _servers(running.servers, new.servers)
    if servers is not new.servers and (written(running.servers) or written(new.servers)):
        waiting += ("servers",)
    sources = dict(new.sources)
    kept: dict[str, dict[str, Any]] = {}
    for key in RESTART_KEYS:
        for name in with_parts(key):
            if name in running.sources:
                sources[name] = running.sources[name]
        section = key.partition(".")[0]
        kept.setdefault(section, {}).update(_kept(running, key))
    sources.pop("servers", None)
    if written(servers):  # from the file n3d started with, while the list waits
        sources["servers"] = (running if servers is not new.servers else new).sources["servers"]
    effective = dataclasses.replace(
        new,
        **{
            section: dataclasses.replace(getattr(new, section), **fields)
            for section, fields in kept.items()
        },
        servers=servers,
        sources=sources,
        pending_restart=waiting,
    )
    before, after = _flat(running.as_dict()), _flat(effective.as_dict())
    changed = tuple(key for key, value in after.items() if before.get(key) != value)
    return ReloadPlan(effective, changed, waiting)


def _servers(
    running: tuple[ServerSpec, ...], new: tuple[ServerSpec, ...]
) -> tuple[ServerSpec, ...]:
    """`new` when it names the same servers at the same addresses (env and models
    apply live); else the running servers, each with its new env and models when
    `new` still has one of that name."""
    if [(s.name, s.base_url) for s in running] == [(s.name, s.base_url) for s in new]:
        return new
    by_name = {spec.name: spec for spec in new}
    return tuple(
        dataclasses.replace(spec, env=by_name[spec.name].env, models=by_name[spec.name].models)
        if spec.name in by_name
        else spec
        for spec in running
    )


def _kept(settings: Settings, dotted: str) -> dict[str, Any]:
    """The values of the fields `dotted` lands on, by field name."""
    section, _, name = dotted.partition(".")
    values = getattr(settings, section)
    return {attr: getattr(values, attr) for attr in SCHEMA[section][name].fields}


def _flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted key -> value; ``servers`` (a list, not a section) stays whole."""
    flat: dict[str, Any] = {}
    for section, keys in values.items():
        if isinstance(keys, Mapping):
            flat.update({f"{section}.{key}": v for key, v in keys.items()})
        else:
            flat[section] = keys
    return flat
