"""The warm list: `[warm].models` plus run-time changes persisted in the state dir.

Run-time changes (`warm.add`, `warm.remove`) are stored as a JSON file (default
``<state dir>/warm.json``, mode 0600, written with :func:`n3d.atomic.write_atomically`),
so they survive a restart of n3d. A change is saved first and made only once saved:
when the file cannot be written, the call raises :class:`~n3d.errors.StateNotSaved`
naming the path, and the warm list stays as it was (never a change in memory that
the next start would silently undo)::

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
import structlog

from n3d.atomic import write_atomically
from n3d.config.checks import Invalid
from n3d.config.schema import SCHEMA
from n3d.errors import PathError, StateNotSaved
from n3d.ollama.duration import KeepAliveError, parse_keep_alive
from n3d.ollama.names import parse_model_name
from n3d.paths import ensure_private_dir

__all__ = ["KeepAliveValue", "SavedWarmList", "WarmEntry", "WarmStore"]

log = structlog.get_logger(__name__)

KeepAliveValue = str | float | int
FILE_NAME = "warm.json"
_Added = tuple[str, KeepAliveValue | None]  # (display name, keep_alive) of a runtime entry
_WARM_KEEP_ALIVE = SCHEMA["warm"]["keep_alive"]  # one rule for the config and warm.add


@dataclass(frozen=True, slots=True)
class WarmEntry:
    """One model to keep warm; ``keep_alive`` None = the configured warm keep_alive."""

    name: str
    keep_alive: KeepAliveValue | None
    source: Literal["config", "runtime"]

    @property
    def key(self) -> str:
        return parse_model_name(self.name).key


@dataclass(frozen=True, slots=True)
class SavedWarmList:
    """A copy of the run-time changes (see :meth:`WarmStore.saved`)."""

    added: Mapping[str, _Added]
    removed: Mapping[str, str]


class WarmStore:
    """Run-time additions and removals of warm models; ``path`` None keeps them in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._added: dict[str, _Added] = {}  # key -> (name, keep_alive)
        self._removed: dict[str, str] = {}  # key -> name
        self._lock = anyio.Lock()  # one change at a time: each starts from the last saved
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
        """Keep ``model`` warm (with its own keep_alive when given); persisted.

        A keep_alive that `[warm] keep_alive` would refuse raises KeepAliveError.
        Raises StateNotSaved (and changes nothing) when the file cannot be written.
        """
        if keep_alive is not None:
            try:  # the rule of `[warm] keep_alive`, Ollama's own words included
                _WARM_KEEP_ALIVE.check(keep_alive)
            except Invalid as exc:
                raise KeepAliveError(str(exc)) from None
        name = parse_model_name(model)
        async with self._lock:
            removed = {k: v for k, v in self._removed.items() if k != name.key}
            await self._commit({**self._added, name.key: (name.display, keep_alive)}, removed)

    async def remove(self, model: str, *, configured: bool) -> None:
        """Stop keeping ``model`` warm; ``configured`` when `[warm].models` lists it.

        Raises StateNotSaved (and changes nothing) when the file cannot be written.
        """
        name = parse_model_name(model)
        async with self._lock:
            added = {k: v for k, v in self._added.items() if k != name.key}
            removed = dict(self._removed)
            if configured:
                removed[name.key] = name.display  # or it would come back at next start
            await self._commit(added, removed)

    def saved(self) -> SavedWarmList:
        """The run-time changes as they are now, for :meth:`restore`."""
        return SavedWarmList(dict(self._added), dict(self._removed))

    async def restore(self, model: str, saved: SavedWarmList) -> None:
        """Put ``model``'s run-time entries back as they were in ``saved`` (from
        :meth:`saved`); other models keep what changed since. Persisted, or
        StateNotSaved and nothing changed."""
        key = parse_model_name(model).key
        async with self._lock:
            added = {k: v for k, v in self._added.items() if k != key}
            removed = {k: v for k, v in self._removed.items() if k != key}
            if key in saved.added:
                added[key] = saved.added[key]
            if key in saved.removed:
                removed[key] = saved.removed[key]
            await self._commit(added, removed)

    async def _commit(self, added: dict[str, _Added], removed: dict[str, str]) -> None:
        """Persist the new lists, then (and only then) make them the current ones."""
        if self.path is not None:
            document = _document(added, removed)
            try:
                await anyio.to_thread.run_sync(_save, self.path, document)
            except PathError as exc:
                raise StateNotSaved("the warm list", str(self.path), str(exc)) from exc
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise StateNotSaved("the warm list", str(self.path), reason) from exc
        self._added, self._removed = added, removed

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
        except Exception as exc:  # any damage: set it aside, keep running
            self._added.clear()
            self._removed.clear()
            aside = self.path.with_name(self.path.name + ".bad")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.warning(
                "warm.state_unreadable", path=str(self.path), moved_to=str(aside), error=str(exc)
            )


def _document(added: dict[str, _Added], removed: dict[str, str]) -> dict[str, Any]:
    return {
        "version": 1,
        "added": [{"model": n, "keep_alive": ka} for n, ka in added.values()],
        "removed": sorted(removed.values()),
    }


def _save(path: Path, document: dict[str, Any]) -> None:
    ensure_private_dir(path.parent)
    write_atomically(path, json.dumps(document, indent=2) + "\n", mode=0o600)
