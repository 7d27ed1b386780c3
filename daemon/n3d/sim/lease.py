"""What an inference request holds while it runs: a scheduled runner and a queue slot.

Ollama's handlers schedule a runner (`scheduleRunner`: the model's reference count
goes up) and then wait for one of its `OLLAMA_NUM_PARALLEL` slots (`llmServer.sem`)
before calling it; both are given back when the request ends, in whatever way it
ends (answered, failed, or cancelled because its client went away). Shared by the
generate/chat and embed routes.
"""

from __future__ import annotations

import time
from typing import Any

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name
from n3d.sim.app import App, HttpError
from n3d.sim.llm import RunnerError, exited_text
from n3d.sim.loaded import Loaded
from n3d.sim.store import InstalledModel

__all__ = ["Lease", "installed", "schedule"]


def installed(app: App, text: str, missing: HttpError) -> InstalledModel:
    """The installed model `text` names, else `missing`."""
    try:
        name = parse_model_name(text)
    except InvalidModelName:
        raise missing from None
    model = app.store.find(name)
    if model is None:
        raise missing
    return model


class Lease:
    """A scheduled runner and, once taken, a slot in its queue; :meth:`end` gives both back."""

    def __init__(self, app: App, lm: Loaded, load_ns: int) -> None:
        self._app = app
        self.lm = lm
        self.load_ns = load_ns
        self._slot = False
        self._ended = False

    async def take_slot(self) -> None:
        """Wait in arrival order for a free slot, then check the runner is still there."""
        await self.lm.slots.acquire()
        self._slot = True
        process = self.lm.process
        if process is not None and process.returncode is not None:
            raise HttpError(500, exited_text(process.returncode))

    def end(self) -> None:
        """Give the slot and the runner back (once; later calls do nothing).

        Called just before the last bytes of a reply go out, so that `/api/ps` read
        right after the reply already shows the model idle with its new expiry.
        """
        if self._slot:
            self._slot = False
            self.lm.slots.release()
        if not self._ended:
            self._ended = True
            self._app.scheduler.release(self.lm)


async def schedule(
    app: App, model: InstalledModel, keep: float | None, options: dict[str, Any]
) -> Lease:
    """Load or find the runner for `model` (a 500 with Ollama's text when loading fails)."""
    started = time.monotonic_ns()
    try:
        lm = await app.scheduler.acquire(model, keep, options)
    except RunnerError as exc:
        raise HttpError(500, str(exc)) from None
    return Lease(app, lm, max(time.monotonic_ns() - started, 1))
