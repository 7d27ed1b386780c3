"""sd_notify without a dependency: one AF_UNIX datagram to ``$NOTIFY_SOCKET``.

Messages are newline-separated ``KEY=value`` lines (research/ecosystem.md §3):
``READY=1``, ``STATUS=<one line>``, ``WATCHDOG=1``, ``STOPPING=1``, and
``RELOADING=1`` + ``MONOTONIC_USEC=<CLOCK_MONOTONIC µs>`` (then ``READY=1``).
A socket address starting with ``@`` is a Linux abstract socket (``\\0`` + rest).
Without ``NOTIFY_SOCKET`` every call does nothing; send errors are ignored, as
systemd's own ``sd_notify`` does: notification must never break the daemon.

The watchdog is armed only when ``WATCHDOG_USEC`` is set and ``WATCHDOG_PID`` is
unset or ours; n3d pings at half that period from the event loop, so a wedged
loop (not just a dead process) triggers systemd's watchdog action.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import anyio
from anyio.abc import TaskStatus

__all__ = ["Notifier"]


class Notifier:
    """Sends notifications to one address (or nowhere when ``address`` is None)."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
        e = os.environ if env is None else env
        usec: int | None = None
        watchdog_pid = e.get("WATCHDOG_PID", "")
        if not watchdog_pid or watchdog_pid == str(os.getpid()):
            try:
                usec = int(e.get("WATCHDOG_USEC", ""))
            except ValueError:
                usec = None
        return cls(e.get("NOTIFY_SOCKET"), watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``; None if off."""
        if not self.enabled or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000

    def send(self, *lines: str) -> bool:
        """Send one datagram made of ``lines``; True if it was sent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        payload = "\n".join(lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, target)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([_status(status)] if status else []))

    def status(self, text: str) -> bool:
        return self.send(_status(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *([_status(status)] if status else []))

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    async def run_watchdog(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Ping ``WATCHDOG=1`` every :attr:`watchdog_interval_s` until cancelled."""
        interval = self.watchdog_interval_s
        task_status.started()
        if interval is None:
            return
        while True:
            self.watchdog()
            await anyio.sleep(interval)


def _status(text: str) -> str:
    # STATUS is a single line; a newline would start a new (bogus) assignment.
    return "STATUS=" + " ".join(text.split())
