"""A bad config is one clear error naming the file, the key, the line and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from n3d.config import load_settings
from n3d.errors import ConfigError

from .conftest import WriteConfig

# (TOML after a leading comment line, dotted key, line, text the message must contain)
CASES = [
    ("[ollama]\nprot = 1", "ollama.prot", 3, "did you mean 'port'?"),
    ("[ollama]\nmodel_cache_ttl_s = 1", "ollama.model_cache_ttl_s", 3, "'model_cache_ttl'"),
    ("[olama]\nport = 1", "olama", 2, "did you mean [ollama]?"),
    ("[metrics]\nx = 1", "metrics", 2, "known sections: [ollama], [server]"),
    ('mode = "auto"', "mode", 2, "'mode' under [server]"),
    ("ollama = 3", "ollama", 2, "expected a table"),
    ("[ollama]\nport = 70000", "ollama.port", 3, "1..65535, got 70000"),
    ("[ollama]\nport = 0", "ollama.port", 3, "1..65535, got 0"),
    ('[ollama]\nport = "11434"', "ollama.port", 3, 'got the string "11434"'),
    ("[ollama]\nport = true", "ollama.port", 3, "got the boolean true"),
    ("[ollama]\nauto_pull_model = 1", "ollama.auto_pull_model", 3, "expected true or false"),
    ('[ollama]\nauto_pull_model = "yes"', "ollama.auto_pull_model", 3, "expected true or false"),
    ("[ollama]\nnum_ctx = 1.5", "ollama.num_ctx", 3, "got the float 1.5"),
    ("[ollama]\nnum_ctx = -1", "ollama.num_ctx", 3, "at least 0"),
    ("[ollama]\nnum_ctx = false", "ollama.num_ctx", 3, "got the boolean false"),
    ('[ollama]\nkeep_alive = "300"', "ollama.keep_alive", 3, 'missing unit in duration "300"'),
    ('[ollama]\nkeep_alive = "300"', "ollama.keep_alive", 3, 'write "300s" or the number 300'),
    ('[warm]\nkeep_alive = "-1"', "warm.keep_alive", 3, 'write "-1s" or the number -1'),
    ('[ollama]\nkeep_alive = "5 min"', "ollama.keep_alive", 3, "unknown unit"),
    ("[ollama]\nkeep_alive = true", "ollama.keep_alive", 3, "Unsupported type"),
    ("[ollama]\nkeep_alive = inf", "ollama.keep_alive", 3, "finite"),
    ('[ollama]\nbase_url = "localhost:11434"', "ollama.base_url", 3, "http:// or https://"),
    ('[ollama]\nbase_url = "http://x/?a=1"', "ollama.base_url", 3, "?query"),
    ('[ollama]\nhost = "http://x"', "ollama.host", 3, "put a full URL in base_url"),
    ('[ollama]\nhost = "x:1"', "ollama.host", 3, "put the port in `port`"),
    ('[ollama]\nhost = "a b"', "ollama.host", 3, "not a valid host name"),
    ('[ollama]\ndefault_model = "a b"', "ollama.default_model", 3, "Invalid model name 'a b'"),
    ("[ollama]\nhealth_check_interval = -5", "ollama.health_check_interval", 3, "more than zero"),
    ("[ollama]\nhealth_check_interval = 0", "ollama.health_check_interval", 3, "more than zero"),
    ("[ollama]\npull_timeout = nan", "ollama.pull_timeout", 3, "finite"),
    ('[ollama]\npull_timeout = "10m"', "ollama.pull_timeout", 3, "write the number 600"),
    ("[ollama]\nmodel_cache_ttl = -1", "ollama.model_cache_ttl", 3, "zero or more"),
    ("[server]\nstart_timeout = true", "server.start_timeout", 3, "number of seconds"),
    ("[server]\nstop_timeout = -0.5", "server.stop_timeout", 3, "zero or more"),
    ("[server]\nhealth_timeout = -1", "server.health_timeout", 3, "more than zero"),
    ('[server]\nmode = "manged"', "server.mode", 3, 'did you mean "managed"?'),
    ('[server]\nmode = "Auto"', "server.mode", 3, '"auto", "managed", "external"'),
    ("[server]\ncommand = []", "server.command", 3, '["ollama", "serve"]'),
    ('[server]\ncommand = [""]', "server.command", 3, "a program and its arguments"),
    ('[server]\ncommand = "ollama serve"', "server.command", 3, "array of strings"),
    ('[server]\ncommand = ["ollama", 1]', "server.command", 3, "entry 2 is the integer 1"),
    ("[server]\nenv = 1", "server.env", 3, "table of strings"),
    ('[server]\nenv = ["A=1"]', "server.env", 3, "table of strings"),
    ("[server.env]\nOLLAMA_DEBUG = 1", "server.env.OLLAMA_DEBUG", 3, "expected a string"),
    ("[server]\nenv = { A = true }", "server.env.A", 3, "expected a string"),
    ("[server]\nfailures_before_restart = 0", "server.failures_before_restart", 3, "at least 1"),
    ("[restart]\nmax_failures = 0", "restart.max_failures", 3, "at least 1"),
    ("[restart]\nwindow = 0", "restart.window", 3, "more than zero"),
    ("[restart]\nbackoff_initial = 100", "restart.backoff_initial", 3, "backoff_initial <= "),
    ("[restart]\nbackoff_max = 0.1", "restart.backoff_max", 3, "larger than backoff_max (0.1 s)"),
    ('[warm]\nmodels = "llama3"', "warm.models", 3, "array of model names"),
    ('[warm]\nmodels = ["llama3", "bad name"]', "warm.models", 3, "entry 2: Invalid model name"),
    ("[warm]\nmodels = [3]", "warm.models", 3, "entry 1: expected a model name"),
    ("[socket]\npath = 1", "socket.path", 3, "expected a string"),
    ("[socket]\nmax_message_bytes = 0", "socket.max_message_bytes", 3, "at least 1"),
    ("[socket]\nmax_connections = 0", "socket.max_connections", 3, "at least 1"),
    ('[log]\nformat = "text"', "log.format", 3, '"auto", "json", "console"'),
    ('[log]\nlevel = "INFO"', "log.level", 3, 'did you mean "info"?'),
    ('[log]\nlevel = "trace"', "log.level", 3, '"debug", "info", "warning", "error"'),
]


@pytest.mark.parametrize(("toml", "key", "line", "expected"), CASES)
def test_bad_value_names_file_key_line_and_expectation(
    write_config: WriteConfig, toml: str, key: str, line: int, expected: str
) -> None:
    path = write_config(f"# my settings\n{toml}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    error = caught.value
    assert (error.file, error.key, error.line) == (str(path), key, line)
    assert expected in error.message
    assert str(error).startswith(f"{path}:{line}, key '{key}': ")
    assert "\n" not in str(error)


def test_the_line_is_found_among_other_keys_and_comments(write_config: WriteConfig) -> None:
    path = write_config(
        "[server]\n"
        'mode = "auto"  # fine\n'
        "\n"
        "[ollama]\n"
        "# port = 1\n"
        "auto_pull_model = true\n"
        "  port   =   99999  # wrong\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.key, caught.value.line) == ("ollama.port", 7)


def test_a_dotted_key_at_top_level_is_found(write_config: WriteConfig) -> None:
    path = write_config('ollama.keep_alive = "1"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.key, caught.value.line) == ("ollama.keep_alive", 1)


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ("[ollama]\nport =\n", 2),
        ("[ollama]\n\n\nbase_url = http://x\n", 4),
        ("[ollama\n", 1),
        ('[ollama]\nkeep_alive = "5m"\nkeep_alive = "1m"\n', 3),
    ],
)
def test_unparsable_toml_keeps_tomllibs_line_and_column(
    write_config: WriteConfig, toml: str, line: int
) -> None:
    path = write_config(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.line == line
    assert caught.value.file == str(path)
    assert f"(at line {line}, column" in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: invalid TOML: ")


def test_a_file_that_is_not_utf8_is_an_error_with_its_line(write_config: WriteConfig) -> None:
    path = write_config("")
    path.write_bytes(b'[log]\nlevel = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert "UTF-8" in str(caught.value)


def test_a_directory_where_the_file_should_be_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {})
    assert caught.value.file == str(tmp_path)
    assert "cannot read" in str(caught.value)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(missing, {})
    assert caught.value.file == str(missing)
    assert "does not exist" in str(caught.value) and "n3d config init" in str(caught.value)


def test_a_missing_file_named_by_n3d_config_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"N3D_CONFIG": str(missing), "HOME": str(tmp_path)})
    assert caught.value.file == str(missing)
    assert "N3D_CONFIG" in str(caught.value)


def test_a_missing_file_at_the_default_place_means_defaults(home_env: dict[str, str]) -> None:
    settings = load_settings(None, home_env)
    assert settings.file is None
    assert set(settings.sources.values()) == {"default"}


@given(st.integers())
def test_every_port_in_range_is_accepted_and_every_other_refused(port: int) -> None:
    from n3d.config.schema import SCHEMA

    check = SCHEMA["ollama"]["port"].check
    if 1 <= port <= 65535:
        assert check(port) == port
    else:
        with pytest.raises(ValueError, match="1..65535"):
            check(port)


@pytest.mark.parametrize("value", ["0", '"0s"', '"0m"'])
def test_a_warm_keep_alive_of_zero_is_refused(write_config: WriteConfig, value: str) -> None:
    path = write_config(f"[warm]\nkeep_alive = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.key, caught.value.line) == ("warm.keep_alive", 2)
    assert "unload each model as soon as it is warmed" in caught.value.message
    assert load_settings(write_config('[ollama]\nkeep_alive = "0s"\n'), {}).ollama.keep_alive_s == 0
