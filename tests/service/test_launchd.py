"""The launchd agent: every key has the type launchd wants and the meaning n3d needs."""

from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

from n3d.service.render import LABEL, render, timeout_stop_s

EXPECTED_KEYS = {
    "Label", "ProgramArguments", "RunAtLoad", "KeepAlive", "ThrottleInterval", "ProcessType",
    "ExitTimeOut", "Umask", "StandardOutPath", "StandardErrorPath", "EnvironmentVariables",
}


def agent(n3d: Path, home: Path, **kw: Any) -> dict[str, Any]:
    text = render(f"{LABEL}.plist", n3d=n3d, home=home, stop_timeout_s=kw.pop("stop", 10), **kw)
    loaded = plistlib.loads(text.encode())
    assert isinstance(loaded, dict)
    return loaded


def test_agent_has_exactly_the_keys_n3d_relies_on(fake_n3d: Path, home: Path) -> None:
    assert set(agent(fake_n3d, home)) == EXPECTED_KEYS


def test_agent_is_labelled_like_its_file_and_runs_n3d_by_absolute_path(
    fake_n3d: Path, home: Path
) -> None:
    plist = agent(fake_n3d, home)
    assert plist["Label"] == LABEL  # the file is ~/Library/LaunchAgents/<Label>.plist
    args = plist["ProgramArguments"]
    assert isinstance(args, list) and all(isinstance(a, str) for a in args)
    assert args == [str(fake_n3d), "run"]
    assert Path(args[0]).is_absolute()  # launchd does no PATH or ~ expansion


def test_agent_starts_at_login_and_restarts_on_crash_and_failure(
    fake_n3d: Path, home: Path
) -> None:
    plist = agent(fake_n3d, home)
    assert plist["RunAtLoad"] is True
    # SuccessfulExit false = restart after a non-zero exit; Crashed true = after a signal
    assert plist["KeepAlive"] == {"SuccessfulExit": False, "Crashed": True}
    assert type(plist["ThrottleInterval"]) is int and 5 <= plist["ThrottleInterval"] <= 60
    assert plist["ProcessType"] in {"Interactive", "Adaptive"}


def test_agent_waits_longer_than_n3d_own_stop(fake_n3d: Path, home: Path) -> None:
    for stop in (10, 45):
        plist = agent(fake_n3d, home, stop=stop)
        assert type(plist["ExitTimeOut"]) is int
        assert plist["ExitTimeOut"] == timeout_stop_s(stop) > stop


def test_agent_logs_under_library_logs_n3_with_absolute_paths(fake_n3d: Path, home: Path) -> None:
    plist = agent(fake_n3d, home)
    for key in ("StandardOutPath", "StandardErrorPath"):
        path = Path(plist[key])
        assert path.is_absolute() and path.parent == home / "Library" / "Logs" / "n3"
    assert plist["StandardOutPath"] != plist["StandardErrorPath"]


def test_agent_environment_finds_homebrew_ollama(fake_n3d: Path, home: Path) -> None:
    plist = agent(fake_n3d, home)
    environment = plist["EnvironmentVariables"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items())
    assert set(environment) == {"PATH", "PYTHONUNBUFFERED"}
    path = environment["PATH"].split(":")
    assert {"/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"} <= set(path)
    assert path.index("/opt/homebrew/bin") < path.index("/usr/bin")  # Homebrew's ollama wins
    assert environment["PYTHONUNBUFFERED"] == "1"
    assert type(plist["Umask"]) is int and plist["Umask"] == 0o077


def test_agent_pins_the_config_and_escapes_xml(home: Path, tmp_path: Path) -> None:
    n3d = tmp_path / "a&b <c>" / "n3d"
    plist = agent(n3d, home, config=tmp_path / "x&y.toml")
    assert plist["ProgramArguments"][0] == str(n3d)
    assert plist["EnvironmentVariables"]["N3D_CONFIG"] == str(tmp_path / "x&y.toml")
