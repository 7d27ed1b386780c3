"""Every way a spawn can fail is a failed start, never the end of n3d (real exec calls)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from n3d.state import ServerState
from n3d.supervisor.spawn import SpawnFailed, open_ollama

from .helpers import SIM, free_port, make, states, supervising, until

S = ServerState


def script(path: Path, text: str, mode: int = 0o755) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def bad_command(tmp_path: Path, kind: str) -> tuple[str, ...]:
    """A command that exec refuses, one way each."""
    if kind == "ENOEXEC":  # a script without `#!` (as a wrong-arch binary fails too)
        return (str(script(tmp_path / "serve.sh", "exec ollama serve\n")),)
    if kind == "ELOOP":
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        return (str(tmp_path / "a"), "serve")
    if kind == "ENOTDIR":
        return (str(script(tmp_path / "file", "")) + "/ollama", "serve")
    if kind == "EACCES":  # even root may exec only what has an x bit
        return (str(script(tmp_path / "ollama", "#!/bin/sh\n", 0o644)), "serve")
    if kind == "interpreter":
        return (str(script(tmp_path / "ollama", "#!/no/such/sh\n")), "serve")
    assert kind == "NUL"
    return ("ollama\0", "serve")


@contextmanager
def held_for_writing(path: Path) -> Iterator[None]:
    """Keep ``path`` open for writing, as an upgrade rewriting the binary does."""
    fd = os.open(path, os.O_WRONLY)
    try:
        yield
    finally:
        os.close(fd)


def simulator_wrapper(tmp_path: Path) -> Path:
    """An executable of our own that becomes the simulator (so it can be held busy)."""
    return script(tmp_path / "ollama", f"#!/bin/sh\nexec {sys.executable} -m n3d.sim serve\n")


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("ENOEXEC", "script without a #! line"),
        ("ELOOP", "symlink loop"),
        ("ENOTDIR", "not a directory"),
        ("EACCES", "not executable"),
        ("interpreter", "its interpreter"),
        ("NUL", "NUL byte"),
    ],
)
async def test_a_command_exec_refuses_is_a_spawn_failure_retrying_cannot_help(
    tmp_path: Path, kind: str, words: str
) -> None:
    with pytest.raises(SpawnFailed) as caught:
        async with open_ollama(bad_command(tmp_path, kind), os.environ, stop_timeout_s=1):
            pass
    failure = caught.value.failure
    assert not failure.retryable and words in failure.message, failure
    assert failure.errno_name == {"interpreter": "ENOENT", "NUL": None}.get(kind, kind)


async def test_a_nul_byte_in_the_environment_is_a_spawn_failure() -> None:
    with pytest.raises(SpawnFailed, match="NUL byte") as caught:
        async with open_ollama(SIM, {**os.environ, "OLLAMA_X": "a\0b"}, stop_timeout_s=1):
            pass
    assert not caught.value.failure.retryable


async def test_an_executable_held_open_for_writing_is_a_spawn_failure_worth_retrying(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "true"
    shutil.copy("/bin/true", binary)
    with held_for_writing(binary), pytest.raises(SpawnFailed, match="open for writing") as caught:
        async with open_ollama([str(binary)], os.environ, stop_timeout_s=1):
            pass
    assert caught.value.failure.retryable and caught.value.failure.errno_name == "ETXTBSY"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ENOEXEC", "ELOOP"])
async def test_a_command_that_cannot_run_goes_fatal_at_once_with_the_reason(
    tmp_path: Path, pgids: list[int], kind: str
) -> None:
    sup = make(tmp_path, free_port(), command=bad_command(tmp_path, kind))
    async with supervising(sup, pgids):
        snap = await until(sup, S.FATAL)
        assert states(sup) == ["starting", "fatal"]
        assert kind in snap.reason and "then run: n3ctl start" in snap.reason
        assert snap.last_error is not None and kind in snap.last_error
        sup.command = SIM  # fixed: server.start tries again
        assert (await sup.start()).state is S.RUNNING


@pytest.mark.slow
async def test_an_executable_being_rewritten_backs_off_and_starts_once_it_is_free(
    tmp_path: Path, pgids: list[int]
) -> None:
    wrapper = simulator_wrapper(tmp_path)
    sup = make(tmp_path, free_port(), command=(str(wrapper),))
    async with supervising(sup, pgids):
        with held_for_writing(wrapper):
            snap = await until(sup, S.BACKOFF, S.FATAL)
            assert snap.last_error is not None and "ETXTBSY" in snap.last_error
            assert "open for writing" in snap.reason
            await until(sup, S.FATAL)  # each retry met the same busy file
            assert states(sup).count("backoff") == 3
        # The upgrade is over: a start (n3ctl start) now runs the new binary.
        assert (await sup.start()).state is S.RUNNING
