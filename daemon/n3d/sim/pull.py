"""Pulls: Ollama's progress stream, shared blob downloads and pull failures.

Imitates `server/images.go` `PullModel` and `server/download.go`: `pulling manifest`;
then per layer (config last) `pulling <12 hex>` lines with `digest`, `total` and
`completed` every 60 ms (`completed` omitted while 0; a blob already on disk sends
one line with completed == total); `verifying sha256 digest`; `writing manifest`;
`success`. Concurrent pulls of one blob share one download, which keeps going if
the client goes away. A pull that fails half way leaves `<blob>-partial`, and the
next pull resumes from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from n3d.ollama.names import ModelName
from n3d.sim import registry
from n3d.sim.faults import Faults, pull_error_text
from n3d.sim.logs import slog
from n3d.sim.registry import Layer
from n3d.sim.store import Store

__all__ = ["MANIFEST_MISSING", "MIDWAY_ERROR", "Puller"]

MANIFEST_MISSING = "pull model manifest: file does not exist"
MIDWAY_ERROR = "max retries exceeded: EOF"
_TICK_S = 0.06  # Ollama's progress ticker


class _Download:
    """One blob being fetched; any number of pulls watch it."""

    def __init__(self, store: Store, layer: Layer, seconds: float, fail_midway: bool) -> None:
        self.layer = layer
        self.completed = 0
        self.error: str | None = None
        self.done = asyncio.Event()
        partial = store.blob_path(layer.digest).with_name(
            store.blob_path(layer.digest).name + "-partial"
        )
        self._partial = partial
        self._store = store
        try:
            self.completed = min(int(partial.read_text() or 0), layer.size)
        except (OSError, ValueError):
            self.completed = 0
        self._seconds = seconds
        self._fail_midway = fail_midway

    async def run(self) -> None:
        size = self.layer.size
        start_bytes = self.completed
        started = time.monotonic()
        slog(
            "INFO",
            "download.go:175",
            f"downloading {self.layer.digest[7:19]} in 16 "
            f"{max(size // 16 // 1_000_000, 1)} MB part(s)",
        )
        try:
            while self.completed < size:
                await asyncio.sleep(_TICK_S / 2)
                fraction = (
                    1.0 if self._seconds <= 0 else ((time.monotonic() - started) / self._seconds)
                )
                self.completed = min(size, start_bytes + int(size * fraction))
                self._partial.write_text(str(self.completed))
                if self._fail_midway and self.completed >= size // 2:
                    self.error = MIDWAY_ERROR
                    return
            self._store.write_blob(self.layer)
            self._partial.unlink(missing_ok=True)
        finally:
            self.done.set()


class Puller:
    """Runs pulls against the built-in registry and writes what they fetch to the store."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self._store = store
        self._faults = faults
        self._downloads: dict[str, _Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _download(self, layer: Layer, seconds: float, fail_midway: bool) -> _Download:
        current = self._downloads.get(layer.digest)
        if current is not None and not current.done.is_set():
            return current  # share the download already under way
        download = _Download(self._store, layer, seconds, fail_midway)
        self._downloads[layer.digest] = download
        task = asyncio.ensure_future(download.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    async def pull(self, name: ModelName) -> AsyncIterator[dict[str, Any]]:
        """Progress objects, in Ollama's order; a failure is a final `{"error": ...}`."""
        yield {"status": "pulling manifest"}
        state = self._faults.state()
        entry = registry.lookup(name)
        if state.fail_pulls and state.fail_pulls != "midway":
            await asyncio.sleep(0.05)
            yield {"error": pull_error_text(state.fail_pulls, name.model, name.tag)}
            return
        if entry is None:
            yield {"error": MANIFEST_MISSING}
            return
        layers = [*entry.layers(), entry.config_layer()]
        total = sum(layer.size for layer in layers) or 1
        for layer in layers:
            short = f"pulling {layer.digest[7:19]}"
            if self._store.has_blob(layer.digest):
                yield {
                    "status": short,
                    "digest": layer.digest,
                    "total": layer.size,
                    "completed": layer.size,
                }
                continue
            share = state.pull_seconds * layer.size / total
            download = self._download(layer, share, state.fail_pulls == "midway")
            while True:
                line: dict[str, Any] = {
                    "status": short,
                    "digest": layer.digest,
                    "total": layer.size,
                }
                if download.completed:
                    line["completed"] = download.completed  # omitempty: absent while 0
                yield line
                if download.done.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(download.done.wait(), _TICK_S)
            if download.error is not None:
                yield {"error": download.error}
                return
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        self._store.write_manifest(name, entry)
        yield {"status": "success"}
