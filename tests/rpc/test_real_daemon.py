"""The control socket of a real `n3d run --simulate` (issue 13): attacked, and shut down.

- The attack that took n3d from 37 MB to 1.5 GB: one 1 MiB batch of 20 000
  ``rpc.discover`` calls, whose reply would be ~133 MB. Memory is judged by n3d's
  RSS, sampled every 10 ms, against a generous bound.
- Shutdown drains: a call in flight at SIGTERM is answered; one that never ends
  does not hold the stop.

Nothing here bounds wall-clock time beyond generous waits for an outcome.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from n3d.client import Connection, ConnectionLost
from n3d.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
LIMIT = 1_048_576  # the default max_message_bytes


@pytest.fixture
def start_daemon(short_dir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """``start_daemon(**OLLAMA_SIM_env)`` → a running daemon, cleaned up after the test."""
    home = short_dir
    made: list[DaemonProcess] = []

    def start(**env: str) -> DaemonProcess:
        made.append(DaemonProcess(home, **env))
        return made[-1].start().wait_ready()

    try:
        yield start
    finally:
        for d in made:
            d.cleanup()


@pytest.fixture
def daemon(start_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return start_daemon()


class _Peak(threading.Thread):
    """The highest RSS of ``pid`` while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)


class _StatusLoop(threading.Thread):
    """Another client calling `status` throughout, on its own connection."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.conn = Connection(path, timeout=60)
        self.answered = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                assert self.conn.call("status")["server"]["state"] == "running"
                self.answered += 1
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.conn.close()


def _discover_batch() -> bytes:
    members: list[bytes] = []
    size = 3
    while True:
        member = b'{"jsonrpc":"2.0","method":"rpc.discover","id":%d}' % len(members)
        if size + len(member) + 1 > LIMIT - 16:
            return b"[" + b",".join(members) + b"]\n"
        members.append(member)
        size += len(member) + 1


def test_a_huge_batch_ends_that_connection_with_an_error_and_memory_stays_bounded(
    daemon: DaemonProcess,
) -> None:
    payload = _discover_batch()
    assert payload.count(b"rpc.discover") > 19_000
    peak = _Peak(daemon.pid)
    other = _StatusLoop(daemon.socket)
    before = peak.peak
    peak.start()
    other.start()
    wait_until(lambda: other.answered > 0 or other.error, 30, "a first status")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as attacker:
            attacker.settimeout(60)
            attacker.connect(str(daemon.socket))
            attacker.sendall(payload)
            received = bytearray()
            while chunk := attacker.recv(1 << 20):
                received += chunk
                if b"\n" in chunk:
                    break
            first, _, rest = bytes(received).partition(b"\n")
            assert first.startswith(b'{"jsonrpc":"2.0","error":{"code":-32000'), first[:200]
            assert first.endswith(b'"id":null}')
            while chunk := attacker.recv(1 << 16):  # then n3d closes the connection
                rest += chunk
            assert rest == b"", f"after the error: {rest[:200]!r}"
        answered_during = other.answered
        wait_until(
            lambda: other.answered > answered_during + 5 or other.error,
            30,
            "status answered after the attack",
        )
    finally:
        other.done.set()
        other.join(30)
        peak.done.set()
        peak.join(5)
    assert other.error is None, other.error
    grown = (peak.peak - before) / MIB
    assert grown < 100, f"RSS grew by {grown:.0f} MiB during the attack"
    assert daemon.events("rpc.reply_too_large")
    assert daemon.call("status")["server"]["state"] == "running"


def _pull_in_thread(
    daemon: DaemonProcess, outcome: dict[str, object], progressed: threading.Event
) -> threading.Thread:
    def pull() -> None:
        try:
            outcome["result"] = daemon.call(
                "models.pull",
                {"model": "qwen2.5:0.5b"},
                timeout=60,
                progress=lambda _value: progressed.set(),
            )
        except Exception as exc:  # asserted by the test
            outcome["error"] = exc

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    return thread


def test_a_call_in_flight_at_sigterm_gets_its_answer_before_n3d_exits(
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon(OLLAMA_SIM_PULL_SECONDS="0.5")  # a pull that takes a moment
    outcome: dict[str, object] = {}
    progressed = threading.Event()
    thread = _pull_in_thread(daemon, outcome, progressed)
    assert progressed.wait(30), "the pull never reported progress"
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    assert outcome.get("result", outcome.get("error")) is not None
    result = outcome.get("result")
    assert isinstance(result, dict) and result["status"] == "success", outcome
    assert daemon.proc.wait(60) == 0
    drained = daemon.events("rpc.draining")
    assert drained and drained[0]["connections"] >= 1


def test_a_call_that_never_finishes_does_not_hold_the_stop(
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon(OLLAMA_SIM_PULL_SECONDS="3600")
    outcome: dict[str, object] = {}
    progressed = threading.Event()
    thread = _pull_in_thread(daemon, outcome, progressed)
    assert progressed.wait(30), "the pull never reported progress"
    assert daemon.stop(within_s=60) == 0  # drained for 2 s, then cancelled, then stopped
    thread.join(60)
    assert isinstance(outcome.get("error"), ConnectionLost), outcome
