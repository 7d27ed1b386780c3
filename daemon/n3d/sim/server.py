"""`ollama serve`'s life cycle: bind, log, wait, serve, and die on the first signal.

Order as in Ollama's `cmd.RunServer` and `server.Serve` (research/ollama.md §3):
`net.Listen` first (a taken port prints `Error: listen tcp HOST:PORT: bind: address
already in use` and exits 1); then the startup log lines; then GPU discovery, which
the simulator stands in for with `OLLAMA_SIM_READY_DELAY`; only then does HTTP get
answered, so a TCP connect succeeds well before the server is ready. The first
SIGTERM/SIGINT closes the listener and every connection at once, SIGKILLs and reaps
the runners and exits 0; later signals are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import sys
import time
from typing import NoReturn

from n3d.errors import InvalidModelName
from n3d.ollama.duration import format_go_duration
from n3d.ollama.host import format_hostport
from n3d.ollama.names import parse_model_name
from n3d.sim import registry
from n3d.sim.app import App, RouteTable, crash
from n3d.sim.config import SimConfig
from n3d.sim.faults import Faults
from n3d.sim.http import Connections, serve_connection
from n3d.sim.logs import gin_debug, slog
from n3d.sim.routes_embed import embed, embeddings
from n3d.sim.routes_infer import chat, generate
from n3d.sim.routes_models import copy_model, delete, ps, pull, root, show, tags, version

__all__ = ["ROUTES", "bind", "run"]

ROUTES: RouteTable = {
    "/": {"GET": root, "HEAD": root},
    "/api/version": {"GET": version, "HEAD": version},
    "/api/pull": {"POST": pull},
    "/api/tags": {"GET": tags, "HEAD": tags},
    "/api/show": {"POST": show},
    "/api/delete": {"DELETE": delete},
    "/api/copy": {"POST": copy_model},
    "/api/ps": {"GET": ps},
    "/api/generate": {"POST": generate},
    "/api/chat": {"POST": chat},
    "/api/embed": {"POST": embed},
    "/api/embeddings": {"POST": embeddings},
}
_HANDLER_NAMES: dict[object, str] = {
    root: "func1",
    version: "func2",
    pull: "(*Server).PullHandler-fm",
    tags: "(*Server).ListHandler-fm",
    show: "(*Server).ShowHandler-fm",
    delete: "(*Server).DeleteHandler-fm",
    copy_model: "(*Server).CopyHandler-fm",
    ps: "(*Server).PsHandler-fm",
    generate: "(*Server).GenerateHandler-fm",
    chat: "(*Server).ChatHandler-fm",
    embed: "(*Server).EmbedHandler-fm",
    embeddings: "(*Server).EmbeddingsHandler-fm",
}


def _fail(message: str) -> SystemExit:
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return SystemExit(1)


def _go_errno_text(exc: OSError) -> str:
    # Go's syscall error strings are strerror with a lower-case first letter.
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def bind(config: SimConfig) -> socket.socket:
    """`net.Listen("tcp", host:port)`; raises SystemExit(1) with Ollama's message."""
    host, port = config.host.bind_host, config.host.port
    if host == "":
        family, address = (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "")
    else:
        try:
            ip = ipaddress.ip_address(host)
            family, address = (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
        except ValueError:
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            except OSError as exc:
                raise _fail(
                    f"listen tcp {format_hostport(host, port)}: lookup {host}: no such host"
                ) from exc
            family, address = info[0], str(info[4][0])
    shown = f":{port}" if host == "" else format_hostport(address, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # Go sets it on Unix
        if family == socket.AF_INET6 and host == "":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual stack, as Go
        sock.bind((address, port))
        sock.listen(512)
    except OSError as exc:
        sock.close()
        raise _fail(f"listen tcp {shown}: bind: {_go_errno_text(exc)}") from exc
    sock.setblocking(False)
    return sock


def _preload(app: App) -> None:
    for text in app.config.preload:
        try:
            name = parse_model_name(text)
        except InvalidModelName:
            name = None
        entry = registry.lookup(name) if name is not None else None
        if name is None or entry is None:
            slog("WARN", "sim", "OLLAMA_SIM_MODELS_PRELOAD: no such model", model=text)
            continue
        if app.store.find(name) is None:
            for layer in entry.layers():
                app.store.write_blob(layer)
            app.store.write_manifest(name, entry)


def _startup_logs(app: App, address: str) -> None:
    config = app.config
    env = {k: v for k, v in sorted(config.env.items()) if k.startswith(("OLLAMA_", "CUDA_"))}
    env.update(
        {
            "OLLAMA_HOST": config.host.url,
            "OLLAMA_MODELS": str(config.models_dir),
            "OLLAMA_KEEP_ALIVE": format_go_duration(config.keep_alive_s)
            if config.keep_alive_s != float("inf")
            else "2562047h47m16.854775807s",
            "OLLAMA_MAX_LOADED_MODELS": str(config.max_loaded),
        }
    )
    slog(
        "INFO",
        "routes.go:1554",
        "server config",
        env="map[" + " ".join(f"{k}:{v}" for k, v in sorted(env.items())) + "]",
    )
    blobs = len(list(app.store.blobs.iterdir())) if app.store.blobs.is_dir() else 0
    slog("INFO", "images.go:522", f"total blobs: {blobs}")
    slog("INFO", "images.go:529", "total unused blobs removed: 0")
    if not config.gin_release:
        gin_debug(
            "[WARNING] Creating an Engine instance with the Logger and Recovery "
            "middleware already attached.\n"
        )
        gin_debug(
            '[WARNING] Running in "debug" mode. Switch to "release" mode in production.\n'
            " - using env:\texport GIN_MODE=release\n"
            " - using code:\tgin.SetMode(gin.ReleaseMode)\n"
        )
        for path, methods in ROUTES.items():
            for method, handler in methods.items():
                gin_debug(
                    f"{method:<6} {path:<25} --> github.com/ollama/ollama/server."
                    f"{_HANDLER_NAMES[handler]} (5 handlers)"
                )
    slog("INFO", "routes.go:1607", f"Listening on {address} (version {app.faults.state().version})")


async def _watch_crash(faults: Faults) -> None:
    # A crash must happen on time even when nobody sends a request.
    while True:
        state = faults.state()
        if state.crash:
            crash(state.crash)
        await asyncio.sleep(0.1)


async def _watch_runners(app: App) -> None:
    # `hang_runner` reaches a loaded runner when the switch flips, not at the next request.
    while True:
        await app.scheduler.apply_faults(app.faults.state())
        await asyncio.sleep(0.1)


async def run(config: SimConfig, started_at: float) -> NoReturn:
    """Serve until the first SIGTERM/SIGINT, then exit the process with status 0."""
    faults = Faults(config, started_at)
    app = App(config, faults, ROUTES)
    sock = bind(config)
    try:
        app.store.prepare()
    except OSError as exc:
        raise _fail(f"mkdir {config.models_dir}: {_go_errno_text(exc)}") from exc
    _preload(app)
    host, port = sock.getsockname()[:2]
    address = format_hostport(str(host), int(port))
    try:
        app.guard_hosts = ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        app.guard_hosts = False
    _startup_logs(app, address)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    connections = Connections()
    server: asyncio.base_events.Server | None = None

    def on_signal() -> None:
        if stop.is_set():
            return  # later signals are swallowed, as Ollama's signal.Notify does
        stop.set()
        if server is not None:
            server.close()
        else:
            sock.close()
        connections.abort_all()  # http.Server.Close(): streams are cut, not drained

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    watcher = asyncio.ensure_future(_watch_crash(faults))
    runners = asyncio.ensure_future(_watch_runners(app))
    slog("INFO", "gpu.go:217", "looking for compatible GPUs")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), config.ready_delay_s)
    if not stop.is_set():
        slog("INFO", "gpu.go:377", "no compatible GPUs were discovered")
        slog(
            "INFO",
            "types.go:130",
            "inference compute",
            id="0",
            library="cpu",
            variant="avx2",
            compute="",
            driver="0.0",
            name="",
            total="15.5 GiB",
            available="12.1 GiB",
        )
        server = await asyncio.start_server(
            lambda r, w: serve_connection(r, w, app.handle, connections), sock=sock
        )
        await stop.wait()
    watcher.cancel()
    runners.cancel()
    await app.scheduler.shutdown()
    # Exit here, as Go's main returns: cancelling every cut connection's task on the way
    # out of asyncio.run would only print noise, and there is nothing left to clean up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main_serve(config: SimConfig) -> NoReturn:
    """Run the server on a fresh event loop; never returns (exits 0 after a signal)."""
    started_at = time.monotonic()
    asyncio.run(run(config, started_at))
    raise AssertionError("unreachable: run() exits the process")
