"""Where the Ollama URL comes from: every level, their order, and OLLAMA_HOST's forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from n3d.config import load_settings
from n3d.errors import ConfigError

from .conftest import WriteConfig

LEVELS = ("file_url", "env_url", "file_hostport", "ollama_host", "default")


def _setup(write_config: WriteConfig, levels: set[str]) -> tuple[Path, dict[str, str]]:
    """A config file and environment that set exactly the given levels."""
    lines = ["[ollama]"]
    if "file_url" in levels:
        lines.append('base_url = "http://from-file-url:1111"')
    if "file_hostport" in levels:
        lines += ['host = "from-file-host"', "port = 3333"]
    env = {}
    if "env_url" in levels:
        env["NAMEL3SS_OLLAMA_BASE_URL"] = "http://from-env-url:2222"
    if "ollama_host" in levels:
        env["OLLAMA_HOST"] = "from-ollama-host:4444"
    return write_config("\n".join(lines) + "\n"), env


@pytest.mark.parametrize(
    ("winner", "url", "source"),
    [
        ("file_url", "http://from-file-url:1111", "file:{path}"),
        ("env_url", "http://from-env-url:2222", "env:NAMEL3SS_OLLAMA_BASE_URL"),
        ("file_hostport", "http://from-file-host:3333", "file:{path} (host/port)"),
        ("ollama_host", "http://from-ollama-host:4444", "env:OLLAMA_HOST"),
        ("default", "http://127.0.0.1:11434", "default"),
    ],
)
def test_each_level_wins_over_every_level_below_it(
    write_config: WriteConfig, winner: str, url: str, source: str
) -> None:
    path, env = _setup(write_config, set(LEVELS[LEVELS.index(winner) :]))
    settings = load_settings(path, env)
    assert settings.ollama.base_url == url
    assert settings.sources["ollama.base_url"] == source.format(path=path)


@pytest.mark.parametrize(
    ("level", "url"),
    [
        ("file_url", "http://from-file-url:1111"),
        ("env_url", "http://from-env-url:2222"),
        ("file_hostport", "http://from-file-host:3333"),
        ("ollama_host", "http://from-ollama-host:4444"),
    ],
)
def test_each_level_alone_is_enough(write_config: WriteConfig, level: str, url: str) -> None:
    path, env = _setup(write_config, {level})
    assert load_settings(path, env).ollama.base_url == url


def test_nothing_set_means_loopback_11434(write_config: WriteConfig) -> None:
    settings = load_settings(write_config(""), {})
    assert settings.ollama.base_url == "http://127.0.0.1:11434"
    assert settings.sources["ollama.base_url"] == "default"


@pytest.mark.parametrize(
    ("toml", "url"),
    [
        ('host = "10.0.0.5"', "http://10.0.0.5:11434"),
        ("port = 5000", "http://127.0.0.1:5000"),
        ('host = "gpu-box"\nport = 80', "http://gpu-box:80"),
        ('host = "::1"', "http://[::1]:11434"),
        ('host = "[::1]"\nport = 9', "http://[::1]:9"),
        ('host = "fe80::1"', "http://[fe80::1]:11434"),
        ('host = "0.0.0.0"', "http://127.0.0.1:11434"),
        ('host = "::"\nport = 7', "http://[::1]:7"),
        ('host = ""\nport = 5000', "http://127.0.0.1:5000"),
    ],
)
def test_config_host_and_port(write_config: WriteConfig, toml: str, url: str) -> None:
    path = write_config(f"[ollama]\n{toml}\n")
    settings = load_settings(path, {"OLLAMA_HOST": "ignored:1"})
    assert settings.ollama.base_url == url
    assert settings.sources["ollama.base_url"] == f"file:{path} (host/port)"


def test_empty_base_url_and_host_count_as_unset(write_config: WriteConfig) -> None:
    path = write_config('[ollama]\nbase_url = ""\nhost = ""\n')
    settings = load_settings(path, {"OLLAMA_HOST": "1.2.3.4"})
    assert settings.ollama.base_url == "http://1.2.3.4:11434"


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("http://gpu:11434/", "http://gpu:11434"),
        ("https://ollama.example.com//", "https://ollama.example.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://proxy.example/ollama/", "https://proxy.example/ollama"),
    ],
)
def test_base_urls_lose_trailing_slashes(write_config: WriteConfig, value: str, url: str) -> None:
    from_file = load_settings(write_config(f'[ollama]\nbase_url = "{value}"\n'), {})
    from_env = load_settings(write_config(""), {"NAMEL3SS_OLLAMA_BASE_URL": value})
    assert from_file.ollama.base_url == from_env.ollama.base_url == url


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":1234", "http://127.0.0.1:1234"),
        ("http://x", "http://x:80"),
        ("https://x", "https://x:443"),
        ("[::1]", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434"),
        ("https://h/path", "https://h:443/path"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:9999", "http://127.0.0.1:9999"),
        ("::", "http://[::1]:11434"),
        ("[::]:5000", "http://[::1]:5000"),
        ("ollama.com", "https://ollama.com:443"),
        ('"1.2.3.4:5000"', "http://1.2.3.4:5000"),
        ("'1.2.3.4:5000'", "http://1.2.3.4:5000"),
        ('  "http://x:81"  ', "http://x:81"),
    ],
)
def test_ollama_host_forms_are_parsed_like_ollama(
    write_config: WriteConfig, value: str, url: str
) -> None:
    settings = load_settings(write_config(""), {"OLLAMA_HOST": value})
    assert settings.ollama.base_url == url
    assert settings.sources["ollama.base_url"] == "env:OLLAMA_HOST"
    assert settings.warnings == ()


@pytest.mark.parametrize("value", ["", "   ", '""', "''", ' " " '])
def test_blank_ollama_host_is_unset(write_config: WriteConfig, value: str) -> None:
    settings = load_settings(write_config(""), {"OLLAMA_HOST": value})
    assert settings.ollama.base_url == "http://127.0.0.1:11434"
    assert settings.sources["ollama.base_url"] == "default"


@pytest.mark.parametrize(
    ("value", "url"), [(":66000", "http://127.0.0.1:11434"), ("h:x", "http://h:11434")]
)
def test_ollama_host_bad_port_falls_back_with_a_warning(
    write_config: WriteConfig, value: str, url: str
) -> None:
    settings = load_settings(write_config(""), {"OLLAMA_HOST": value})
    assert settings.ollama.base_url == url
    assert len(settings.warnings) == 1
    assert "OLLAMA_HOST" in settings.warnings[0] and "11434" in settings.warnings[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NAMEL3SS_OLLAMA_BASE_URL", "localhost:11434"),
        ("NAMEL3SS_OLLAMA_BASE_URL", "ftp://x"),
        ("NAMEL3SS_OLLAMA_BASE_URL", "http://"),
        ("NAMEL3SS_OLLAMA_BASE_URL", "http://x:99999"),
        ("OLLAMA_HOST", "ftp://x"),
    ],
)
def test_an_unusable_url_in_the_environment_names_the_variable(
    write_config: WriteConfig, name: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(""), {name: value})
    assert caught.value.key == "ollama.base_url"
    assert name in str(caught.value)


def test_host_and_port_are_reported_from_the_effective_url(write_config: WriteConfig) -> None:
    path = write_config('[ollama]\nhost = "ignored"\nport = 1\n')
    settings = load_settings(path, {"NAMEL3SS_OLLAMA_BASE_URL": "https://[::1]/"})
    values = settings.as_dict()["ollama"]
    assert (values["base_url"], values["host"], values["port"]) == ("https://[::1]", "::1", 443)
    for key in ("ollama.base_url", "ollama.host", "ollama.port"):
        assert settings.sources[key] == "env:NAMEL3SS_OLLAMA_BASE_URL"
