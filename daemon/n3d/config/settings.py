"""n3d's settings: config file, environment and defaults, resolved once and frozen.

:func:`load_settings` reads the TOML file once, checks every key against
:data:`n3d.config.schema.SCHEMA`, resolves the Ollama base URL in DESIGN.md's
order and returns an immutable :class:`Settings`, each value on the field its key
names. ``Settings.sources`` says for every key (dotted TOML name, e.g.
``"ollama.model_cache_ttl"``) where its effective value came from, in this
vocabulary:

    default                  nothing set it
    file:PATH                the key in the config file PATH
    file:PATH (host/port)    ollama.base_url built from [ollama] host and/or port
    file:PATH ([[servers]])  ollama.base_url: the first [[servers]] entry's address
    env:NAME                 the environment variable NAME
                             (NAMEL3SS_OLLAMA_BASE_URL, OLLAMA_HOST, N3D_SOCKET)

`ollama.host` and `ollama.port` are reported as the host and port of the
effective base URL, with the base URL's source.

``Settings.servers`` are the servers n3d supervises (:mod:`n3d.config.servers`):
the ``[[servers]]`` entries, else one named ``default`` from ``[ollama]`` and
``[server]``. ``Settings.for_server(name)`` is the settings one of them sees.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from n3d import paths
from n3d.config.file import find_entry_line, find_line, read_config
from n3d.config.listen import check_listen
from n3d.config.schema import SCHEMA, check_document, check_relations, defaults, with_parts
from n3d.config.servers import ServerSpec, load_servers, show_servers, written
from n3d.config.url import DEFAULT, DEFAULT_BASE_URL
from n3d.config.warm import Placed, warm_here, warm_names, warm_servers
from n3d.errors import ConfigError

__all__ = [
    "DEFAULT_BASE_URL",
    "SECTIONS",
    "LivenessSettings",
    "LogSettings",
    "OllamaSettings",
    "ProxySettings",
    "RestartSettings",
    "ServerSettings",
    "Settings",
    "SocketSettings",
    "WarmSettings",
    "load_settings",
]

# Each field below is filled from the key of SCHEMA that names it (`Key.attr`, or
# `Key.parsed` for keep_alive_s). The fields are written out, not generated, so that
# mypy sees their types; tests/config/test_config_schema.py fails when a field has
# no key, a key no field, or a field a value of another type.


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
    # The entries as written: (model, the server a table names, or None). Which
    # server warms each is Settings.for_server's (n3d.config.servers.warm_here).
    placed: tuple[tuple[str, str | None], ...] = ()


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
class ProxySettings:
    listen: str  # "" = off; else host:port, checked
    hold_timeout_s: float
    drain_timeout_s: float
    retry: bool


@dataclass(frozen=True, slots=True)
class LivenessSettings:
    inference_probe: bool
    probe_interval_s: float
    probe_timeout_s: float
    stuck_unload_after_s: float
    slow_factor: float  # 0 = off
    restart_when_slow: bool


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything n3d was configured with; see the module docstring for `sources`."""

    ollama: OllamaSettings
    server: ServerSettings
    restart: RestartSettings
    warm: WarmSettings
    socket: SocketSettings
    log: LogSettings
    proxy: ProxySettings
    liveness: LivenessSettings
    servers: tuple[ServerSpec, ...]  # never empty; servers[0] is "the first server"
    file: Path | None  # the config file read; None when there was none
    sources: Mapping[str, str]  # dotted key -> source, for every key of SCHEMA
    warnings: tuple[str, ...] = ()  # things worth logging at start (e.g. OLLAMA_HOST bad port)
    # Keys whose value in the file differs from the running one and waits for a
    # restart of n3d (set by a reload: n3d.config.reload); () when freshly loaded.
    pending_restart: tuple[str, ...] = ()

    def server_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.servers)

    def for_server(self, name: str) -> Settings:
        """These settings as server `name` sees them: its ``ollama.base_url`` and
        ``server.env``, and in ``warm`` the models to warm there; KeyError when no
        server has that name. A Supervisor or Models built from this needs to know
        nothing else of the other servers."""
        spec = next((s for s in self.servers if s.name == name), None)
        if spec is None:
            raise KeyError(name)
        here: tuple[Placed, ...] = warm_here(self.warm.placed, self.servers, name)
        return dataclasses.replace(
            self,
            ollama=dataclasses.replace(self.ollama, base_url=spec.base_url),
            server=dataclasses.replace(self.server, env=spec.env),
            warm=dataclasses.replace(self.warm, models=warm_names(here), placed=here),
        )

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

    def as_dict(self) -> dict[str, Any]:
        """Effective values by section and TOML key, for showing; TOML- and JSON-able.

        Each key is shown by its ``Key.show`` from the field it lands on: tuples
        become lists, tables plain dicts, keep_alive stays as configured,
        ``base_url`` has its credentials hidden (:func:`n3d.redact.redact_url`)
        and ``host`` and ``port`` are those of the effective ``base_url``. With
        ``[[servers]]``, ``servers`` follows: a list of tables (``env`` merged).
        """
        values: dict[str, Any] = {
            section: {
                name: key.show(getattr(getattr(self, section), key.attr))
                for name, key in keys.items()
            }
            for section, keys in SCHEMA.items()
        }
        if written(self.servers):
            values["servers"] = show_servers(self.servers)
        return values


# The settings dataclass of each section of SCHEMA, by section name.
SECTIONS: dict[str, type[Any]] = {
    "ollama": OllamaSettings,
    "server": ServerSettings,
    "restart": RestartSettings,
    "warm": WarmSettings,
    "socket": SocketSettings,
    "log": LogSettings,
    "proxy": ProxySettings,
    "liveness": LivenessSettings,
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

    def error(key: str, message: str, entry: int = 0) -> ConfigError:
        """The error at `key`, in the `entry`-th [[servers]] entry when not 0."""
        line = find_entry_line(text, "servers", entry, key) if entry else None
        return ConfigError(
            message, file=str(file) if file else None, key=key, line=line or find_line(text, key)
        )

    given = check_document({k: v for k, v in doc.items() if k != "servers"}, error)
    values = {**defaults(), **given}
    origin = f"file:{file}"
    sources = {
        f"{section}.{name}": origin if f"{section}.{name}" in given else DEFAULT
        for section, keys in SCHEMA.items()
        for name in keys
    }
    check_relations(values, given, error)
    servers, url_source, warnings = load_servers(
        doc.get("servers"), given, e, origin, values["server.env"], error
    )
    values["ollama.base_url"] = servers[0].base_url
    if written(servers):
        sources["servers"] = origin
    sources.update(dict.fromkeys(with_parts("ollama.base_url"), url_source))
    for spec in servers:
        check_listen(values["proxy.listen"], spec.base_url, error)
    if unknown := warm_servers(values["warm.models"], servers):
        raise error("warm.models", unknown)
    if e.get("N3D_SOCKET"):
        values["socket.path"] = e["N3D_SOCKET"]
        sources["socket.path"] = "env:N3D_SOCKET"
    return _build(values, servers, file, sources, warnings)


def _build(
    values: Mapping[str, Any],
    servers: tuple[ServerSpec, ...],
    file: Path | None,
    sources: Mapping[str, str],
    warnings: tuple[str, ...],
) -> Settings:
    """Settings from the checked, resolved `values` by dotted key, as SCHEMA lands them."""
    sections: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        fields: dict[str, Any] = {}
        for name, key in keys.items():
            if not key.part_of:  # a part (host, port) went into its whole (base_url)
                fields.update(key.land(values[f"{section}.{name}"]))
        sections[section] = SECTIONS[section](**fields)
    return Settings(
        **sections, servers=servers, file=file, sources=dict(sources), warnings=warnings
    )
