"""The servers the API sees, and the ``server`` param every server-scoped method takes.

The daemon gives the API one :class:`ServerParts` per server, in the config's
order: the first is the default of every ``server`` param (and ``status.server``).
An unknown name is :class:`~n3d.errors.UnknownServer` (1011 ``unknown_server``).
A call that names a server runs in its :func:`~n3d.metrics.server_scope`, so its
log lines and metrics carry ``server`` as that server's own do.

Servers that share a models directory (``models_dir``) see the same models: a
pull or a delete goes once per directory (:func:`one_per_directory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from n3d.errors import ServerNotRunning, UnknownServer
from n3d.models.service import Models
from n3d.ollama.names import same_model
from n3d.rpc.dispatch import Param
from n3d.state import ServerState
from n3d.supervisor import Supervisor

__all__ = [
    "SERVER",
    "ServerParts",
    "named",
    "one_per_directory",
    "pick",
    "reach",
    "require_running",
    "sharing",
    "warm_targets",
]

SERVER = Param("server", str, description="a server's name (see status.servers); default the first")
_UP = (ServerState.RUNNING, ServerState.DEGRADED, ServerState.EXTERNAL)
_DOWN = {ServerState.STOPPED, ServerState.FATAL, ServerState.STOPPING}
_NO_PINS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ServerParts:
    """One server as the API uses it: its name, supervisor and model service.

    ``models_dir`` names where its models live (servers with the same one share
    their models; "" means a place of its own, e.g. a server n3d did not start);
    ``pinned()`` the models its config entry names now (a reload may change them:
    ``warm.add`` places them there, the proxy routes them there).
    """

    name: str
    supervisor: Supervisor
    models: Models
    models_dir: str = ""
    pinned: Callable[[], frozenset[str]] = lambda: _NO_PINS


def named(servers: Sequence[ServerParts], name: str) -> ServerParts:
    """The server called ``name``; :class:`UnknownServer` when there is none."""
    for parts in servers:
        if parts.name == name:
            return parts
    raise UnknownServer(name, [p.name for p in servers])


def pick(servers: Sequence[ServerParts], params: dict[str, Any]) -> ServerParts:
    """The server ``params["server"]`` names, the first one when it names none."""
    name = params.get("server")
    return servers[0] if name is None else named(servers, name)


def one_per_directory(servers: Sequence[ServerParts]) -> list[ServerParts]:
    """One server per models directory (a running one where there is), in config order."""
    chosen: dict[str, ServerParts] = {}
    for parts in servers:
        key = parts.models_dir or f"\0{parts.name}"  # "" shares with nobody
        best = chosen.get(key)
        if best is None or (
            best.supervisor.snapshot.state not in _UP and parts.supervisor.snapshot.state in _UP
        ):
            chosen[key] = parts
    return sorted(chosen.values(), key=servers.index)


def require_running(parts: ServerParts, action: str) -> None:
    """:class:`ServerNotRunning` when the server is stopped, stopping or fatal."""
    snap = parts.supervisor.snapshot
    if snap.state in _DOWN:
        raise ServerNotRunning(
            f"Cannot {action}: the Ollama server is {snap.state.value}.",
            base_url=snap.base_url,
            suggestion="Start it with: n3ctl start",
        )


def sharing(servers: Sequence[ServerParts], parts: ServerParts) -> list[ServerParts]:
    """``parts`` and every server that shares its models directory."""
    if not parts.models_dir:
        return [parts]
    return [p for p in servers if p is parts or p.models_dir == parts.models_dir]


def reach(servers: Sequence[ServerParts], params: dict[str, Any]) -> list[ServerParts]:
    """The servers a pull or delete goes through: the one named, else one per directory
    that has a running server (all down: the first, whose error then says so)."""
    if params.get("server") is not None:
        return [named(servers, params["server"])]
    reps = one_per_directory(servers)
    up = [p for p in reps if p.supervisor.snapshot.state not in _DOWN]
    return up or reps[:1]


def warm_targets(servers: Sequence[ServerParts], params: dict[str, Any]) -> list[ServerParts]:
    """`warm.add`: the server named, else each whose ``models`` names it, else the first."""
    if params.get("server") is not None:
        return [named(servers, params["server"])]
    model = params["model"]
    pinned = [p for p in servers if any(same_model(model, m) for m in p.pinned())]
    return pinned or [servers[0]]
