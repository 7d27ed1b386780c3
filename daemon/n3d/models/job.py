"""One pull job's state and the shapes its progress is reported in.

A :class:`PullJob` holds the newest progress line, a version number that grows with
every line, overall progress across layers, and the outcome. Followers (waiters, the
event stream) read it; only :mod:`n3d.models.pulls` changes it.

Progress views (``update_view``/``final_view``, also the ``pull`` event payloads)::

    {model, status, digest?, completed?, total?, percentage?}          while running
    {model, status: success|error|cancelled, duration_s?, error?, kind?, percentage?}

``percentage`` is 0-100 over every layer seen so far, never going down (LSP asks
for a steadily rising value), and 100 on success. Byte counts are bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio

from n3d.errors import OllamaError
from n3d.ollama.types import PullProgress
from n3d.singleflight import Flight

__all__ = ["PullJob", "PullResult", "work_done"]


@dataclass(frozen=True, slots=True)
class PullResult:
    """A finished download: ``duration_s`` from the job's start to Ollama's `success`."""

    model: str
    duration_s: float


class PullJob(Flight[PullResult]):
    """The state of one running (or just finished) download of ``model``.

    A :class:`~n3d.singleflight.Flight`: its ``result`` or ``error``, once
    ``finished``, is what every waiter of the job gets.
    """

    def __init__(self, model: str, key: str) -> None:
        super().__init__()
        self.model = model
        self.key = key
        self.started = time.monotonic()
        self.latest: PullProgress | None = None
        self.version = 0
        self.percentage: int | None = None
        self.waiters = 0
        self.cancelled = False  # ended because nobody waited any more
        self.error: OllamaError | None = None
        self.scope = anyio.CancelScope()
        self._tick = anyio.Event()
        self._layers: dict[str, tuple[int, int]] = {}

    def update(self, line: PullProgress) -> None:
        """Record one progress line from Ollama and wake the followers."""
        self.latest = line
        self.version += 1
        if line.digest and line.total:
            self._layers[line.digest] = (line.completed or 0, line.total)
            done = sum(c for c, _ in self._layers.values())
            total = sum(t for _, t in self._layers.values())
            pct = min(100, int(100 * done / total))
            self.percentage = max(pct, self.percentage or 0)
        if line.status == "success":
            self.percentage = 100
        self._wake()

    def finish(self) -> None:
        """Mark the job ended (result or error must be set) and wake the followers."""
        super().finish()
        self._wake()

    async def changed(self) -> None:
        """Wait for the next progress line or the end."""
        await self._tick.wait()

    def _wake(self) -> None:
        self._tick.set()
        self._tick = anyio.Event()  # anyio events cannot be cleared; the next wait gets a new one

    def update_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"model": self.model}
        line = self.latest
        view["status"] = line.status if line is not None else "starting"
        if line is not None:
            for key in ("digest", "completed", "total"):
                value = getattr(line, key)
                if value is not None:
                    view[key] = value
        if self.percentage is not None:
            view["percentage"] = self.percentage
        return view

    def final_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"model": self.model}
        if self.result is not None:
            view.update(status="success", duration_s=round(self.result.duration_s, 3))
        else:
            view["status"] = "cancelled" if self.cancelled else "error"
            if self.error is not None:
                view.update(error=self.error.message, kind=self.error.kind)
        if self.percentage is not None:
            view["percentage"] = self.percentage
        return view

    def summary(self) -> dict[str, Any]:
        view = self.update_view()
        view.update(waiters=self.waiters, elapsed_s=round(time.monotonic() - self.started, 3))
        return view


def work_done(kind: str, update: dict[str, Any]) -> dict[str, Any]:
    """An LSP ``$/progress`` value (begin/report/end) carrying a progress view."""
    value: dict[str, Any] = {"kind": kind}
    if kind == "begin":
        value.update(title=f"Pulling {update['model']}", cancellable=True)
    message = update.get("status", "")
    if update.get("error"):
        message = f"{message}: {update['error']}"
    value["message"] = message
    value.update((k, v) for k, v in update.items() if k not in value)
    return value
