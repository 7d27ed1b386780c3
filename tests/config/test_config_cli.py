"""`n3d config init|show|path`, in process and as the installed console script."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from n3d.cli.config import add_config_commands, run_config
from n3d.config import default_toml, load_settings
from n3d.paths import config_file

from .conftest import WriteConfig


def _parse(*argv: str) -> argparse.Namespace:
    """Parse as `n3d` does: a global --config, then `config ACTION ...`."""
    parser = argparse.ArgumentParser(prog="n3d")
    parser.add_argument("--config", type=Path, default=None)
    add_config_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _run(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str
) -> tuple[int, str, str]:
    code = run_config(_parse(*argv), env=env)
    out, err = capsys.readouterr()
    return code, out, err


def test_init_writes_the_defaults_privately(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str]
) -> None:
    code, out, err = _run(capsys, home_env, "config", "init")
    path = Path(config_file(home_env))
    assert (code, out, err) == (0, f"{path}\n", "")
    assert path.read_text() == default_toml()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_init_refuses_to_overwrite(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str], write_config: WriteConfig
) -> None:
    path = write_config("# mine\n")
    code, out, err = _run(capsys, home_env, "config", "init", "--path", str(path))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and str(path) in err and "already exists" in err
    assert path.read_text() == "# mine\n"


def test_init_writes_where_told(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str], tmp_path: Path
) -> None:
    by_option = tmp_path / "a" / "n3d.toml"
    by_env = tmp_path / "b" / "n3d.toml"
    by_global = tmp_path / "c" / "n3d.toml"
    assert _run(capsys, home_env, "config", "init", "--path", str(by_option))[0] == 0
    assert _run(capsys, {**home_env, "N3D_CONFIG": str(by_env)}, "config", "init")[0] == 0
    assert _run(capsys, home_env, "--config", str(by_global), "config", "init")[0] == 0
    for path in (by_option, by_env, by_global):
        assert load_settings(path, {}).file == path


def test_show_json_gives_values_and_sources(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str], write_config: WriteConfig
) -> None:
    path = write_config('[server]\nmode = "external"\n')
    env = {**home_env, "OLLAMA_HOST": "0.0.0.0:9999"}
    code, out, err = _run(capsys, env, "--config", str(path), "config", "show", "--json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["file"] == str(path)
    assert shown["values"] == load_settings(path, env).as_dict()
    assert shown["values"]["ollama"]["base_url"] == "http://127.0.0.1:9999"
    assert shown["sources"]["ollama.base_url"] == "env:OLLAMA_HOST"
    assert shown["sources"]["server.mode"] == f"file:{path}"
    assert shown["sources"]["log.level"] == "default"


def test_show_without_a_file_says_so(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str]
) -> None:
    code, out, _ = _run(capsys, home_env, "config", "show", "--json")
    assert code == 0 and json.loads(out)["file"] is None
    code, out, _ = _run(capsys, home_env, "config", "show")
    assert code == 0 and "(not found; defaults apply)" in out.splitlines()[0]


def test_show_table_is_aligned_sourced_and_valid_toml(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str], write_config: WriteConfig
) -> None:
    path = write_config('[server.env]\nOLLAMA_DEBUG = "1"\n[warm]\nmodels = ["llama3"]\n')
    env = {**home_env, "NAMEL3SS_OLLAMA_BASE_URL": "http://gpu:1/"}
    code, out, _ = _run(capsys, env, "config", "show", "--config", str(path))
    assert code == 0
    rows = [line for line in out.splitlines() if not line.startswith("#")]
    assert len({row.index("  # ") for row in rows}) == 1  # one column for the sources
    assert 'ollama.base_url = "http://gpu:1"' in rows[0]
    assert rows[0].endswith("# env:NAMEL3SS_OLLAMA_BASE_URL")
    assert 'server.env = { OLLAMA_DEBUG = "1" } ' in out
    assert f"  # file:{path}\n" in out
    assert tomllib.loads(out) == load_settings(path, env).as_dict()


def test_show_with_a_bad_config_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str], write_config: WriteConfig
) -> None:
    path = write_config("[ollama]\nport = 0\n")
    code, out, err = _run(capsys, home_env, "--config", str(path), "config", "show")
    assert (code, out) == (1, "")
    assert err == f"n3d: {path}:2, key 'ollama.port': expected a port number in 1..65535, got 0\n"


def test_show_warns_about_a_bad_ollama_host_port_on_stderr(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str]
) -> None:
    code, out, err = _run(capsys, {**home_env, "OLLAMA_HOST": ":66000"}, "config", "show", "--json")
    assert code == 0 and json.loads(out)["values"]["ollama"]["port"] == 11434
    assert err.startswith("n3d: warning: OLLAMA_HOST=")


def test_path_prints_only_the_path(
    capsys: pytest.CaptureFixture[str], home_env: dict[str, str], tmp_path: Path
) -> None:
    default = Path(config_file(home_env))
    assert _run(capsys, home_env, "config", "path") == (0, f"{default}\n", "")
    named = {**home_env, "N3D_CONFIG": str(tmp_path / "x.toml")}
    assert _run(capsys, named, "config", "path") == (0, f"{tmp_path / 'x.toml'}\n", "")
    given = ("--config", str(tmp_path / "y.toml"), "config", "path")
    assert _run(capsys, named, *given) == (0, f"{tmp_path / 'y.toml'}\n", "")


def test_the_n3d_command_dispatches_to_config(
    capsys: pytest.CaptureFixture[str],
    home_env: dict[str, str],
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from n3d.cli import main

    path = write_config("[log]\nlevel = 'warn'\n")
    for name, value in home_env.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(path), "config", "show"]) == 1
    assert "key 'log.level'" in capsys.readouterr().err


# The installed console script, in a clean environment rooted in tmp_path.


def _n3d(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "n3d"
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [str(script), *argv], env=clean, capture_output=True, text=True, timeout=30
    )


def test_console_script_init_show_path(home_env: dict[str, str], tmp_path: Path) -> None:
    env = {**home_env, "N3D_CONFIG": str(tmp_path / "cfg" / "n3d.toml")}
    path = _n3d(env, "config", "path")
    assert (path.returncode, path.stdout, path.stderr) == (0, env["N3D_CONFIG"] + "\n", "")

    init = _n3d(env, "config", "init")
    assert (init.returncode, init.stdout) == (0, env["N3D_CONFIG"] + "\n")
    again = _n3d(env, "config", "init")
    assert again.returncode == 1 and "already exists" in again.stderr and again.stdout == ""

    show = _n3d({**env, "OLLAMA_HOST": "https://h/path"}, "config", "show", "--json")
    assert show.returncode == 0, show.stderr
    shown = json.loads(show.stdout)
    assert shown["file"] == env["N3D_CONFIG"]
    assert shown["values"]["ollama"]["base_url"] == "https://h:443/path"
    assert shown["sources"]["ollama.base_url"] == "env:OLLAMA_HOST"

    Path(env["N3D_CONFIG"]).write_text('[ollama]\nkeep_alive = "300"\n')
    bad = _n3d(env, "config", "show")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == (
        f"n3d: {env['N3D_CONFIG']}:2, key 'ollama.keep_alive': "
        'time: missing unit in duration "300"; write "300s" or the number 300'
    )
