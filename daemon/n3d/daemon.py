"""`n3d run`: the daemon's one task group, started and stopped in a written-down order.

Start (docs/behavior.md, "Start-up order"):

1. runtime dir created 0700 and verified; exclusive ``flock`` on ``n3d.lock``
   (a second n3d exits 1 at once: "n3d is already running (pid N, socket PATH)");
2. ``n3d.pid`` written;
3. the control socket claimed (stale socket replaced, live one refused, bound
   0600), so a second n3d on it fails before touching any server; connections wait
   in the backlog;
4. the signal watcher (SIGTERM/SIGINT: shut down; SIGHUP: reload the config);
5. each server's supervisor, in the config's order (orphans of a killed n3d
   handled first: every ``ollama*.pid`` of the runtime dir, also those of servers
   since removed from the config; then the server), then each server's model
   service (pull jobs, keep-warm) (:mod:`n3d.servers`: one set of parts per
   server, nothing shared between two);
6. the proxy when `[proxy] listen` is set (its port bound, or n3d exits 78
   saying who holds it);
7. the socket starts serving, and the runtime dir is watched: a ``/tmp`` cleaner
   that removes it gets the lock, ``n3d.pid`` and the socket put back
   (:mod:`n3d.runtime_dir`);
8. ``READY=1`` to systemd (only now are clients answered), and the watchdog pings.

Shutdown is an input (:meth:`Daemon.request_shutdown`); the order is bounded:
``STOPPING=1`` → the socket stops accepting and is removed; calls in flight
answer for up to 2 s, then every connection is cancelled → proxied requests in
flight finish (``drain_timeout``; new ones are held, then refused) → every
supervisor stops its server, all at once (SIGTERM, ``stop_timeout``, SIGKILL of
the group, verification) → the task group is cancelled → pid files removed, lock released.
Exit code 0.

Long because the start order and the shutdown order are one story, told (and
bounded) in one place; split, each half would have to restate the other.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from anyio.abc import TaskStatus

from n3d import __version__
from n3d.api.methods import DaemonView, build_methods
from n3d.api.servers import ServerParts
from n3d.bridge import EventBridge
from n3d.config import Settings, load_settings
from n3d.config.reload import plan_reload
from n3d.errors import ConfigError
from n3d.logs import reconfigure_logging
from n3d.metrics import server_scope
from n3d.models.service import Models
from n3d.paths import ensure_private_dir, runtime_dir
from n3d.redact import redact_url
from n3d.rpc.server import RpcServer
from n3d.runtime_dir import RuntimeFiles, keep_runtime_dir
from n3d.servers import Pins, open_server, scoped_publish, server_settings, summary
from n3d.service.notify import Notifier
from n3d.supervisor import Supervisor
from n3d.supervisor.orphans import stop_stray_orphans

if TYPE_CHECKING:
    from n3d.proxy.server import Proxy
    from n3d.proxy.view import ServerView

__all__ = ["SIMULATOR", "Daemon"]

log = structlog.get_logger("n3d.daemon")
events_log = structlog.get_logger("n3d.events")

SIMULATOR = (sys.executable, "-m", "n3d.sim", "serve")
_SHUTDOWN_SLACK_S = 5.0  # on top of stop_timeout and verification, for the whole stop
# Socket calls are quick (status, lists: milliseconds); the slow ones (a pull, a
# restart) could not finish within any deadline short enough for a stop. 2 s lets
# every quick call in flight answer while adding little to the bounded stop.
_DRAIN_S = 2.0


class Daemon:
    """The whole of `n3d run`; ``request_shutdown()`` is how tests and signals stop it."""

    def __init__(
        self,
        settings: Settings,
        *,
        command: Sequence[str],
        simulate: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.command = tuple(command)
        self.simulate = simulate
        self.env = dict(os.environ if env is None else env)
        self.notifier = Notifier.from_env(self.env)
        self.servers: list[ServerParts] = []  # one per server, in the config's order
        self.rpc: RpcServer | None = None
        self.proxy: Proxy | None = None  # the request path, when [proxy] listen is set
        self.files: RuntimeFiles | None = None  # n3d.lock and n3d.pid, while running
        self.last_reload_error: str | None = None
        self._shutdown: anyio.Event | None = None
        self.pins = Pins(settings)  # each server's `models`, as reloads change them

    @property
    def supervisor(self) -> Supervisor | None:
        """The first server's supervisor (None before start)."""
        return self.servers[0].supervisor if self.servers else None

    @property
    def models(self) -> Models | None:
        """The first server's model service (None before start)."""
        return self.servers[0].models if self.servers else None

    def request_shutdown(self) -> None:
        """Begin the ordered shutdown (idempotent)."""
        if self._shutdown is not None:
            self._shutdown.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> int:
        """Run until shutdown; returns the exit code. Raises N3dError before start-up."""
        self._shutdown = anyio.Event()
        directory = ensure_private_dir(runtime_dir(self.env))
        socket_path = self.settings.socket_path(self.env)
        files = self.files = RuntimeFiles(directory, socket_path)
        files.claim()  # the lock first, before touching anything; then n3d.pid
        try:
            log.info(
                "n3d.starting",
                version=__version__,
                pid=os.getpid(),
                runtime_dir=str(directory),
                socket=str(socket_path),
                mode=self.settings.server.mode,
                base_url=redact_url(self.settings.ollama.base_url),
                simulate=self.simulate,
            )
            for warning in self.settings.warnings:
                log.warning("config.warning", warning=warning)
            await self._run_parts(directory, task_status)
        finally:
            files.release()
            log.info("n3d.stopped")
        return 0

    async def _run_parts(self, directory: Path, task_status: TaskStatus[None]) -> None:
        assert self._shutdown is not None
        settings = self.settings
        socket_path = settings.socket_path(self.env)
        views = server_settings(settings, self.env)
        async with AsyncExitStack() as stack:
            self.servers = [
                await open_server(
                    stack,
                    views[spec.name],
                    spec.name,
                    first=index == 0,
                    command=self.command,
                    runtime_dir=directory,
                    environ=self.env,
                    publish=scoped_publish(self._publish, spec.name),
                    pinned=self.pins.of(spec.name),
                )
                for index, spec in enumerate(settings.servers)
            ]
            if settings.proxy.listen:  # aiohttp is imported only by a daemon that proxies
                from n3d.proxy.server import Proxy

                self.proxy = Proxy.from_settings(
                    lambda: self.settings,
                    servers=[self._link(parts) for parts in self.servers],
                    publish=self._publish,
                )
            for parts in self.servers:
                if self.proxy is not None:  # its one hook into each supervisor
                    parts.supervisor.before_planned_stop = self._drain_of(parts.name)
                self._bridge(parts)
            view = DaemonView(
                servers=self.servers,
                socket_path=socket_path,
                settings=lambda: self.settings,
                reload=self._reload_for_rpc,
                simulate=self.simulate,
                proxy=lambda: self.proxy,
            )
            rpc = self.rpc = RpcServer(
                socket_path,
                build_methods(view),
                max_message_bytes=settings.socket.max_message_bytes,
                max_connections=settings.socket.max_connections,
                env=self.env,
            )
            # Claim the socket before anything starts: a live n3d on it (or a file in
            # the way) stops us here, before we could touch an Ollama server.
            rpc.bind()
            rpc_scope = anyio.CancelScope()
            try:
                await self._run_tasks(directory, rpc, rpc_scope, socket_path, task_status)
            finally:
                rpc.close()  # a no-op once run() has served and removed it

    def _link(self, parts: ServerParts) -> ServerView:
        """What the proxy sees of one server (never the supervisor itself)."""
        from n3d.proxy.view import ServerLink

        sup = parts.supervisor
        return ServerLink(
            name=parts.name,
            base_url=sup.snapshot.base_url,
            snapshot=lambda: sup.snapshot,
            wait_for=sup.wait_for,
            on_output=sup.liveness.saw_output,  # traffic is liveness's evidence
            saw_rate=sup.liveness.saw_rate,  # and its decode rates × concurrency
            loaded=parts.models.keeper.loaded_names,
            pinned=parts.pinned,
        )

    def _drain_of(self, name: str) -> Callable[[], Awaitable[None]]:
        """The proxy's drain of one server: before its planned stop or restart."""

        async def drain() -> None:
            if self.proxy is not None:
                await self.proxy.drain(server=name)

        return drain

    def _bridge(self, parts: ServerParts) -> None:
        """Fan one server's changes out: events (with ``server``), systemd, its models."""
        sup, models = parts.supervisor, parts.models
        events = EventBridge(
            models,
            publish=scoped_publish(self._publish, parts.name),
            set_status=lambda _line: self.notifier.status(summary(self.servers)),
            rewarm=models.keeper.poke,
        )
        sup.store.subscribe(events.on_state)
        sup.health.listeners.append(events.on_health)
        sup.liveness.listeners.append(events.on_repair)

    async def _run_tasks(
        self,
        directory: Path,
        rpc: RpcServer,
        rpc_scope: anyio.CancelScope,
        socket_path: Path,
        task_status: TaskStatus[None],
    ) -> None:
        """The parts in their start order; then the bounded shutdown (module docstring)."""
        assert self._shutdown is not None
        s = self.settings.server
        async with anyio.create_task_group() as tg:
            await tg.start(self._watch_signals)
            if s.mode != "external":  # pid files of servers no longer in the config
                claimed = [p.supervisor.pid_file for p in self.servers if p.supervisor.pid_file]
                await stop_stray_orphans(
                    directory, claimed=claimed, stop_timeout_s=s.stop_timeout_s
                )
            for parts in self.servers:
                await tg.start(_in_scope, parts.name, parts.supervisor.run)
            for parts in self.servers:
                await tg.start(_in_scope, parts.name, parts.models.run)
            if self.proxy is not None:
                await tg.start(self.proxy.run)
            await tg.start(self._serve_rpc, rpc, rpc_scope)
            if self.files is not None:  # set by run()
                await tg.start(keep_runtime_dir, self.files, rpc)
            # The socket accepts connections: only now is n3d ready (Type=notify).
            self.notifier.ready(summary(self.servers))
            await tg.start(self.notifier.run_watchdog)
            first = self.servers[0].supervisor.snapshot
            log.info("n3d.ready", state=first.state.value, socket=str(socket_path))
            task_status.started()
            await self._shutdown.wait()
            log.info("n3d.shutting_down")
            self.notifier.stopping("n3d is stopping ollama")
            # Stop accepting, let the calls in flight answer (bounded), then end every
            # connection; only then stop the servers: clients never wait on a dying n3d.
            with anyio.move_on_after(_DRAIN_S):
                await rpc.drain()
            rpc_scope.cancel()
            if self.proxy is not None:  # proxied requests finish (bounded) before serve stops
                with anyio.move_on_after(self.settings.proxy.drain_timeout_s + 1.0, shield=True):
                    await self.proxy.drain()
            s = self.settings.server
            # All at once: N servers stop within one server's bound, not N of them.
            with anyio.move_on_after(s.stop_timeout_s + _SHUTDOWN_SLACK_S, shield=True):
                async with anyio.create_task_group() as stopping:
                    for parts in self.servers:
                        stopping.start_soon(_in_scope_shutdown, parts.name, parts.supervisor)
            tg.cancel_scope.cancel()

    async def _serve_rpc(
        self,
        rpc: RpcServer,
        scope: anyio.CancelScope,
        *,
        task_status: TaskStatus[RpcServer] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            await rpc.run(task_status=task_status)

    def _publish(self, topic: str, payload: Mapping[str, Any] | None = None) -> None:
        """Log an event and send it to subscribed clients (once the socket exists).

        ``server.state`` and ``repair`` are logged by the supervisor itself; pull
        progress is logged at debug (its start and end are info events of their own).
        """
        if topic not in ("server.state", "repair"):
            emit = events_log.debug if topic == "pull" else events_log.info
            emit(topic, **{k: v for k, v in (payload or {}).items() if k != "event"})
        if self.rpc is not None:
            self.rpc.broadcast(topic, payload)

    def _reload_for_rpc(self) -> str | None:
        return None if self.reload() else self.last_reload_error

    async def _watch_signals(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    log.info("n3d.signal", signal=signal.Signals(signum).name)
                    self.request_shutdown()

    def reload(self) -> bool:
        """Re-read the config file; a bad one is logged and the old settings kept.

        A good one is planned (:func:`n3d.config.reload.plan_reload`: what applies
        now, what waits for a restart of n3d) and the plan's settings are applied to
        every part at once, so `config.get` shows exactly what runs.
        """
        self.notifier.reloading()
        try:
            new = load_settings(self.settings.file, self.env)
        except ConfigError as exc:
            self.last_reload_error = str(exc)
            log.error("config.reload_failed", error=str(exc), kept="the previous settings")
            self.notifier.ready(summary(self.servers) if self.servers else None)
            return False
        plan = plan_reload(self.settings, new)
        self._apply(plan.effective)
        if plan.needs_restart:
            log.warning(
                "config.reload_needs_restart",
                keys=list(plan.needs_restart),
                detail="these take effect when n3d restarts",
            )
        log.info(
            "config.reloaded",
            file=str(new.file) if new.file else None,
            changed=list(plan.changed),
        )
        self.notifier.ready(summary(self.servers) if self.servers else None)
        return True

    def _apply(self, settings: Settings) -> None:
        """Hand a reload plan's settings to every part; none keeps values of its own."""
        self.settings = settings
        reconfigure_logging(settings.log.format, settings.log.level)
        self.pins.update(settings)  # routing and warm.add: at once
        # Each server its own view again (env, warm models); [[servers]] itself waits
        # for a restart of n3d (the reload plan keeps the running list).
        views = server_settings(settings, self.env)
        for parts in self.servers:
            view = views.get(parts.name, settings)
            parts.supervisor.apply_settings(view)
            if not self.simulate:  # the simulator stands in for [server].command
                parts.supervisor.command = view.server.command
            parts.models.apply_settings(view)
        if self.rpc is not None:  # read at each accept: new connections get them
            self.rpc.max_connections = settings.socket.max_connections
            self.rpc.limits = replace(
                self.rpc.limits, max_message_bytes=settings.socket.max_message_bytes
            )


async def _in_scope(
    name: str,
    run: Callable[..., Awaitable[None]],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run one server's part with its log lines and metrics bound to ``server=name``."""
    with server_scope(name):
        await run(task_status=task_status)


async def _in_scope_shutdown(name: str, sup: Supervisor) -> None:
    with server_scope(name):
        await sup.shutdown()
