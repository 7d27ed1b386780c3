"""`n3d service print|install|uninstall` against a throwaway HOME."""

from __future__ import annotations

import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from n3d.service.render import LABEL, MARKER

from .conftest import RunService

BIN = Path(sys.executable).parent


def unit_path(home: Path) -> Path:
    return home / ".config" / "systemd" / "user" / "n3d.service"


def agent_path(home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def test_print_linux_renders_the_unit_for_this_n3d(
    n3d_service: RunService, fake_n3d: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "print", "--platform", "linux", "--n3d", str(fake_n3d)) == 0
    out = capsys.readouterr()
    assert f"\nExecStart={fake_n3d} run\n" in out.out
    assert "\nTimeoutStopSec=30\n" in out.out
    assert out.err == ""


def test_print_defaults_to_the_n3d_beside_this_python(
    n3d_service: RunService, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (BIN / "n3d").exists():
        pytest.skip("n3d is not installed beside this Python")
    assert n3d_service("service", "print", "--platform", "linux") == 0
    assert f"\nExecStart={BIN / 'n3d'} run\n" in capsys.readouterr().out


def test_print_macos_works_on_any_platform(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "print", "--platform", "macos", "--n3d", str(fake_n3d)) == 0
    plist = plistlib.loads(capsys.readouterr().out.encode())
    assert plist["ProgramArguments"] == [str(fake_n3d), "run"]
    assert plist["StandardOutPath"] == str(home / "Library" / "Logs" / "n3" / "n3d.log")
    assert not (home / "Library").exists()  # print writes nothing


def test_print_socket_shows_the_socket_unit(
    n3d_service: RunService, fake_n3d: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("service", "print", "--platform", "linux", "--socket", "--n3d", str(fake_n3d))
    assert n3d_service(*argv) == 0
    assert "ListenStream=%t/n3/n3d.sock" in capsys.readouterr().out
    assert n3d_service("service", "print", "--platform", "macos", "--socket") == 1


def test_print_uses_the_configured_stop_timeout_and_pins_the_config(
    n3d_service: RunService, fake_n3d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "n3d.toml"
    config.write_text("[server]\nstop_timeout = 40\n")
    argv = ("--config", str(config), "service", "print", "--platform", "linux",
            "--n3d", str(fake_n3d))
    assert n3d_service(*argv) == 0
    out = capsys.readouterr().out
    assert "\nTimeoutStopSec=60\n" in out
    assert f'\nEnvironment="N3D_CONFIG={config}"\n' in out


def test_a_bad_config_is_refused_with_one_line(
    n3d_service: RunService, fake_n3d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "n3d.toml"
    config.write_text("[server]\nstop_timeout = 'soon'\n")
    argv = ("--config", str(config), "service", "print", "--n3d", str(fake_n3d))
    assert n3d_service(*argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("n3d: ") and "stop_timeout" in err


def test_install_writes_the_unit_and_prints_the_next_commands(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "install", "--platform", "linux", "--n3d", str(fake_n3d)) == 0
    written = unit_path(home)
    assert MARKER in written.read_text() and f"ExecStart={fake_n3d} run" in written.read_text()
    assert written.stat().st_mode & 0o777 == 0o644
    out = capsys.readouterr().out
    assert f"Installed {written}" in out
    assert "systemctl --user daemon-reload && systemctl --user enable --now n3d\n" in out
    assert "loginctl enable-linger $USER" in out
    assert "journalctl --user -u n3d -o cat | jq" in out


def test_install_respects_xdg_config_home(
    n3d_service: RunService, fake_n3d: Path, env: dict[str, str], tmp_path: Path
) -> None:
    environ = {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    argv = ("service", "install", "--platform", "linux", "--n3d", str(fake_n3d))
    assert n3d_service(*argv, environ=environ) == 0
    assert (tmp_path / "xdg" / "systemd" / "user" / "n3d.service").is_file()


def test_install_again_is_already_installed(
    n3d_service: RunService, fake_n3d: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("service", "install", "--platform", "linux", "--n3d", str(fake_n3d))
    assert n3d_service(*argv) == 0
    capsys.readouterr()
    assert n3d_service(*argv) == 0
    assert "Already installed" in capsys.readouterr().out


def test_install_refuses_to_overwrite_a_changed_file_without_force(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("service", "install", "--platform", "linux", "--n3d", str(fake_n3d))
    assert n3d_service(*argv) == 0
    edited = unit_path(home).read_text().replace("RestartSec=2", "RestartSec=9")
    unit_path(home).write_text(edited)
    capsys.readouterr()
    assert n3d_service(*argv) == 1
    err = capsys.readouterr().err
    assert "differs" in err and "--force" in err
    assert unit_path(home).read_text() == edited  # untouched

    assert n3d_service(*argv, "--force") == 0
    assert "RestartSec=2\n" in unit_path(home).read_text()
    assert f"Replaced {unit_path(home)}" in capsys.readouterr().out


def test_install_with_socket_writes_both_units_or_neither(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    socket = unit_path(home).with_name("n3d.socket")
    socket.parent.mkdir(parents=True)
    socket.write_text("# mine\n")
    argv = ("service", "install", "--platform", "linux", "--socket", "--n3d", str(fake_n3d))
    assert n3d_service(*argv) == 1
    assert not unit_path(home).exists()  # nothing written when one file is refused
    assert n3d_service(*argv, "--force") == 0
    assert "ListenStream=" in socket.read_text() and unit_path(home).is_file()
    assert "enable --now n3d.socket n3d" in capsys.readouterr().out


def test_install_macos_writes_the_agent_and_its_log_dir(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "install", "--platform", "macos", "--n3d", str(fake_n3d)) == 0
    plist = plistlib.loads(agent_path(home).read_bytes())
    assert plist["Label"] == LABEL
    assert (home / "Library" / "Logs" / "n3").is_dir()
    out = capsys.readouterr().out
    assert f"launchctl bootstrap gui/$(id -u) {agent_path(home)}" in out


def test_uninstall_removes_only_what_n3d_wrote(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "install", "--platform", "linux", "--n3d", str(fake_n3d)) == 0
    capsys.readouterr()
    assert n3d_service("service", "uninstall", "--platform", "linux") == 0
    assert not unit_path(home).exists()
    out = capsys.readouterr().out
    assert f"Removed {unit_path(home)}" in out
    assert "systemctl --user daemon-reload" in out
    assert n3d_service("service", "uninstall", "--platform", "linux") == 0
    assert "Nothing to remove" in capsys.readouterr().out


def test_uninstall_asks_to_disable_an_enabled_unit_first(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "install", "--platform", "linux", "--n3d", str(fake_n3d)) == 0
    wants = unit_path(home).parent / "default.target.wants" / "n3d.service"
    wants.parent.mkdir()
    wants.symlink_to(unit_path(home))  # what `systemctl --user enable n3d` makes
    assert n3d_service("service", "uninstall", "--platform", "linux") == 1
    assert "systemctl --user disable --now n3d.service" in capsys.readouterr().err
    assert unit_path(home).exists()
    wants.unlink()
    assert n3d_service("service", "uninstall", "--platform", "linux") == 0
    assert not unit_path(home).exists()


def test_uninstall_refuses_a_file_someone_else_wrote(
    n3d_service: RunService, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent_path(home).parent.mkdir(parents=True)
    agent_path(home).write_text("<plist>someone else's</plist>\n")
    assert n3d_service("service", "uninstall", "--platform", "macos") == 1
    assert "not written by n3d" in capsys.readouterr().err
    assert agent_path(home).exists()


def test_uninstall_macos_prints_bootout(
    n3d_service: RunService, fake_n3d: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "install", "--platform", "macos", "--n3d", str(fake_n3d)) == 0
    assert n3d_service("service", "uninstall", "--platform", "macos") == 0
    assert f"launchctl bootout gui/$(id -u)/{LABEL}" in capsys.readouterr().out
    assert not agent_path(home).exists()


def test_a_missing_n3d_is_refused(
    n3d_service: RunService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert n3d_service("service", "print", "--n3d", str(tmp_path / "nope")) == 1
    assert "not an executable" in capsys.readouterr().err


def test_usage_errors_exit_2(n3d_service: RunService) -> None:
    with pytest.raises(SystemExit) as exc:
        n3d_service("service", "print", "--platform", "windows")
    assert exc.value.code == 2


def test_installed_n3d_service_print_runs(tmp_path: Path, home: Path) -> None:
    n3d = BIN / "n3d"
    result = subprocess.run(
        [str(n3d), "service", "print", "--platform", "linux"],
        capture_output=True, text=True, timeout=30,
        env={"HOME": str(home), "PATH": str(BIN)}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"\nExecStart={n3d} run\n" in result.stdout
