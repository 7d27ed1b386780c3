"""Several simulators under one `n3d run --simulate`: ``[[servers]]`` as real processes.

:class:`FleetProcess` is a :class:`~n3d.testing.DaemonProcess` whose config has one
``[[servers]]`` entry per name, each on a free port (``port = N``; the first one's
is ``d.port``) with its own simulator control file (``home/c-NAME.json``) and
request log (``home/r-NAME.jsonl``) in that entry's ``env``, so a test can hang
one server and tell which server answered what. The models directory is n3d's
``OLLAMA_MODELS`` (``home/models``, inherited by every child: shared), except for
the servers named in ``own_models``: each has its own (``home/m-NAME``, in its ``env``).
:func:`install` puts models on disk before n3d starts, as the simulator's
``OLLAMA_SIM_MODELS_PRELOAD`` would, but once: several simulators preloading one
shared directory at the same moment would race on its temporary files.
Standard library, tomli-w and :mod:`n3d.sim`'s store; never imported by the daemon.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from n3d.ollama.names import parse_model_name
from n3d.sim import registry
from n3d.sim.store import Store
from n3d.testing.daemon import DaemonProcess, wait_until
from n3d.testing.simulator import free_port

__all__ = ["FleetProcess", "install"]


def install(models_dir: Path, names: Iterable[str]) -> None:
    """Write each model's blobs and manifest under ``models_dir``, as a pull would leave them."""
    store = Store(models_dir)
    store.prepare()
    for text in names:
        name = parse_model_name(text)
        entry = registry.lookup(name)
        assert entry is not None, f"the simulator's registry has no {text}"
        for layer in entry.layers():
            store.write_blob(layer)
        store.write_manifest(name, entry)


class FleetProcess(DaemonProcess):
    """n3d supervising one simulator per name in ``names`` (module docstring).

    ``pinned`` gives a server its ``models`` (pinned there for routing and warmed
    there); ``server_env`` adds to a server's ``env``; ``ports`` keeps given ports
    (a second n3d over the same servers), the others are free ones. ``config`` is merged over
    the fast test configuration as :class:`DaemonProcess` merges it; ``models``
    are installed in every models directory before the start.
    """

    def __init__(
        self,
        home: Path,
        names: Sequence[str],
        *,
        config: dict[str, Any] | None = None,
        pinned: Mapping[str, Sequence[str]] | None = None,
        server_env: Mapping[str, Mapping[str, str]] | None = None,
        own_models: Iterable[str] = (),
        models: Sequence[str] = (),
        ports: Mapping[str, int] | None = None,
        name: str = "n3d",
        fast: bool = True,
        **env: str,
    ) -> None:
        self.names = tuple(names)
        self.ports = {n: (ports or {}).get(n) or free_port() for n in self.names}
        self.pinned = {name: list((pinned or {}).get(name, ())) for name in self.names}
        self.own_models = frozenset(own_models)
        self.server_env = {name: dict((server_env or {}).get(name, {})) for name in self.names}
        self.fleet_home = home
        first = self.ports[self.names[0]]
        super().__init__(home, config=config or {}, port=first, name=name, fast=fast)
        self.env.update(env)  # as DaemonProcess applies ``env``: last
        for directory in self.models_dirs():
            install(directory, models)

    def models_dirs(self) -> list[Path]:
        """Every distinct models directory of the servers."""
        return sorted({self.models_dir_of(name) for name in self.names})

    def models_dir_of(self, name: str) -> Path:
        """Server ``name``'s models directory (module docstring)."""
        own = name in self.own_models
        return self.fleet_home / (f"m-{name}" if own else "models")

    def server_entry(self, name: str) -> dict[str, Any]:
        """The ``[[servers]]`` table written for ``name``."""
        env = {
            "OLLAMA_SIM_CONTROL": str(self.control_of(name)),
            "OLLAMA_SIM_REQUEST_LOG": str(self.request_log_of(name)),
        }
        if name in self.own_models:
            env["OLLAMA_MODELS"] = str(self.models_dir_of(name))
        env.update(self.server_env[name])
        entry: dict[str, Any] = {"name": name, "port": self.ports[name], "env": env}
        if self.pinned[name]:
            entry["models"] = self.pinned[name]
        return entry

    def write_config(self, config: dict[str, Any]) -> None:
        """The base of :meth:`DaemonProcess.write_config` with ``[[servers]]`` for its address."""
        base: dict[str, Any] = {"server": {"mode": "managed"}}
        if self.fast:
            base["ollama"] = {"health_check_interval": 1}
            base["server"]["stop_timeout"] = 3
            base["restart"] = {"backoff_initial": 0.05}
        for section, values in config.items():
            base.setdefault(section, {}).update(values)
        base["servers"] = [self.server_entry(name) for name in self.names]
        self.config_path.write_text(tomli_w.dumps(base))

    def control_of(self, name: str) -> Path:
        return self.fleet_home / f"c-{name}.json"

    def request_log_of(self, name: str) -> Path:
        return self.fleet_home / f"r-{name}.jsonl"

    def url_of(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def pid_file(self, name: str) -> Path:
        """``ollama.pid`` for the first server, ``ollama-NAME.pid`` for the others."""
        return self.runtime / ("ollama.pid" if name == self.names[0] else f"ollama-{name}.pid")

    def servers(self, **params: Any) -> dict[str, dict[str, Any]]:
        """``status.servers`` by name."""
        status = self.call("status", params or None, timeout=5)
        return {entry["name"]: entry for entry in status["servers"]}

    def wait_servers(self, state: str = "running", within_s: float = 30.0) -> dict[str, Any]:
        """Wait until every server is in ``state``; ``status.servers`` by name then."""

        def reached() -> dict[str, Any] | None:
            found = self.servers()
            return found if all(s["state"] == state for s in found.values()) else None

        try:
            result: dict[str, Any] = wait_until(reached, within_s, f"every server {state}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None
        return result

    def set_control_of(self, name: str, **switches: Any) -> None:
        """Replace server ``name``'s simulator control file atomically."""
        path = self.control_of(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(switches))
        tmp.replace(path)

    def requests_of(self, name: str, path: str | None = None) -> list[dict[str, Any]]:
        """Server ``name``'s simulator request log (every serve it ran), by ``path``."""
        log = self.request_log_of(name)
        if not log.exists():
            return []
        found = []
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if path is None or entry.get("path") == path:
                    found.append(entry)
        return found
