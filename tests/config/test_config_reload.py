"""The reload plan, as a table: running settings + the new file → what runs, what waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from n3d.config import Settings, load_settings
from n3d.config.reload import RESTART_KEYS, plan_reload

from .conftest import WriteConfig

BASE = '[ollama]\nbase_url = "http://127.0.0.1:11434"\n'

# (what the file says now, keys applied now, keys waiting for a restart of n3d,
#  {dotted key: value config.get shows afterwards})
CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, Any]]] = [
    (BASE, (), (), {}),
    (
        BASE + '[log]\nlevel = "debug"\nformat = "console"\n',
        ("log.format", "log.level"),
        (),
        {"log.level": "debug", "log.format": "console"},
    ),
    (
        BASE + "[socket]\nmax_message_bytes = 4096\nmax_connections = 8\n",
        ("socket.max_message_bytes", "socket.max_connections"),
        (),
        {"socket.max_message_bytes": 4096, "socket.max_connections": 8},
    ),
    (
        BASE + '[socket]\npath = "/tmp/elsewhere.sock"\n',
        (),
        ("socket.path",),
        {"socket.path": ""},
    ),
    (
        '[ollama]\nbase_url = "http://127.0.0.1:11500"\n',
        (),
        ("ollama.base_url",),
        {"ollama.base_url": "http://127.0.0.1:11434", "ollama.port": 11434},
    ),
    (
        "[ollama]\nport = 11500\nhealth_check_interval = 7\n",  # the port moves base_url
        ("ollama.health_check_interval",),
        ("ollama.base_url",),
        {"ollama.port": 11434, "ollama.health_check_interval": 7.0},
    ),
    (
        BASE + '[server]\nmode = "external"\nstart_timeout = 9\n',
        ("server.start_timeout",),
        ("server.mode",),
        {"server.mode": "auto", "server.start_timeout": 9.0},
    ),
    (
        BASE + '[server]\ncommand = ["/opt/ollama", "serve"]\n[restart]\nmax_failures = 2\n'
        '[warm]\nmodels = ["phi3"]\nkeep_alive = "1h"\n',
        ("server.command", "restart.max_failures", "warm.models", "warm.keep_alive"),
        (),
        {"server.command": ["/opt/ollama", "serve"], "warm.models": ["phi3"]},
    ),
]


def settings(path: Path, text: str) -> Settings:
    path.write_text(text)
    return load_settings(path, {})


def flat(s: Settings) -> dict[str, Any]:
    return {f"{sec}.{k}": v for sec, keys in s.as_dict().items() for k, v in keys.items()}


@pytest.mark.parametrize(("text", "changed", "waiting", "shown"), CASES)
def test_a_reload_plan_says_what_applies_now_and_what_waits_for_a_restart(
    write_config: WriteConfig,
    text: str,
    changed: tuple[str, ...],
    waiting: tuple[str, ...],
    shown: dict[str, Any],
) -> None:
    path = write_config(BASE)
    running = load_settings(path, {})
    plan = plan_reload(running, settings(path, text))
    assert plan.changed == changed
    assert plan.needs_restart == waiting
    assert plan.effective.pending_restart == waiting
    assert plan.effective.document()["pending_restart"] == list(waiting)
    values = flat(plan.effective)
    assert {key: values[key] for key in shown} == shown
    for key in RESTART_KEYS:  # what cannot change keeps its value and its source
        assert values[key] == flat(running)[key]
        assert plan.effective.sources[key] == running.sources[key]


def test_a_key_waiting_for_a_restart_stops_waiting_when_the_file_goes_back(
    write_config: WriteConfig,
) -> None:
    path = write_config(BASE)
    running = load_settings(path, {})
    moved = plan_reload(running, settings(path, BASE + '[server]\nmode = "managed"\n'))
    assert moved.needs_restart == ("server.mode",)
    back = plan_reload(moved.effective, settings(path, BASE))
    assert back.needs_restart == () and back.effective.pending_restart == ()
    assert back.changed == ()


def test_a_kept_base_url_keeps_its_source_too(write_config: WriteConfig) -> None:
    path = write_config(BASE)
    running = load_settings(path, {})
    plan = plan_reload(running, load_settings(path, {"OLLAMA_HOST": "10.0.0.1:1"}))
    assert plan.needs_restart == ()  # the file's base_url still wins over OLLAMA_HOST
    path.write_text("")
    plan = plan_reload(running, load_settings(path, {"OLLAMA_HOST": "10.0.0.1:1"}))
    assert plan.needs_restart == ("ollama.base_url",)
    assert plan.effective.sources["ollama.port"] == f"file:{path}"
    assert plan.effective.ollama.base_url == "http://127.0.0.1:11434"
