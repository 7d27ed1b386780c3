"""n3d's settings: config file, environment and defaults, resolved once and frozen.

:func:`load_settings` reads the TOML file once, checks every key against
:data:`n3d.config.schema.SCHEMA`, resolves the Ollama base URL in DESIGN.md's
order and returns an immutable :class:`Settings`. ``Settings.sources`` says for
every key (dotted TOML name, e.g. ``"ollama.model_cache_ttl"``) where its
effective value came from, in this vocabulary:

    default                  nothing set it
    file:PATH                the key in the config file PATH
    file:PATH (host/port)    ollama.base_url built from [ollama] host and/or port
    env:NAME                 the environment variable NAME
                             (NAMEL3SS_OLLAMA_BASE_URL, OLLAMA_HOST, N3D_SOCKET)

`ollama.host` and `ollama.port` are reported as the host and port of the
effective base URL, with the base URL's source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from n3d import paths
from n3d.config.file import default_toml, find_line, read_config
from n3d.config.schema import SCHEMA, check_document, check_relations, defaults
from n3d.config.url import DEFAULT, DEFAULT_BASE_URL, resolve_base_url
from n3d.errors import ConfigError
from n3d.ollama.duration import parse_keep_alive
from n3d.redact import redact_url

__all__ = [
    "DEFAULT_BASE_URL",
    "LogSettings",
    "OllamaSettings",
    "RestartSettings",
    "ServerSettings",
    "Settings",
    "SocketSettings",
    "WarmSettings",
    "default_toml",
    "load_settings",
]

_URL_KEYS = ("ollama.base_url", "ollama.host", "ollama.port")


@dataclass(frozen=True, slots=True)
class OllamaSettings:
    base_url: str  # resolved, no trailing slash
    auto_pull_model: bool
    model_cache_ttl_s: float
    health_check_interval_s: float
    pull_timeout_s: float
    keep_alive: str | float  # as configured: what is sent to Ollama
    keep_alive_s: float  # parsed; math.inf = forever
    num_ctx: int  # 0 = let Ollama decide
    default_model: str


@dataclass(frozen=True, slots=True)
class ServerSettings:
    mode: Literal["auto", "managed", "external"]
    command: tuple[str, ...]
    env: Mapping[str, str]  # read-only
    start_timeout_s: float
    stop_timeout_s: float
    health_timeout_s: float
    failures_before_restart: int


@dataclass(frozen=True, slots=True)
class RestartSettings:
    backoff_initial_s: float
    backoff_max_s: float
    max_failures: int
    window_s: float


@dataclass(frozen=True, slots=True)
class WarmSettings:
    models: tuple[str, ...]  # valid model names, as written
    keep_alive: str | float
    keep_alive_s: float


@dataclass(frozen=True, slots=True)
class SocketSettings:
    path: str  # "" = runtime dir / n3d.sock; N3D_SOCKET, when set, is folded in here
    max_message_bytes: int
    max_connections: int


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: Literal["auto", "json", "console"]
    level: Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything n3d was configured with; see the module docstring for `sources`."""

    ollama: OllamaSettings
    server: ServerSettings
    restart: RestartSettings
    warm: WarmSettings
    socket: SocketSettings
    log: LogSettings
    file: Path | None  # the config file read; None when there was none
    sources: Mapping[str, str]  # dotted key -> source, for every key of SCHEMA
    warnings: tuple[str, ...] = ()  # things worth logging at start (e.g. OLLAMA_HOST bad port)
    # Keys whose value in the file differs from the running one and waits for a
    # restart of n3d (set by a reload: n3d.config.reload); () when freshly loaded.
    pending_restart: tuple[str, ...] = ()

    def socket_path(self, env: Mapping[str, str] | None = None) -> Path:
        """`N3D_SOCKET`, else `[socket].path`, else `<runtime dir>/n3d.sock`."""
        return Path(paths.socket_path(self.socket.path, env))

    def document(self) -> dict[str, Any]:
        """``{file, values, sources, pending_restart}``: what `config show --json` and
        `config.get` return."""
        return {
            "file": str(self.file) if self.file else None,
            "values": self.as_dict(),
            "sources": dict(self.sources),
            "pending_restart": list(self.pending_restart),
        }

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Effective values by section and TOML key, for showing; TOML- and JSON-able.

        Tuples become lists, tables plain dicts, keep_alive stays as configured,
        and ``base_url`` has its credentials hidden (:func:`n3d.redact.redact_url`).
        """
        o, s, r, w, k, log = (
            self.ollama,
            self.server,
            self.restart,
            self.warm,
            self.socket,
            self.log,
        )
        url = urlsplit(o.base_url)
        return {
            "ollama": {
                "base_url": redact_url(o.base_url),  # shown, never used to connect
                "host": url.hostname or "",
                "port": url.port or (443 if url.scheme == "https" else 80),
                "auto_pull_model": o.auto_pull_model,
                "model_cache_ttl": o.model_cache_ttl_s,
                "health_check_interval": o.health_check_interval_s,
                "pull_timeout": o.pull_timeout_s,
                "keep_alive": o.keep_alive,
                "num_ctx": o.num_ctx,
                "default_model": o.default_model,
            },
            "server": {
                "mode": s.mode,
                "command": list(s.command),
                "env": dict(s.env),
                "start_timeout": s.start_timeout_s,
                "stop_timeout": s.stop_timeout_s,
                "health_timeout": s.health_timeout_s,
                "failures_before_restart": s.failures_before_restart,
            },
            "restart": {
                "backoff_initial": r.backoff_initial_s,
                "backoff_max": r.backoff_max_s,
                "max_failures": r.max_failures,
                "window": r.window_s,
            },
            "warm": {"models": list(w.models), "keep_alive": w.keep_alive},
            "socket": {
                "path": k.path,
                "max_message_bytes": k.max_message_bytes,
                "max_connections": k.max_connections,
            },
            "log": {"format": log.format, "level": log.level},
        }


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, check and resolve the configuration; the file is read exactly once.

    `path` None means `N3D_CONFIG`, else the platform default (`paths.config_file`).
    No file at the default location means all defaults; a named file (argument or
    `N3D_CONFIG`) that does not exist is an error. Environment variables come from
    `env` (default `os.environ`). Raises :class:`ConfigError` naming the file, the
    dotted key, the line when it can be found, and what was expected.
    """
    e: Mapping[str, str] = os.environ if env is None else env
    target = path if path is not None else Path(paths.config_file(e))
    found = read_config(target)
    file: Path | None = None
    doc: dict[str, Any] = {}
    text = ""
    if found is not None:
        (doc, text), file = found, target
    elif path is not None or e.get("N3D_CONFIG"):
        named = "by N3D_CONFIG" if path is None else "explicitly"
        raise ConfigError(
            f"the config file named {named} does not exist; "
            f"create it with: n3d config init --path {target}",
            file=str(target),
        )

    def error(key: str, message: str) -> ConfigError:
        return ConfigError(
            message, file=str(file) if file else None, key=key, line=find_line(text, key)
        )

    given = check_document(doc, error)
    values = {**defaults(), **given}
    origin = f"file:{file}"
    sources = {
        f"{section}.{name}": origin if f"{section}.{name}" in given else DEFAULT
        for section, keys in SCHEMA.items()
        for name in keys
    }
    check_relations(values, given, error)
    base_url, url_source, warnings = resolve_base_url(given, e, origin)
    sources.update(dict.fromkeys(_URL_KEYS, url_source))
    if e.get("N3D_SOCKET"):
        values["socket.path"] = e["N3D_SOCKET"]
        sources["socket.path"] = "env:N3D_SOCKET"
    return _build(values, base_url, file, sources, warnings)


def _seconds(keep_alive: str | float) -> float:
    seconds = parse_keep_alive(keep_alive)
    assert seconds is not None  # the schema check accepted it, so it is a real value
    return seconds


def _build(
    v: Mapping[str, Any],
    base_url: str,
    file: Path | None,
    sources: Mapping[str, str],
    warnings: tuple[str, ...],
) -> Settings:
    return Settings(
        ollama=OllamaSettings(
            base_url=base_url,
            auto_pull_model=v["ollama.auto_pull_model"],
            model_cache_ttl_s=v["ollama.model_cache_ttl"],
            health_check_interval_s=v["ollama.health_check_interval"],
            pull_timeout_s=v["ollama.pull_timeout"],
            keep_alive=v["ollama.keep_alive"],
            keep_alive_s=_seconds(v["ollama.keep_alive"]),
            num_ctx=v["ollama.num_ctx"],
            default_model=v["ollama.default_model"],
        ),
        server=ServerSettings(
            mode=v["server.mode"],
            command=v["server.command"],
            env=v["server.env"],
            start_timeout_s=v["server.start_timeout"],
            stop_timeout_s=v["server.stop_timeout"],
            health_timeout_s=v["server.health_timeout"],
            failures_before_restart=v["server.failures_before_restart"],
        ),
        restart=RestartSettings(
            backoff_initial_s=v["restart.backoff_initial"],
            backoff_max_s=v["restart.backoff_max"],
            max_failures=v["restart.max_failures"],
            window_s=v["restart.window"],
        ),
        warm=WarmSettings(
            models=v["warm.models"],
            keep_alive=v["warm.keep_alive"],
            keep_alive_s=_seconds(v["warm.keep_alive"]),
        ),
        socket=SocketSettings(
            path=v["socket.path"],
            max_message_bytes=v["socket.max_message_bytes"],
            max_connections=v["socket.max_connections"],
        ),
        log=LogSettings(format=v["log.format"], level=v["log.level"]),
        file=file,
        sources=dict(sources),
        warnings=warnings,
    )
