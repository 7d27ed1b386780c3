"""The warm list: `[warm].models` plus run-time changes persisted in the state dir.

Run-time changes (`warm.add`, `warm.remove`) are stored as a JSON file (default
``<state dir>/warm.json``, mode 0600, written atomically: a temporary file in the
same directory, fsync, rename), so they survive a restart of n3d::

    {"version": 1,
     "added":   [{"model": "qwen2.5:0.5b", "keep_alive": "30m"}],
     "removed": ["llama3:latest"]}

The effective list is the configured models minus ``removed``, then ``added``
(a runtime entry for a configured model replaces it, e.g. to change its
keep_alive). ``keep_alive`` None means "use `[warm].keep_alive`". Names are
stored in Ollama's display form and compared as Ollama compares them.

An unreadable file is moved aside to ``warm.json.bad`` and logged; n3d then starts
from the configuration alone rather than refusing to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import structlog

from n3d.ollama.duration import KeepAliveError, parse_keep_alive
from n3d.ollama.names import parse_model_name
from n3d.paths import ensure_private_dir

__all__ = ["KeepAliveValue", "WarmEntry", "WarmStore"]

log = structlog.get_logger(__name__)

KeepAliveValue = str | float | int
FILE_NAME = "warm.json"


@dataclass(frozen=True, slots=True)
class WarmEntry:
    """One model to keep warm; ``keep_alive`` None = the configured warm keep_alive."""

    name: str
    keep_alive: KeepAliveValue | None
    source: Literal["config", "runtime"]

    @property
    def key(self) -> str:
        return parse_model_name(self.name).key


class WarmStore:
    """Run-time additions and removals of warm models; ``path`` None keeps them in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._added: dict[str, tuple[str, KeepAliveValue | None]] = {}  # key -> (name, ka)
        self._removed: dict[str, str] = {}  # key -> name
        self._load()

    def entries(self, configured: Iterable[str]) -> list[WarmEntry]:
        """The effective warm list, configured models first, no name twice."""
        found: dict[str, WarmEntry] = {}
        for raw in configured:
            name = parse_model_name(raw)
            if name.key not in self._removed and name.key not in found:
                found[name.key] = WarmEntry(name.display, None, "config")
        for key, (display, keep_alive) in self._added.items():
            found[key] = WarmEntry(display, keep_alive, "runtime")
        return list(found.values())

    async def add(self, model: str, keep_alive: KeepAliveValue | None) -> None:
        """Keep ``model`` warm (with its own keep_alive when given); persisted."""
        if parse_keep_alive(keep_alive) == 0:  # else KeepAliveError with Ollama's words
            raise KeepAliveError(
                "keep_alive 0 unloads a model at once; keep it warm with -1 (forever) "
                'or a duration such as "30m"'
            )
        name = parse_model_name(model)
        self._removed.pop(name.key, None)
        self._added[name.key] = (name.display, keep_alive)
        await self._save()

    async def remove(self, model: str, *, configured: bool) -> None:
        """Stop keeping ``model`` warm; ``configured`` when `[warm].models` lists it."""
        name = parse_model_name(model)
        self._added.pop(name.key, None)
        if configured:
            self._removed[name.key] = name.display  # or it would come back at next start
        await self._save()

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            added = [(e["model"], e.get("keep_alive")) for e in data.get("added", [])]
            removed = [str(n) for n in data.get("removed", [])]
            for model, keep_alive in added:
                parse_keep_alive(keep_alive)
                name = parse_model_name(model)
                self._added[name.key] = (name.display, keep_alive)
            for model in removed:
                name = parse_model_name(model)
                self._removed[name.key] = name.display
        except Exception as exc:  # noqa: BLE001 - any damage: set it aside, keep running
            self._added.clear()
            self._removed.clear()
            aside = self.path.with_name(self.path.name + ".bad")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.warning(
                "warm.state_unreadable", path=str(self.path), moved_to=str(aside), error=str(exc)
            )

    def _document(self) -> dict[str, Any]:
        return {
            "version": 1,
            "added": [{"model": n, "keep_alive": ka} for n, ka in self._added.values()],
            "removed": sorted(self._removed.values()),
        }

    async def _save(self) -> None:
        if self.path is not None:
            await anyio.to_thread.run_sync(_write_atomically, self.path, self._document())


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
