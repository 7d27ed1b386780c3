"""What the filesystem does to a running n3d (a busy executable, a vanished runtime dir,
a config no program can use) becomes a state or an error, never the end of n3d."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Daemon, wait_until

pytestmark = pytest.mark.slow


class ManagedDaemon(Daemon):
    """`n3d run` without --simulate: ``[server].command`` is what n3d runs."""

    def start(self, *extra: str) -> ManagedDaemon:
        with self.log.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "n3d", "run", "--log-format", "json",
                 "--config", str(self.config_path), *extra],
                env=self.env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self


@pytest.fixture
def managed(short_dir: Path) -> Iterator[Callable[..., ManagedDaemon]]:
    made: list[ManagedDaemon] = []

    def make(**config: Any) -> ManagedDaemon:
        home = short_dir / f"m{len(made)}"
        home.mkdir(mode=0o700)
        d = ManagedDaemon(home, config=config)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


def alive(d: Daemon) -> bool:
    return d.proc is not None and d.proc.poll() is None


def test_restart_while_the_executable_is_rewritten_keeps_n3d_up_and_says_why(
    managed: Callable[..., ManagedDaemon], short_dir: Path
) -> None:
    # Our own executable (an upgrade rewrites it): it becomes the simulator.
    binary = short_dir / "ollama"
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} -m n3d.sim serve\n")
    binary.chmod(0o755)
    d = managed(server={"command": [str(binary)]}).start()
    d.wait_ready()
    fd = os.open(binary, os.O_WRONLY)  # the upgrade is writing it: exec says ETXTBSY
    try:
        d.call("server.restart", timeout=30)
        status = d.wait_state("fatal", within_s=30)  # it backed off, and gave up
        assert alive(d), d.describe()
        assert "ETXTBSY" in status["server"]["last_error"]
        assert "open for writing" in status["server"]["reason"]
        assert "backoff" in d.states()
    finally:
        os.close(fd)
    # The upgrade is done: `n3ctl start` starts it again.
    assert d.call("server.start", timeout=30)["state"] == "running"
    assert d.stop() == 0


def test_a_runtime_dir_removed_while_n3d_runs_is_created_again_at_the_next_start(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d = daemon_factory().start().wait_ready()  # the socket is outside the runtime dir
    shutil.rmtree(d.runtime)  # a /tmp cleaner, or logind at logout
    assert d.call("server.restart", timeout=30)["state"] == "running"
    assert alive(d), d.describe()
    pid_file = d.runtime / "ollama.pid"
    assert pid_file.read_text().split()[0] == str(d.call("status")["server"]["pid"])
    assert stat.S_IMODE(os.lstat(d.runtime).st_mode) == 0o700
    assert [e["path"] for e in d.events("runtime_dir.recreated")] == [str(d.runtime)]
    assert d.stop() == 0


def test_a_runtime_dir_that_is_no_longer_safe_is_reported_and_the_server_runs_on(
    daemon_factory: Callable[..., Daemon],
) -> None:
    d = daemon_factory().start().wait_ready()
    shutil.rmtree(d.runtime)
    d.runtime.mkdir(mode=0o700)
    d.runtime.chmod(0o755)  # someone else's idea of the dir now: never written into
    assert d.call("server.restart", timeout=30)["state"] == "running"
    assert alive(d), d.describe()
    assert not (d.runtime / "ollama.pid").exists()
    failed = wait_until(lambda: d.events("pid_file.write_failed"), what="pid_file.write_failed")
    assert "0755" in failed[0]["error"] and failed[0]["level"] == "error"
    assert d.stop() == 0


def test_a_reload_with_a_nul_byte_in_env_keeps_the_old_config(daemon: Daemon) -> None:
    text = daemon.config_path.read_text()
    daemon.config_path.write_text(
        text.replace("[server]\n", '[server]\nenv = { OLLAMA_MODELS = "/data\\u0000" }\n')
    )
    bad = daemon.call("config.reload")
    assert bad["reloaded"] is False and "server.env" in bad["error"]
    assert "NUL byte" in bad["error"] and dict(bad["values"]["server"]["env"]) == {}
    assert daemon.call("server.restart", timeout=30)["state"] == "running"
