"""Every key of the n3d config file, spelled once: default, check, meaning, where it lands.

`SCHEMA[section][key]` is the one description that the loader, the settings it
builds (:func:`n3d.config.settings.load_settings`), what `n3d config show` and
`config.get` show (``Settings.as_dict``), `n3d config init` (`default_toml`), the
reload plan (which keys wait for a restart) and docs/configuration.md agree on;
the order here is the order of the file. Adding a key means one ``Key`` here,
one typed field on its section's settings dataclass, and its row in the docs;
tests/config/test_config_schema.py fails when any of the three is missing.

How a key names where its value lands is told in :mod:`n3d.config.key`.

Keys whose default is ``None`` are *unset* by default: `ollama.base_url`, `host`
and `port` take part in the base-URL resolution only when written, so that
`NAMEL3SS_OLLAMA_BASE_URL` and `OLLAMA_HOST` still work after `n3d config init`.

Long because every key of every section is spelled here once, by design: a
split would bring back the copies this module exists to remove.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from n3d.config.checks import (
    Invalid,
    base_url,
    boolean,
    choice,
    closest,
    command,
    describe,
    env_table,
    factor,
    host,
    integer,
    model_name,
    text,
)
from n3d.config.durations import keep_alive, keep_alive_seconds, seconds
from n3d.config.key import Key, make_section
from n3d.config.listen import listen_address
from n3d.config.url import DEFAULT_BASE_URL, url_host, url_port
from n3d.config.warm import show_warm, warm_list, warm_names
from n3d.errors import ConfigError
from n3d.redact import redact_url

__all__ = [
    "FLOOR_S",
    "PROBE_INTERVAL_FLOOR_S",
    "SCHEMA",
    "WARM_KEEP_ALIVE_FLOOR_S",
    "ErrorAt",
    "check_document",
    "check_relations",
    "defaults",
    "with_parts",
]

ErrorAt = Callable[[str, str], ConfigError]
"""Builds the error for a dotted key and a message (the caller knows file and line)."""

# Each key's floor is written once, below. DESIGN.md: "Every number has a sane floor:
# an interval or timeout below 0.05 s, or a keep-alive that Ollama would round to 0,
# is a config error, not a busy loop" (1e-300 s health checks ran ~700 probes/s).
FLOOR_S = 0.05
# The keeper renews a finite warm keep_alive halfway through it: under 1 s that is
# more than two loads a second of the same model.
WARM_KEEP_ALIVE_FLOOR_S = 1.0
# Each inference probe costs Ollama a generate of one token on every warm model:
# more often than once a second would be load, not a check.
PROBE_INTERVAL_FLOOR_S = 1.0


SCHEMA: dict[str, dict[str, Key]] = {
    "ollama": make_section(
        base_url=Key(
            None,
            base_url,
            "full URL of Ollama; wins over everything else",
            example=DEFAULT_BASE_URL,
            show=redact_url,  # shown, never used to connect
            # The health probe, the model client and the child's OLLAMA_HOST were all
            # built for one address, and moving them one by one would split them.
            live=False,
        ),
        host=Key(
            None,
            host,
            "with port, when no base_url is set",
            example="127.0.0.1",
            part_of="base_url",
            show=url_host,
        ),
        port=Key(
            None,
            integer(1, 65535, "a port number"),
            "with host, when no base_url is set",
            example=11434,
            part_of="base_url",
            show=url_port,
        ),
        auto_pull_model=Key(False, boolean, "pull a missing model on models.ensure / warm"),
        model_cache_ttl=Key(
            60,
            seconds(FLOOR_S, zero_ok=True),
            "seconds a model-availability answer is reused",
            attr="model_cache_ttl_s",
        ),
        health_check_interval=Key(
            30,
            seconds(FLOOR_S),
            "seconds: health check period and throttle window",
            attr="health_check_interval_s",
        ),
        pull_timeout=Key(
            600,
            seconds(FLOOR_S),
            "seconds without pull progress before a pull fails",
            attr="pull_timeout_s",
        ),
        keep_alive=Key(
            "5m",
            keep_alive(),
            'how long Ollama keeps a model loaded: "5m" or seconds; -1 = forever',
            parsed=("keep_alive_s", keep_alive_seconds),
        ),
        num_ctx=Key(
            0,
            integer(0, None, "a context length"),
            "context length sent with warm-up loads; 0 = Ollama decides",
        ),
        default_model=Key("llama3:8b", model_name, "the model editors use when they name none"),
    ),
    "server": make_section(
        mode=Key(
            "auto",
            choice("auto", "managed", "external"),
            "auto | managed | external (see above)",
            live=False,  # it decides the whole lifecycle: adopt, own, or only watch
        ),
        command=Key(["ollama", "serve"], command, "how to start Ollama (managed/auto)"),
        env=Key({}, env_table, "extra environment for `ollama serve`"),
        start_timeout=Key(
            60, seconds(FLOOR_S), "seconds to the first healthy check", attr="start_timeout_s"
        ),
        stop_timeout=Key(
            10,
            seconds(FLOOR_S, zero_ok=True),
            "seconds from SIGTERM to SIGKILL",
            attr="stop_timeout_s",
        ),
        health_timeout=Key(
            5, seconds(FLOOR_S), "seconds one health probe may take", attr="health_timeout_s"
        ),
        failures_before_restart=Key(
            3, integer(1, None, "a count"), "failed checks before a restart"
        ),
    ),
    "restart": make_section(
        backoff_initial=Key(
            0.5,
            seconds(FLOOR_S),
            "seconds before retrying a failed start",
            attr="backoff_initial_s",
        ),
        backoff_max=Key(
            60.0, seconds(FLOOR_S), "the doubling delay stops growing here", attr="backoff_max_s"
        ),
        max_failures=Key(5, integer(1, None, "a count"), "failed starts in `window` → fatal"),
        window=Key(
            300, seconds(FLOOR_S), "seconds over which failed starts are counted", attr="window_s"
        ),
    ),
    "warm": make_section(
        models=Key(
            [],
            warm_list,
            'models kept loaded; re-warmed after eviction; { model = "m", server = "gpu1" } '
            "names the server",
            # As written (strings and tables) on `placed`; the names alone on `models`.
            attr="placed",
            parsed=("models", warm_names),
            show=show_warm,
        ),
        keep_alive=Key(
            -1,
            keep_alive(minimum_s=WARM_KEEP_ALIVE_FLOOR_S),
            "keep_alive sent by warm-up loads; -1 = forever",
            parsed=("keep_alive_s", keep_alive_seconds),
        ),
    ),
    "socket": make_section(
        path=Key(
            "",
            text,
            '"" = runtime dir / n3d.sock (N3D_SOCKET wins)',
            live=False,  # the socket is bound once, before anything starts
        ),
        max_message_bytes=Key(
            1048576, integer(1, None, "a size in bytes"), "largest JSON-RPC message accepted"
        ),
        max_connections=Key(256, integer(1, None, "a count"), "clients connected at once"),
    ),
    "log": make_section(
        format=Key("auto", choice("auto", "json", "console"), "auto = console on a TTY"),
        level=Key("info", choice("debug", "info", "warning", "error"), "lowest level logged"),
    ),
    "proxy": make_section(
        listen=Key(
            "",
            listen_address,
            '"" = off; "127.0.0.1:11434" puts n3d in front of Ollama (docs/proxy.md)',
            live=False,  # the port is bound once, at start
        ),
        hold_timeout=Key(
            60,
            seconds(FLOOR_S),
            "seconds a request waits for a starting or restarting server",
            attr="hold_timeout_s",
        ),
        drain_timeout=Key(
            30,
            seconds(FLOOR_S, zero_ok=True),
            "seconds a planned restart or stop waits for requests in flight",
            attr="drain_timeout_s",
        ),
        retry=Key(True, boolean, "resend once a request whose answer had not begun"),
    ),
    "liveness": make_section(
        inference_probe=Key(
            True,
            boolean,
            "check warm models with a one-token generate when no traffic shows them alive",
        ),
        probe_interval=Key(
            30,
            seconds(PROBE_INTERVAL_FLOOR_S),
            "seconds between inference checks of a warm model that traffic does not show alive",
            attr="probe_interval_s",
        ),
        probe_timeout=Key(
            20, seconds(FLOOR_S), "seconds one inference probe may take", attr="probe_timeout_s"
        ),
        stuck_unload_after=Key(
            30,
            seconds(FLOOR_S),
            "seconds past expires_at after which a loaded model counts as wedged",
            attr="stuck_unload_after_s",
        ),
        slow_factor=Key(5, factor, 'decode rate below baseline / slow_factor is "slow"; 0 = off'),
        restart_when_slow=Key(
            True, boolean, "restart serve once (at most hourly) when inference turns slow"
        ),
    ),
}


def with_parts(dotted: str) -> tuple[str, ...]:
    """The dotted key and the keys that are part of it (``ollama.base_url`` → host, port)."""
    section, _, name = dotted.partition(".")
    parts = [f"{section}.{n}" for n, key in SCHEMA[section].items() if key.part_of == name]
    return (dotted, *parts)


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
