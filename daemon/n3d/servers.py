"""Several servers on one host: what `n3d run` builds for each, and the rules across them.

Each server (``Settings.servers``: one named ``default`` without ``[[servers]]``)
gets its own parts, built from ``settings.for_server(name)`` as if it were the
only one: two HTTP clients (the model service's, and the supervisor's probing one,
so a heartbeat never queues behind a pull), a :class:`~n3d.models.Models`, a
:class:`~n3d.supervisor.Supervisor` with its own pid file
(:func:`~n3d.supervisor.pidfile.pid_file_name`) and, for all but the first, its own
warm list file (``warm-<name>.json``; the first keeps ``warm.json``). Nothing is
shared between two servers' parts, so one's crash, hang or backoff never touches
another.

The one rule that spans servers is here too (:func:`server_settings`): managed
servers whose models directory is shared get ``OLLAMA_NOPRUNE=1``
(:mod:`n3d.supervisor.models_dir`). :class:`Pins` holds each server's ``models`` as
the running settings name them, for the proxy's routing and ``warm.add``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

from n3d.api.servers import ServerParts
from n3d.config import Settings
from n3d.models.events import Publish
from n3d.models.service import Models
from n3d.models.warm_store import FILE_NAME
from n3d.ollama.client import OllamaClient
from n3d.ollama.wire import Warned
from n3d.paths import state_dir
from n3d.supervisor import Supervisor
from n3d.supervisor.models_dir import models_dir, shared_models_dirs, with_noprune
from n3d.supervisor.pidfile import pid_file_name

__all__ = ["Pins", "open_server", "server_settings", "summary", "warm_file"]

_NO_PINS: frozenset[str] = frozenset()  # one object: the proxy caches on identity


def server_settings(settings: Settings, base_env: Mapping[str, str]) -> dict[str, Settings]:
    """Each server's settings by name, in the config's order: ``for_server(name)``, and
    ``OLLAMA_NOPRUNE=1`` in ``server.env`` where a managed server shares its models
    directory (unless set already; ``base_env`` is n3d's environment, the child's base)."""
    views = {spec.name: settings.for_server(spec.name) for spec in settings.servers}
    if settings.server.mode == "external":  # no child of ours: nothing to prune
        return views
    shared = shared_models_dirs(base_env, {n: v.server.env for n, v in views.items()})
    for name in shared:
        view = views[name]
        env = with_noprune(base_env, view.server.env)
        views[name] = replace(view, server=replace(view.server, env=env))
    return views


def warm_file(name: str, *, first: bool) -> Path:
    """The warm list of a server: ``warm.json`` for the first, ``warm-<name>.json`` else."""
    return Path(state_dir()) / (FILE_NAME if first else f"warm-{name}.json")


async def open_server(
    stack: AsyncExitStack,
    view: Settings,
    name: str,
    *,
    first: bool,
    command: Sequence[str],
    runtime_dir: Path,
    environ: Mapping[str, str],
    publish: Publish,
    pinned: Callable[[], frozenset[str]] = lambda: _NO_PINS,
) -> ServerParts:
    """One server's parts from its settings ``view``; its clients close with ``stack``.

    ``pinned`` reads the models its ``[[servers]]`` entry names now (:meth:`Pins.of`),
    so a reload that changes them reaches routing and ``warm.add`` at once."""
    o, s = view.ollama, view.server
    warned = Warned()  # one pace for this server's unusable answers, both clients
    client = await stack.enter_async_context(
        OllamaClient(o.base_url, timeout_s=s.health_timeout_s, num_ctx=o.num_ctx, warned=warned)
    )
    # The supervisor's heartbeat has a client (and a connection pool) of its own: a
    # `HEAD /` never waits for a connection behind pulls and warm-ups, which would
    # read as a hung server.
    probing = await stack.enter_async_context(
        OllamaClient(o.base_url, timeout_s=s.health_timeout_s, warned=warned)
    )
    models = Models(client, view, publish=publish, state_path=warm_file(name, first=first))
    sup = Supervisor(
        view,
        probe=probing.heartbeat,
        version=probing.version,
        ollama=probing,  # liveness's /api/ps, /api/show and probes
        warm=lambda: [entry.name for entry in models.keeper.entries()],
        command=command,
        runtime_dir=runtime_dir,
        environ=environ,
        pid_file_name=pid_file_name(name, first=first),
    )
    place = "" if s.mode == "external" else str(models_dir(environ, s.env))
    return ServerParts(name, sup, models, models_dir=place, pinned=pinned)


class Pins:
    """Each server's ``models`` (as written) in the running settings, by name.

    :meth:`of` gives one server's as a callable, read per request by the proxy, which
    caches what it derives on the identity of the answer: :meth:`update` (a reload)
    replaces the sets only when some server's ``models`` changed.
    """

    def __init__(self, settings: Settings) -> None:
        self._by_name = self._of(settings)

    @staticmethod
    def _of(settings: Settings) -> dict[str, frozenset[str]]:
        return {spec.name: frozenset(spec.models) for spec in settings.servers}

    def update(self, settings: Settings) -> None:
        new = self._of(settings)
        if new != self._by_name:
            self._by_name = new

    def of(self, name: str) -> Callable[[], frozenset[str]]:
        """Server ``name``'s models now (empty for a name the settings no longer have)."""
        return lambda: self._by_name.get(name, _NO_PINS)


def summary(servers: Sequence[ServerParts]) -> str:
    """systemd's ``STATUS=`` line: the server's summary, or each one's by name."""
    if len(servers) == 1:
        return servers[0].supervisor.snapshot.summary()
    return "; ".join(f"{p.name}: {p.supervisor.snapshot.summary()}" for p in servers)


def scoped_publish(publish: Callable[..., None], name: str) -> Publish:
    """``publish`` with ``server: name`` added to every payload (server-scoped events)."""

    def send(topic: str, payload: Mapping[str, object] | None = None) -> None:
        publish(topic, {**(payload or {}), "server": name})

    return send
