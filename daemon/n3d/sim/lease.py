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
from n3d.sim.options import OptionError, merge_options
from n3d.sim.store import InstalledModel

__all__ = ["Lease", "full_name", "installed", "schedule"]


def full_name(model: InstalledModel) -> str:
    """Go's `model.Name.String()`: `registry.ollama.ai/library/tinyllama:latest`."""
    name = model.name
    return f"{name.host}/{name.namespace}/{name.model}:{name.tag}"


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

    def __init__(self, app: App, lm: Loaded, load_ns: int, options: dict[str, Any]) -> None:
        self._app = app
        self.lm = lm
        self.load_ns = load_ns
        self.options = options  # merged: defaults, the model's parameters, the request's
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
    app: App,
    model: InstalledModel,
    keep: float | None,
    options: dict[str, Any],
    wanted: tuple[str, ...] = (),
) -> Lease:
    """`scheduleRunner` (routes.go:137-175): check the capabilities `wanted` (400
    `<name> does not support tools`), merge the options (a 500 for a value of the wrong
    type), then load or find the runner (a 500 with Ollama's text when loading fails)."""
    missing = [cap for cap in wanted if cap not in model.capabilities]
    if missing:
        # images.go CheckCapabilities: "%w %w" of errCapabilities and errors.Join(...).
        raise HttpError(400, f"{full_name(model)} does not support " + "\n".join(missing))
    try:
        merged, runner_options = merge_options(
            app.config.default_num_ctx, app.store.params(model), options
        )
    except OptionError as exc:
        raise HttpError(500, str(exc)) from None
    started = time.monotonic_ns()
    try:
        lm = await app.scheduler.acquire(model, keep, runner_options)
    except RunnerError as exc:
        raise HttpError(500, str(exc)) from None
    return Lease(app, lm, max(time.monotonic_ns() - started, 1), merged)
