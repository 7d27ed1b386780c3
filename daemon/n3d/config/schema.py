"""Every key of the n3d config file: its default, its check and a one-line meaning.

`SCHEMA[section][key]` is the one description that the loader, `n3d config init`
and docs/configuration.md agree on; the order here is the order of the file.

Keys whose default is ``None`` are *unset* by default: `ollama.base_url`, `host`
and `port` take part in the base-URL resolution only when written, so that
`NAMEL3SS_OLLAMA_BASE_URL` and `OLLAMA_HOST` still work after `n3d config init`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from n3d.config.checks import (
    Check,
    Invalid,
    base_url,
    boolean,
    choice,
    closest,
    command,
    describe,
    env_table,
    host,
    integer,
    model_list,
    model_name,
    text,
)
from n3d.config.durations import keep_alive, seconds
from n3d.errors import ConfigError

__all__ = [
    "FLOOR_S",
    "SCHEMA",
    "WARM_KEEP_ALIVE_FLOOR_S",
    "ErrorAt",
    "Key",
    "check_document",
    "check_relations",
    "defaults",
]

ErrorAt = Callable[[str, str], ConfigError]
"""Builds the error for a dotted key and a message (the caller knows file and line)."""


@dataclass(frozen=True, slots=True)
class Key:
    """One config key: TOML default (None = unset), check, and a comment for the file."""

    default: Any
    check: Check
    doc: str


def _section(**keys: Key) -> dict[str, Key]:
    return dict(keys)


# Each key's floor is written once, below. DESIGN.md: "Every number has a sane floor:
# an interval or timeout below 0.05 s, or a keep-alive that Ollama would round to 0,
# is a config error, not a busy loop" (1e-300 s health checks ran ~700 probes/s).
FLOOR_S = 0.05
# The keeper renews a finite warm keep_alive halfway through it: under 1 s that is
# more than two loads a second of the same model.
WARM_KEEP_ALIVE_FLOOR_S = 1.0


SCHEMA: dict[str, dict[str, Key]] = {
    "ollama": _section(
        base_url=Key(None, base_url, "full URL of Ollama; wins over everything else"),
        host=Key(None, host, "with port, when no base_url is set"),
        port=Key(None, integer(1, 65535, "a port number"), "with host, when no base_url is set"),
        auto_pull_model=Key(False, boolean, "pull a missing model on models.ensure / warm"),
        model_cache_ttl=Key(
            60, seconds(FLOOR_S, zero_ok=True), "seconds a model-availability answer is reused"
        ),
        health_check_interval=Key(
            30, seconds(FLOOR_S), "seconds: health check period and throttle window"
        ),
        pull_timeout=Key(
            600, seconds(FLOOR_S), "seconds without pull progress before a pull fails"
        ),
        keep_alive=Key(
            "5m",
            keep_alive(),
            'how long Ollama keeps a model loaded: "5m" or seconds; -1 = forever',
        ),
        num_ctx=Key(
            0,
            integer(0, None, "a context length"),
            "context length sent with warm-up loads; 0 = Ollama decides",
        ),
        default_model=Key("llama3:8b", model_name, "the model editors use when they name none"),
    ),
    "server": _section(
        mode=Key(
            "auto", choice("auto", "managed", "external"), "auto | managed | external (see above)"
        ),
        command=Key(["ollama", "serve"], command, "how to start Ollama (managed/auto)"),
        env=Key({}, env_table, "extra environment for `ollama serve`"),
        start_timeout=Key(60, seconds(FLOOR_S), "seconds to the first healthy check"),
        stop_timeout=Key(10, seconds(FLOOR_S, zero_ok=True), "seconds from SIGTERM to SIGKILL"),
        health_timeout=Key(5, seconds(FLOOR_S), "seconds one health probe may take"),
        failures_before_restart=Key(
            3, integer(1, None, "a count"), "failed checks before a restart"
        ),
    ),
    "restart": _section(
        backoff_initial=Key(0.5, seconds(FLOOR_S), "seconds before retrying a failed start"),
        backoff_max=Key(60.0, seconds(FLOOR_S), "the doubling delay stops growing here"),
        max_failures=Key(5, integer(1, None, "a count"), "failed starts in `window` → fatal"),
        window=Key(300, seconds(FLOOR_S), "seconds over which failed starts are counted"),
    ),
    "warm": _section(
        models=Key([], model_list, "models kept loaded; re-warmed after eviction"),
        keep_alive=Key(
            -1,
            keep_alive(minimum_s=WARM_KEEP_ALIVE_FLOOR_S),
            "keep_alive sent by warm-up loads; -1 = forever",
        ),
    ),
    "socket": _section(
        path=Key("", text, '"" = runtime dir / n3d.sock (N3D_SOCKET wins)'),
        max_message_bytes=Key(
            1048576, integer(1, None, "a size in bytes"), "largest JSON-RPC message accepted"
        ),
        max_connections=Key(256, integer(1, None, "a count"), "clients connected at once"),
    ),
    "log": _section(
        format=Key("auto", choice("auto", "json", "console"), "auto = console on a TTY"),
        level=Key("info", choice("debug", "info", "warning", "error"), "lowest level logged"),
    ),
}


def defaults() -> dict[str, Any]:
    """Checked default values by dotted key; unset keys (default None) are left out."""
    return {
        f"{section}.{name}": key.check(key.default)
        for section, keys in SCHEMA.items()
        for name, key in keys.items()
        if key.default is not None
    }


def check_document(doc: Mapping[str, Any], error: ErrorAt) -> dict[str, Any]:
    """Checked values of the keys a parsed TOML document sets, by dotted key.

    Raises ``error(dotted_key, message)`` for the first unknown section or key
    (with the closest known name) and for the first value its check rejects.
    """
    known = ", ".join(f"[{s}]" for s in SCHEMA)
    values: dict[str, Any] = {}
    for section, table in doc.items():
        keys = SCHEMA.get(section)
        if keys is None:
            if not isinstance(table, dict):
                homes = [s for s, names in SCHEMA.items() if section in names]
                where = f"did you mean '{section}' under [{homes[0]}]?" if homes else known
                raise error(section, f"settings belong under a section header: {where}")
            near = closest(section, SCHEMA)
            hint = f"did you mean [{near}]?" if near else f"known sections: {known}"
            raise error(section, f"unknown section [{section}]; {hint}")
        if not isinstance(table, dict):
            raise error(section, f"expected a table ([{section}]), got {describe(table)}")
        for name, raw in table.items():
            dotted = f"{section}.{name}"
            key = keys.get(name)
            if key is None:
                near = closest(name, keys)
                hint = f"did you mean '{near}'?" if near else "known keys: " + ", ".join(keys)
                raise error(dotted, f"unknown key in [{section}]; {hint}")
            try:
                values[dotted] = key.check(raw)
            except Invalid as exc:
                where = f"{dotted}.{exc.subkey}" if exc.subkey else dotted
                raise error(where, str(exc)) from None
    return values


def check_relations(values: Mapping[str, Any], given: Mapping[str, Any], error: ErrorAt) -> None:
    """Rules between keys, on the merged `values`; blames a key the file set (`given`)."""
    initial, maximum = values["restart.backoff_initial"], values["restart.backoff_max"]
    if initial > maximum:
        blame = (
            "restart.backoff_initial"
            if "restart.backoff_initial" in given
            else "restart.backoff_max"
        )
        raise error(
            blame,
            f"backoff_initial ({initial:g} s) is larger than backoff_max ({maximum:g} s); "
            "expected backoff_initial <= backoff_max",
        )
