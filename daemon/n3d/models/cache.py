"""The model-availability cache: one `/api/tags` answer shared by every asker.

The seed's ``ModelAvailabilityCache`` kept a boolean per ``"{base_url}:{model}"``
and asked Ollama once per name. Here one listing per base URL answers every name
(matched as Ollama matches them: case-insensitive, `:latest` implied), so the keys
are effectively base URL + normalised name without one request per name.

- An answer is reused for ``ttl_s`` seconds (`[ollama].model_cache_ttl`).
- ``invalidate()`` drops the listing: call it after a successful pull or delete and
  when the server restarts. A fetch that was already under way then answers only
  the callers already waiting for it and is not cached: whoever asks after the
  change gets a new fetch, so nobody sees the listing from before it for a whole
  TTL (a model just pulled reported missing).
- Single flight (:mod:`n3d.singleflight`): a caller that arrives while a fetch is
  under way takes that fetch's outcome (success *or* failure) instead of starting
  another, so 50 concurrent askers cause one `/api/tags`, and a dead server costs
  one timeout, not fifty in a row. Each of them raises its own copy of a failure.
  A caller cancelled while fetching leaves a waiter to fetch instead.

Metrics: ``ollama.model.check_duration`` (s, per availability check) and
``ollama.models.count`` (models, per listing handed out).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from n3d.errors import InvalidModelName
from n3d.metrics import metric
from n3d.ollama.client import OllamaClient
from n3d.ollama.names import parse_model_name
from n3d.ollama.types import InstalledModel
from n3d.singleflight import SingleFlight

__all__ = ["Listing", "ModelCache"]


@dataclass(frozen=True, slots=True)
class Listing:
    """Installed models as of ``fetched_at`` (monotonic s); ``cached`` if not fetched now."""

    models: tuple[InstalledModel, ...]
    fetched_at: float
    cached: bool
    age_s: float
    keys: frozenset[str] = frozenset()

    def has(self, model: str) -> bool:
        """True when ``model`` (any spelling Ollama accepts) is installed."""
        return parse_model_name(model).key in self.keys


@dataclass(frozen=True, slots=True)
class _Entry:
    models: tuple[InstalledModel, ...]
    keys: frozenset[str]
    fetched_at: float


def _keys(models: tuple[InstalledModel, ...]) -> frozenset[str]:
    keys = set()
    for entry in models:
        try:
            keys.add(parse_model_name(entry.name).key)
        except InvalidModelName:  # a name Ollama lists but n3d cannot parse: not askable
            continue
    return frozenset(keys)


class ModelCache:
    """Installed models of the server behind ``client``, cached for ``ttl_s`` seconds."""

    def __init__(
        self,
        client: OllamaClient,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._fetches: SingleFlight[str, _Entry] = SingleFlight()  # by base URL
        self._generation = 0  # bumped by invalidate(): fetches from before it are not kept
        self._newest: _Entry | None = None  # survives invalidate(): "as last seen"

    @property
    def _base(self) -> str:
        return self.client.base_url

    def invalidate(self) -> None:
        """Forget the listing, including the outcome of a fetch under way right now."""
        self._generation += 1
        self._entries.pop(self._base, None)
        self._fetches.forget(self._base)

    def newest(self) -> Listing | None:
        """The newest listing fetched, however old or invalidated (None before the first)."""
        entry = self._newest
        return None if entry is None else self._view(entry, cached=True)

    def peek(self) -> Listing | None:
        """The cached listing without any request (None when there is none or it expired)."""
        entry = self._entries.get(self._base)
        if entry is None:
            return None
        age = self._clock() - entry.fetched_at
        if age > self.ttl_s:
            return None
        return Listing(entry.models, entry.fetched_at, True, age, entry.keys)

    async def listing(self, *, refresh: bool = False) -> Listing:
        """Installed models, from the cache when fresh unless ``refresh``.

        Raises the client's OllamaError when the fetch fails.
        """
        entry = self._entries.get(self._base)
        if entry is not None and not refresh and self._clock() - entry.fetched_at <= self.ttl_s:
            return self._view(entry, cached=True)
        return self._view(await self._fetches.run(self._base, self._fetch), cached=False)

    async def _fetch(self) -> _Entry:
        """Ask Ollama; keep the answer only if no invalidate() ran meanwhile."""
        generation = self._generation
        started = self._clock()
        models = tuple(await self.client.tags())
        entry = _Entry(models, _keys(models), started)
        if generation == self._generation:
            self._entries[self._base] = entry
            self._newest = entry
        return entry

    def _view(self, entry: _Entry, *, cached: bool) -> Listing:
        age = max(0.0, self._clock() - entry.fetched_at)
        return Listing(entry.models, entry.fetched_at, cached, age, entry.keys)

    async def installed(self, *, refresh: bool = False) -> Listing:
        """A listing for `models.list`; emits ``ollama.models.count``."""
        found = await self.listing(refresh=refresh)
        metric("ollama.models.count", len(found.models), "{model}", cached=found.cached)
        return found

    async def is_available(self, model: str) -> tuple[bool, bool]:
        """``(available, cached)`` for ``model``; emits ``ollama.model.check_duration``."""
        started = time.perf_counter()
        found = await self.listing()
        available = found.has(model)
        metric(
            "ollama.model.check_duration",
            time.perf_counter() - started,
            "s",
            model=parse_model_name(model).display,
            available=available,
            cached=found.cached,
        )
        return available, found.cached
