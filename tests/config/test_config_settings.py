"""Settings are typed, frozen, complete, and remember where every value came from."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from pathlib import Path

import pytest

from n3d import paths
from n3d.config import (
    LogSettings,
    OllamaSettings,
    RestartSettings,
    ServerSettings,
    SocketSettings,
    WarmSettings,
    default_toml,
    load_settings,
)
from n3d.config.file import find_line
from n3d.config.schema import SCHEMA

from .conftest import WriteConfig

ALL_KEYS = {f"{section}.{key}" for section, keys in SCHEMA.items() for key in keys}


def test_defaults_are_the_documented_ones(write_config: WriteConfig) -> None:
    s = load_settings(write_config(""), {})
    assert s.ollama == OllamaSettings(
        base_url="http://127.0.0.1:11434",
        auto_pull_model=False,
        model_cache_ttl_s=60.0,
        health_check_interval_s=30.0,
        pull_timeout_s=600.0,
        keep_alive="5m",
        keep_alive_s=300.0,
        num_ctx=0,
        default_model="llama3:8b",
    )
    assert s.server == ServerSettings(
        mode="auto",
        command=("ollama", "serve"),
        env={},
        start_timeout_s=60.0,
        stop_timeout_s=10.0,
        health_timeout_s=5.0,
        failures_before_restart=3,
    )
    assert s.restart == RestartSettings(0.5, 60.0, 5, 300.0)
    assert s.warm == WarmSettings(models=(), keep_alive=-1, keep_alive_s=math.inf)
    assert s.socket == SocketSettings(path="", max_message_bytes=1048576, max_connections=256)
    assert s.log == LogSettings(format="auto", level="info")


def test_values_from_the_file_are_typed_and_sourced(write_config: WriteConfig) -> None:
    path = write_config(
        "[ollama]\n"
        "model_cache_ttl = 5\n"  # an int where seconds are expected is fine
        'keep_alive = "1h30m"\n'
        "[server]\n"
        'mode = "external"\n'
        'command = ["/opt/ollama", "serve", "--verbose"]\n'
        "[server.env]\n"
        'OLLAMA_MODELS = "/data"\n'
        "[warm]\n"
        'models = ["llama3", "qwen2:0.5b"]\n'
        'keep_alive = "-1s"\n'
    )
    s = load_settings(path, {})
    assert s.file == path
    assert s.ollama.model_cache_ttl_s == 5.0 and isinstance(s.ollama.model_cache_ttl_s, float)
    assert (s.ollama.keep_alive, s.ollama.keep_alive_s) == ("1h30m", 5400.0)
    assert s.server.mode == "external"
    assert s.server.command == ("/opt/ollama", "serve", "--verbose")
    assert dict(s.server.env) == {"OLLAMA_MODELS": "/data"}
    assert s.warm.models == ("llama3", "qwen2:0.5b")
    assert s.warm.keep_alive_s == math.inf
    assert s.sources["server.mode"] == f"file:{path}"
    assert s.sources["server.env"] == f"file:{path}"
    assert s.sources["log.level"] == "default"


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("300", 300.0), ("-5", math.inf)])
def test_numeric_keep_alive_is_seconds(
    write_config: WriteConfig, value: str, seconds: float
) -> None:
    s = load_settings(write_config(f"[ollama]\nkeep_alive = {value}\n"), {})
    assert s.ollama.keep_alive == int(value)
    assert s.ollama.keep_alive_s == seconds


def test_every_key_has_a_source_and_a_value(write_config: WriteConfig) -> None:
    s = load_settings(write_config(""), {})
    assert set(s.sources) == ALL_KEYS
    values = s.as_dict()
    assert list(values) == list(SCHEMA)
    for section, keys in SCHEMA.items():
        assert list(values[section]) == list(keys)
    assert json.loads(json.dumps(values)) == values


def test_settings_are_immutable(write_config: WriteConfig) -> None:
    s = load_settings(write_config('[server.env]\nA = "1"\n'), {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.ollama.base_url = "http://elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.server.env["A"] = "2"  # type: ignore[index]


def test_the_file_is_read_once(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config("[log]\nlevel = 'debug'\n")
    reads: list[Path] = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    load_settings(path, {})
    assert reads == [path]


def test_n3d_config_names_the_file(tmp_path: Path, write_config: WriteConfig) -> None:
    path = write_config('[log]\nlevel = "error"\n')
    s = load_settings(None, {"N3D_CONFIG": str(path), "HOME": str(tmp_path)})
    assert (s.file, s.log.level) == (path, "error")


def test_the_default_file_is_found_in_the_config_dir(home_env: dict[str, str]) -> None:
    path = Path(paths.config_file(home_env))
    assert path.is_relative_to(Path(home_env["HOME"]).parent)  # XDG_CONFIG_HOME or HOME
    path.parent.mkdir(parents=True)
    path.write_text('[log]\nformat = "json"\n')
    s = load_settings(None, home_env)
    assert (s.file, s.log.format) == (path, "json")


def test_n3d_socket_wins_and_is_shown_as_its_source(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config('[socket]\npath = "/tmp/from-file.sock"\n')
    assert load_settings(path, {}).socket_path({}) == Path("/tmp/from-file.sock")
    env = {"N3D_SOCKET": str(tmp_path / "env.sock")}
    s = load_settings(path, env)
    assert s.socket.path == str(tmp_path / "env.sock")
    assert s.sources["socket.path"] == "env:N3D_SOCKET"
    assert s.socket_path(env) == tmp_path / "env.sock"


def test_default_socket_is_in_the_runtime_dir(write_config: WriteConfig, tmp_path: Path) -> None:
    s = load_settings(write_config(""), {})
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "TMPDIR": str(tmp_path)}
    assert s.socket_path(env) == Path(paths.runtime_dir(env)) / "n3d.sock"


def test_default_toml_parses_back_to_the_defaults(write_config: WriteConfig) -> None:
    text = default_toml()
    tomllib.loads(text)
    from_file = load_settings(write_config(text), {})
    without = load_settings(write_config(""), {})
    assert from_file.as_dict() == without.as_dict()
    assert (from_file.ollama, from_file.server, from_file.warm) == (
        without.ollama,
        without.server,
        without.warm,
    )


def test_default_toml_mentions_every_key(write_config: WriteConfig) -> None:
    text = default_toml()
    doc = tomllib.loads(text)
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            if key.default is None:  # unset by default: shown as a comment to uncomment
                assert f"# {name} = " in text
                assert name not in doc[section]
            else:
                assert name in doc[section]


def test_default_toml_leaves_the_environment_in_charge(write_config: WriteConfig) -> None:
    s = load_settings(write_config(default_toml()), {"OLLAMA_HOST": "gpu:1"})
    assert s.ollama.base_url == "http://gpu:1"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("[a]\nb = 1\n", "a.b", 2),
        ("[a]\nb = 1\n", "a", 1),
        ('[ a ]\n"b" = 1\n', "a.b", 2),
        ("a.b = 1\n", "a.b", 1),
        ("[a]\nc.d = 1\n", "a.c.d", 2),
        ("[a.c]\nd = 1\n", "a.c.d", 2),
        ("[a]\nc = { d = 1 }\n", "a.c.d", 2),  # inline table: the enclosing key's line
        ("[x]\nb = 1\n[a]\nb = 1\n", "a.b", 4),
        ("[x]\n", "a.b", None),
    ],
)
def test_find_line(text: str, key: str, line: int | None) -> None:
    assert find_line(text, key) == line
