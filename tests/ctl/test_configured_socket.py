"""A socket moved by the config file's `[socket].path` is found by n3ctl and the clients.

n3d listens where its config says; a client that finds no socket at the default
path reads the same config file (`N3D_CONFIG`, else the platform's) before giving
up. An explicit `N3D_SOCKET` or `--socket` is never second-guessed.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from n3d import paths
from n3d.client import Connection, DaemonNotRunning
from n3d.client.aio import connect

from .conftest import clean_env, default_handlers, run_ctl
from .fake_daemon import FakeDaemon


@pytest.fixture
def moved(short_dir: Path) -> tuple[FakeDaemon, dict[str, str]]:
    """A daemon on a configured path, and an environment whose default socket is missing."""
    (short_dir / "run").mkdir()
    config = short_dir / "n3d.toml"
    config.write_text(f'[socket]\npath = "{short_dir}/custom.sock"\n')
    env = clean_env(XDG_RUNTIME_DIR=str(short_dir / "run"), N3D_CONFIG=str(config))
    return FakeDaemon(short_dir / "custom.sock", default_handlers()), env


def test_n3ctl_finds_the_socket_the_config_moved(
    moved: tuple[FakeDaemon, dict[str, str]],
) -> None:
    daemon, env = moved
    try:
        result = run_ctl("--json", "status", env=env)
        assert result.code == 0, result.err
        assert [method for method, _ in daemon.calls] == ["status"]
        explicit = run_ctl("status", env={**env, "N3D_SOCKET": str(daemon.path) + ".no"})
        assert explicit.code == 69 and ".sock.no" in explicit.err  # never second-guessed
    finally:
        daemon.close()


def test_the_python_clients_find_it_too(
    moved: tuple[FakeDaemon, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, env = moved
    for name in ("N3D_SOCKET", "XDG_RUNTIME_DIR", "N3D_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name in ("XDG_RUNTIME_DIR", "N3D_CONFIG"):
        monkeypatch.setenv(name, env[name])

    async def ask() -> str:
        async with connect() as conn:
            return str(conn.path)

    try:
        with Connection() as conn:
            assert conn.path == str(daemon.path)
            conn.call("status")
        assert anyio.run(ask) == str(daemon.path)
        with pytest.raises(DaemonNotRunning):
            Connection(str(daemon.path.parent / "run" / "n3" / "n3d.sock"))  # given: no fallback
    finally:
        daemon.close()


def test_configured_socket_reads_only_what_it_can(tmp_path: Path) -> None:
    config = tmp_path / "n3d.toml"
    env = {"N3D_CONFIG": str(config), "HOME": str(tmp_path)}
    assert paths.configured_socket(env) == ""  # no file
    config.write_text("[socket\npath = ")
    assert paths.configured_socket(env) == ""  # broken: n3d reports that, not clients
    config.write_text('[socket]\npath = "~/n3.sock"\n')
    assert paths.configured_socket(env) == str(Path("~/n3.sock").expanduser())
    config.write_text("[socket]\npath = 7\n")
    assert paths.configured_socket(env) == ""
