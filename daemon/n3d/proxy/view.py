"""The proxy's only window on a server: :class:`ServerView`, and what the proxy learns itself.

The daemon gives the proxy one view per server (its name and address, the
supervisor's ``snapshot`` and ``wait_for``, the loaded models as last seen, the
pinned models as the config names them now, liveness's ``on_output`` and
``saw_rate``), never the supervisor. :class:`ServerLink` builds one from
callables: daemon.py makes one per ``[[servers]]`` entry::

    ServerLink(name=spec.name, base_url=spec.base_url, pinned=lambda: ...,
               snapshot=lambda: sup.snapshot, wait_for=sup.wait_for,
               loaded=lambda: ..., on_output=..., saw_rate=...)

``loaded()`` and ``pinned()`` are read on every request: each returns the same
object until what it describes changes (a look at ``/api/ps``, a reload that
changes the server's ``models``), and the proxy caches what it derives from them
on that identity.

:class:`Seen` is what the proxy itself saw of a server's models: the models it
forwarded answers for (Ollama loads a model to answer it), the models a proxied
``/api/ps`` listed as loaded, the ones a proxied ``/api/tags`` listed as installed.
What was loaded is forgotten when the serve behind the address changes (another
pid: a restart unloads every model); what is installed stays (the models directory
outlives a serve). Names are compared as Ollama compares them (:func:`model_key`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from n3d.errors import InvalidModelName
from n3d.ollama.names import parse_model_name
from n3d.state import Snapshot

__all__ = ["SEEN_TTL_S", "Seen", "ServerLink", "ServerView", "keys_of", "model_key"]

# Ollama's default keep_alive: a model the proxy saw answer is taken as loaded this
# long (a warm model is in the view's own `loaded()` for as long as it stays).
SEEN_TTL_S = 300.0
_NO_PINS: frozenset[str] = frozenset()  # one object: the proxy caches on identity


class ServerView(Protocol):
    """One server as the proxy sees it (module docstring); ``pinned()``: its ``models``."""

    @property
    def name(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    def snapshot(self) -> Snapshot: ...

    def wait_for(self, predicate: Callable[[Snapshot], bool]) -> Awaitable[Snapshot]: ...

    def loaded(self) -> frozenset[str] | None: ...

    def pinned(self) -> frozenset[str]: ...

    def on_output(self, model: str) -> None: ...

    def saw_rate(self, model: str, tokens_per_second: float, concurrency: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerLink:
    """A :class:`ServerView` made of callables (what daemon.py passes per server)."""

    name: str
    base_url: str
    snapshot: Callable[[], Snapshot]
    wait_for: Callable[[Callable[[Snapshot], bool]], Awaitable[Snapshot]]
    on_output: Callable[[str], None]
    loaded: Callable[[], frozenset[str] | None] = lambda: None
    pinned: Callable[[], frozenset[str]] = lambda: _NO_PINS
    # A finished generation's decode rate (ReplyMeter.decode_rate) and the generations in
    # flight to this server beside it, itself included (RequestTable.concurrency).
    saw_rate: Callable[[str, float, int], None] = lambda model, tokens_per_second, n: None


@functools.lru_cache(maxsize=4096)
def model_key(name: str) -> str | None:
    """Ollama's identity of a name (``Llama3`` and ``llama3:latest`` are one); None if invalid."""
    try:
        return parse_model_name(name).key
    except InvalidModelName:
        return None


def keys_of(names: Iterable[str]) -> frozenset[str]:
    """The :func:`model_key` of each valid name."""
    return frozenset(key for key in map(model_key, names) if key is not None)


class Seen:
    """What the proxy saw of one server's models (module docstring); keys of :func:`model_key`."""

    __slots__ = ("_epoch", "_installed", "_loaded", "_view_keys", "_view_loaded")

    def __init__(self) -> None:
        self._epoch: tuple[int | None, int] | None = None
        self._loaded: dict[str, float] = {}  # key → monotonic time it was seen loaded
        self._installed: frozenset[str] | None = None  # the last /api/tags, if any
        self._view_loaded: frozenset[str] | None = None
        self._view_keys: frozenset[str] = frozenset()

    def _check(self, snap: Snapshot) -> None:
        """Forget everything seen of a previous serve (a restart unloads every model)."""
        epoch = (snap.pid, snap.restarts)
        if epoch != self._epoch:
            self._epoch = epoch
            self._loaded.clear()

    def loaded_keys(self, snap: Snapshot, view: frozenset[str] | None) -> frozenset[str] | set[str]:
        """Keys loaded on the server: the view's ``loaded()`` and what traffic showed lately."""
        self._check(snap)
        if view is not self._view_loaded:  # computed once per answer of the view
            self._view_loaded = view
            self._view_keys = keys_of(view or ())
        if not self._loaded:
            return self._view_keys
        now = time.monotonic()
        recent = {key for key, at in self._loaded.items() if now - at < SEEN_TTL_S}
        return recent | self._view_keys

    def answered(self, snap: Snapshot, key: str) -> None:
        """The server answered a request for ``key``: it has the model loaded now."""
        self._check(snap)
        self._loaded[key] = time.monotonic()

    def listed_loaded(self, snap: Snapshot, names: Iterable[str]) -> None:
        """A proxied ``/api/ps`` answer: exactly these are loaded."""
        self._check(snap)
        now = time.monotonic()
        self._loaded = dict.fromkeys(keys_of(names), now)

    def listed_installed(self, names: Iterable[str]) -> None:
        """A proxied ``/api/tags`` answer: these are installed (kept across restarts)."""
        self._installed = keys_of(names)

    def installed(self, key: str) -> bool | None:
        """Whether ``key`` was in the last ``/api/tags`` seen; None when none was seen."""
        return None if self._installed is None else key in self._installed
