"""`[[servers]]`: several Ollama servers on one host, each as a :class:`ServerSpec`.

Each ``[[servers]]`` entry is one ``ollama serve`` (one per GPU, usually): a ``name``,
an address (``base_url``, or ``port`` for ``http://127.0.0.1:PORT``), an ``env``
merged over ``[server].env``, and the ``models`` pinned there (routed and warmed
there). Every other ``[server]``, ``[restart]``, ``[liveness]`` and ``[warm]`` key
applies to each server. Without ``[[servers]]`` there is one server, ``default``,
from ``[ollama]`` and ``[server]`` as before (:func:`default_server`).

Which server warms a ``[warm] models`` entry is :mod:`n3d.config.warm`'s.

Checks raise :class:`~n3d.config.checks.Invalid` with the entry's key in ``subkey``;
the loader adds the file, the line and the entry's label (:func:`label`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from n3d.config.checks import (
    Check,
    Invalid,
    check_url,
    closest,
    describe,
    env_table,
    integer,
    model_list,
    text,
)
from n3d.config.url import resolve_base_url
from n3d.errors import ConfigError
from n3d.redact import redact_url

__all__ = [
    "ENTRY_KEYS",
    "NAME",
    "EntryErrorAt",
    "ServerSpec",
    "check_entry",
    "default_server",
    "label",
    "load_servers",
    "show_servers",
    "written",
]

EntryErrorAt = Callable[[str, str, int], ConfigError]
"""Builds the error for a dotted key, a message and the entry's number (from 1)."""

# The keys of one [[servers]] entry and their meaning; docs/configuration.md has a row
# for each (tests/config/test_config_servers.py).
ENTRY_KEYS: dict[str, str] = {
    "name": "required; lowercase letters, digits and `-`; unique",
    "base_url": "full URL of this server (or `port`; exactly one of them)",
    "port": "this server on `http://127.0.0.1:PORT` (or `base_url`)",
    "env": "extra environment for this server, merged over `[server].env`",
    "models": "models pinned here: routed here and warmed here",
}
NAME = re.compile(r"[a-z0-9-]+")
_PORT = integer(1, 65535, "a port number")
# Nobody can tell these apart from the outside: one address, whatever it is called.
_LOOPBACK = {"localhost": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One server n3d supervises, as configured."""

    name: str  # "default" without [[servers]]; else [a-z0-9-]+, unique
    base_url: str  # checked like [ollama] base_url; `port = N` -> http://127.0.0.1:N
    env: Mapping[str, str]  # [server].env with this entry's env merged over it
    models: tuple[str, ...]  # model names pinned here (routing and warming), as written
    source: str  # where it came from, for messages: "[[servers]] #2 (gpu1)" or "[ollama]"


def default_server(base_url: str, env: Mapping[str, str]) -> ServerSpec:
    """The one server of a config without ``[[servers]]``."""
    return ServerSpec("default", base_url, env, (), "[ollama]")


def written(servers: Iterable[ServerSpec]) -> bool:
    """Whether these servers came from ``[[servers]]`` (not the one ``default``)."""
    return any(spec.source.startswith("[[servers]]") for spec in servers)


def label(number: int, entry: object) -> str:
    """``[[servers]] #2 (gpu1)``: the entry as messages name it (number from 1)."""
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and NAME.fullmatch(name):
        return f"[[servers]] #{number} ({name})"
    return f"[[servers]] #{number}"


def check_entry(number: int, entry: object, server_env: Mapping[str, str]) -> ServerSpec:
    """One ``[[servers]]`` entry (number from 1) as a :class:`ServerSpec`.

    Raises Invalid (``subkey``: the entry's key at fault, None for the entry itself).
    """
    if not isinstance(entry, dict):
        raise Invalid(f"expected a table ([[servers]]), got {describe(entry)}")
    for key in entry:
        if key not in ENTRY_KEYS:
            near = closest(key, ENTRY_KEYS)
            hint = f"did you mean '{near}'?" if near else "known keys: " + ", ".join(ENTRY_KEYS)
            raise Invalid(
                f"unknown key '{key}' in a [[servers]] entry; {hint} (every other "
                "[server], [restart], [liveness] and [warm] key applies to each server)",
                subkey=key,
            )
    name = entry.get("name")
    if name is None:
        raise Invalid('every [[servers]] entry needs a name, like name = "gpu0"', subkey="name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise Invalid(
            f'expected a name of lowercase letters, digits and "-" like "gpu0", '
            f"got {describe(name)}",
            subkey="name",
        )
    if ("base_url" in entry) == ("port" in entry):
        both = "both" if "base_url" in entry else "neither"
        raise Invalid(
            f'expected exactly one of base_url = "http://127.0.0.1:11435" or port = 11435; '
            f"got {both}",
            subkey="base_url" if "base_url" in entry else None,
        )
    if "port" in entry:
        url = f"http://127.0.0.1:{_sub(_PORT, entry['port'], 'port')}"
    else:
        url = _sub(_url, entry["base_url"], "base_url")
    env = _sub(env_table, entry.get("env", {}), "env")
    models = _sub(model_list, entry.get("models", []), "models")
    merged = MappingProxyType({**server_env, **env})
    return ServerSpec(name, url, merged, models, label(number, entry))


def _url(value: object) -> str:
    return check_url(text(value))


def _sub(check: Check, value: object, key: str) -> Any:
    """``check(value)``, its Invalid naming ``key`` (and the table entry, for env)."""
    try:
        return check(value)
    except Invalid as exc:
        raise Invalid(str(exc), subkey=f"{key}.{exc.subkey}" if exc.subkey else key) from None


def _address(url: str) -> tuple[str, int]:
    """(host, port) of a base URL, loopback spellings made one, for "same address"."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _LOOPBACK.get(host, "127.0.0.1" if host.startswith("127.") else host), port


def _check_unique(servers: tuple[ServerSpec, ...], raw: list[Any]) -> tuple[int, str, str] | None:
    """The first entry that repeats an earlier one's name or address, as
    (its index, its key at fault, the message); None when all differ. `raw` are
    the entries as written (whether the address was a port or a base_url)."""
    for i, spec in enumerate(servers):
        for earlier in servers[:i]:
            if spec.name == earlier.name:
                return i, "name", f'the name "{spec.name}" is already used by {earlier.source}'
            if _address(spec.base_url) == _address(earlier.base_url):
                return (
                    i,
                    "port" if "port" in raw[i] else "base_url",
                    f"{redact_url(spec.base_url)} is the address of {earlier.source} too: "
                    "each server needs its own port",
                )
    return None


def show_servers(servers: tuple[ServerSpec, ...]) -> list[dict[str, Any]]:
    """``servers`` as `config show` shows them (base URLs without credentials)."""
    return [
        {
            "name": spec.name,
            "base_url": redact_url(spec.base_url),
            "env": dict(spec.env),
            "models": list(spec.models),
        }
        for spec in servers
    ]


# Written in the file, these would name a second address for the first server.
_OLLAMA_ADDRESS = ("ollama.base_url", "ollama.host", "ollama.port")
# Each names the address of the one server; with [[servers]] every entry names its own.
_ADDRESS_VARIABLES = ("NAMEL3SS_OLLAMA_BASE_URL", "OLLAMA_HOST")


def load_servers(
    raw: object,
    given: Mapping[str, Any],
    env: Mapping[str, str],
    origin: str,
    server_env: Mapping[str, str],
    error: EntryErrorAt,
) -> tuple[tuple[ServerSpec, ...], str, tuple[str, ...]]:
    """(the servers, the source of the first one's address, warnings to log).

    `raw` is the document's ``servers`` value (None: not written: one server,
    ``default``, at the base URL :func:`~n3d.config.url.resolve_base_url` finds),
    `given` the checked keys the file sets (by dotted key), `env` the environment,
    `origin` the file's source ("file:PATH"), `server_env` the checked
    ``[server].env``. Raises the error ``error(dotted_key, message, entry_number)``
    builds (0: not in one entry).
    """
    if raw is None:
        url, source, warnings = resolve_base_url(given, env, origin)
        return (default_server(url, server_env),), source, warnings
    if not isinstance(raw, list):
        raise error(
            "servers",
            f"expected [[servers]] entries (an array of tables), got {describe(raw)}; "
            'write each server as [[servers]] with name = "gpu0" and its port',
            0,
        )
    if not raw:
        raise error(
            "servers", "servers = [] names no server; remove it or add [[servers]] entries", 0
        )
    for dotted in _OLLAMA_ADDRESS:
        if given.get(dotted) is not None:
            raise error(
                dotted,
                f"[ollama] {dotted.partition('.')[2]} cannot be set "
                "with [[servers]]: each server names its own address. Remove it from "
                "[ollama] and give every [[servers]] entry its base_url or port",
                0,
            )
    specs = []
    for number, entry in enumerate(raw, start=1):
        try:
            specs.append(check_entry(number, entry, server_env))
        except Invalid as exc:
            key = f"servers.{exc.subkey}" if exc.subkey else "servers"
            raise error(key, f"{label(number, entry)}: {exc}", number) from None
    servers = tuple(specs)
    if clash := _check_unique(servers, raw):
        i, key, message = clash
        raise error(f"servers.{key}", f"{servers[i].source}: {message}", i + 1)
    warnings = tuple(
        f"{name} is set but does not apply with [[servers]]: each server's address is "
        "its entry's base_url or port"
        for name in _ADDRESS_VARIABLES
        if env.get(name, "").strip().strip("\"'").strip()
    )
    return servers, f"{origin} ([[servers]])", warnings
