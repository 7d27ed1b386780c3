"""The systemd user unit: what each setting means, and systemd-analyze finds nothing to say."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from n3d.service.render import render

BIN = Path(sys.executable).parent


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}} of a unit file (comments dropped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, f"{section}.{key} set {len(values)} times"
    return values[0]


def test_unit_runs_n3d_as_a_notify_service_that_restarts_on_failure(fake_n3d: Path) -> None:
    unit = parse_unit(render("n3d.service", n3d=fake_n3d, stop_timeout_s=10))
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "ExecStart") == f"{fake_n3d} run"
    # SIGHUP re-reads the config; only n3d's own pid gets it
    assert one(unit, "Service", "ExecReload") == "kill -HUP $MAINPID"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert 1 <= float(one(unit, "Service", "RestartSec")) <= 5
    # start limits belong in [Unit]; in [Service] they are ignored with a warning
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) >= 60
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 3
    assert one(unit, "Service", "RestartPreventExitStatus") == "78"
    assert one(unit, "Install", "WantedBy") == "default.target"


def test_unit_stops_n3d_first_and_waits_longer_than_its_stop_timeout(fake_n3d: Path) -> None:
    for stop_timeout, expected in ((10, 30), (60, 80)):
        unit = parse_unit(render("n3d.service", n3d=fake_n3d, stop_timeout_s=stop_timeout))
        assert one(unit, "Service", "KillMode") == "mixed"
        assert int(one(unit, "Service", "TimeoutStopSec")) == expected
    assert one(unit, "Service", "WatchdogSec") == "30"


def test_unit_hardening_keeps_the_gpu_visible(fake_n3d: Path) -> None:
    unit = parse_unit(render("n3d.service", n3d=fake_n3d, stop_timeout_s=10))
    service = unit["Service"]
    assert one(unit, "Service", "UMask") == "0077"
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert "PYTHONUNBUFFERED=1" in service["Environment"]
    hide_gpus = {"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectKernelTunables",
                 "PrivateUsers", "ProtectSystem", "ProtectHome", "PrivateTmp",
                 "MemoryDenyWriteExecute", "RuntimeDirectory"}
    assert not hide_gpus & service.keys()


def test_config_is_pinned_only_when_asked(fake_n3d: Path, tmp_path: Path) -> None:
    plain = parse_unit(render("n3d.service", n3d=fake_n3d, stop_timeout_s=10))
    assert all(not v.strip('"').startswith("N3D_CONFIG=") for v in plain["Service"]["Environment"])
    pinned = parse_unit(render("n3d.service", n3d=fake_n3d, stop_timeout_s=10,
                               config=tmp_path / "n3d.toml"))
    assert f'"N3D_CONFIG={tmp_path / "n3d.toml"}"' in pinned["Service"]["Environment"]


def test_socket_unit_is_private_and_at_n3d_default_path(fake_n3d: Path) -> None:
    unit = parse_unit(render("n3d.socket", n3d=fake_n3d, stop_timeout_s=10))
    assert one(unit, "Socket", "ListenStream") == "%t/n3/n3d.sock"
    assert one(unit, "Socket", "SocketMode") == "0600"
    assert one(unit, "Socket", "DirectoryMode") == "0700"
    assert one(unit, "Install", "WantedBy") == "sockets.target"


def test_awkward_paths_are_escaped_for_systemd(tmp_path: Path) -> None:
    weird = tmp_path / "my bin%1" / "n3d"
    text = render("n3d.service", n3d=weird, stop_timeout_s=10, config=tmp_path / 'a "b".toml')
    unit = parse_unit(text)
    assert one(unit, "Service", "ExecStart") == f'"{tmp_path}/my bin%%1/n3d" run'
    assert f'"N3D_CONFIG={tmp_path}/a \\"b\\".toml"' in unit["Service"]["Environment"]


# ---- systemd-analyze verify ------------------------------------------------------------


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (it comes with the systemd package)")
    return found


def _executable(tmp_path: Path, folder: str) -> Path:
    installed = BIN / "n3d"
    if folder == "" and installed.exists():
        return installed  # the real thing, as `n3d service install` would render it
    path = tmp_path / (folder or "bin") / "n3d"
    path.parent.mkdir(parents=True)
    shutil.copy(installed if installed.exists() else sys.executable, path)
    return path


def _verify(analyze: str, tmp_path: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    # --user needs XDG_RUNTIME_DIR; --man=no keeps a missing man-db out of the verdict.
    return subprocess.run(
        [analyze, "--user", "--man=no", "verify", *map(str, units)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )


@pytest.mark.parametrize("folder", ["", "dir with spaces%and$dollar"])
def test_systemd_analyze_verify_reports_nothing(tmp_path: Path, folder: str) -> None:
    analyze = _analyze()
    n3d = _executable(tmp_path, folder)
    units = tmp_path / "units"
    units.mkdir()
    for name in ("n3d.service", "n3d.socket"):
        (units / name).write_text(render(name, n3d=n3d, stop_timeout_s=10,
                                         config=tmp_path / "n3 config.toml"))
    result = _verify(analyze, tmp_path, units / "n3d.service", units / "n3d.socket")
    # Unknown keys are warnings with exit status 0, so stderr must be empty too.
    assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr


def test_systemd_analyze_does_complain_about_an_unknown_key(tmp_path: Path) -> None:
    # The control for the test above: an empty stderr means something here.
    analyze = _analyze()
    unit = tmp_path / "n3d.service"
    text = render("n3d.service", n3d=_executable(tmp_path, ""), stop_timeout_s=10)
    unit.write_text(text.replace("[Install]", "ProtectNothing=yes\n\n[Install]"))
    result = _verify(analyze, tmp_path, unit)
    assert "ProtectNothing" in result.stderr
