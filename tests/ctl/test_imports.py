"""The hot commands import nothing heavy: no anyio, httpx, structlog or psutil."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import clean_env
from .fake_daemon import FakeDaemon

HEAVY = ("anyio", "httpx", "structlog", "psutil")

_PROBE = """
import json, sys
from n3d.ctl import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _modules_after(argv: list[str], socket_path: Path) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        env=clean_env(N3D_SOCKET=str(socket_path)),
        timeout=30,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["modules"]


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.mark.parametrize(
    "argv",
    [["status"], ["health"], ["models"], ["models", "--loaded"], ["--json", "status"]],
    ids=" ".join,
)
def test_hot_commands_load_only_the_standard_library(argv: list[str], fake: FakeDaemon) -> None:
    code, modules = _modules_after(argv, fake.path)
    assert code == 0
    assert _heavy(modules) == []
    ours = sorted(m for m in modules if m.split(".")[0] == "n3d")
    assert set(ours) <= {
        "n3d",
        "n3d.client",
        "n3d.client.dial",
        "n3d.paths",
        "n3d.ctl",
        "n3d.ctl.checks",
        "n3d.ctl.commands",
        "n3d.ctl.context",
        "n3d.ctl.fmt",
        "n3d.ctl.parse",
        "n3d.ctl.render",
        "n3d.ctl.streams",
        "n3d.ctl.tables",
        "n3d.errors",
        "n3d.jsonrpc",
        "n3d.jsonrpc.framing",
        "n3d.jsonrpc.messages",
        "n3d.jsonrpc.session",
        "n3d.redact",
        "n3d.trust",
    }, ours
    # The plain hot forms do not even need argparse (see n3d.ctl.parse.fast_parse),
    # nor typing, pathlib or dataclasses (a few milliseconds each at every start).
    assert "argparse" not in modules
    assert "pathlib" not in modules and "typing" not in modules
    assert "dataclasses" not in modules


def test_status_against_no_daemon_loads_nothing_heavy(short_dir: Path) -> None:
    code, modules = _modules_after(["status"], short_dir / "s.sock")
    assert code == 69
    assert _heavy(modules) == []


def test_importtime_of_n3ctl_shows_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import n3d.ctl"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "n3d.ctl" in imported
    assert _heavy(imported) == []
