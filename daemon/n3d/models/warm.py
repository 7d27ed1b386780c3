"""The keep-warm keeper: warm models stay loaded, whatever evicts or expires them.

Run it with ``await tg.start(keeper.run)``; ``reconfigure()`` takes reloaded settings
(config warm models, keep_alive, num_ctx, auto_pull, poll interval). It watches
`/api/ps` every ``poll_s`` seconds (see :mod:`n3d.models.warm_policy` for every
timing rule) and sooner when poked (``poke()``: a warm.add, a successful pull,
``on_server_ready``, a reconfiguration):

- a warm model that is not loaded gets a load-only request (`/api/generate` with just
  the model, the warm keep_alive and, when configured, `options.num_ctx`: any other
  runner option would make Ollama reload it for the next real request; an embedding
  model gets the same through `/api/embed`, see ``OllamaClient.load``);
- a missing model is pulled first only when ``auto_pull`` (else the warm-up fails
  with the seed's "not available locally" error and is retried with backoff);
- a finite keep-alive is refreshed shortly before ``expires_at``;
- a warm model that disappears while the server stayed up counts as
  ``ollama.model.evicted``; one that disappears with a restart does not.

Each warm-up emits ``ollama.model.warm_duration`` (s) and publishes ``warm`` events
(``action`` warming, warmed, pulling, failed); changes seen in `/api/ps` publish
``model.loaded`` / ``model.unloaded`` for every model, warm or not.

Time comes from ``clock`` (monotonic seconds: backoff, refresh spacing) and ``wall``
(aware UTC, compared with Ollama's ``expires_at``), so tests can move it by hand.

Long because the keeper's one loop (look at `/api/ps`, decide, warm) reads best in one
place; its timing rules are in ``warm_policy``, its memory in ``warm_state``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import structlog

from n3d.errors import ModelNotFound, OllamaError, UnexpectedResponse
from n3d.metrics import metric
from n3d.models.events import SafePublisher
from n3d.models.warm_policy import STABLE_S, backoff_delay, refresh_at, refresh_lead
from n3d.models.warm_state import LoadedRow, WarmRow, WarmState, loaded_row
from n3d.models.warm_store import KeepAliveValue, WarmEntry, WarmStore
from n3d.ollama.client import OllamaClient
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.types import LoadedModel, LoadResult

__all__ = ["WarmKeeper", "utc_now"]

log = structlog.get_logger(__name__)

PullModel = Callable[[str], Awaitable[object]]


def utc_now() -> datetime:
    """Now, as an aware UTC datetime: the keeper's (and so the model service's) wall clock."""
    return datetime.now(UTC)


class WarmKeeper:
    """Keeps ``configured`` models plus the store's run-time entries loaded in Ollama."""

    def __init__(
        self,
        client: OllamaClient,
        *,
        configured: Sequence[str],
        keep_alive: KeepAliveValue,
        num_ctx: int,
        auto_pull: bool,
        store: WarmStore,
        pull: PullModel,
        publish: SafePublisher,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self._clock, self._wall = clock, wall
        self.configured = tuple(configured)
        self.keep_alive = keep_alive
        self.num_ctx = num_ctx
        self.auto_pull = auto_pull
        self.poll_s = poll_s
        self.store = store
        self._pull = pull
        self._publish = publish
        self._states: dict[str, WarmState] = {}
        self._seen: dict[str, LoadedRow] = {}  # /api/ps at the last look, by key
        self._names: tuple[dict[str, LoadedRow], frozenset[str]] = ({}, frozenset())
        self._server_gone = False  # /api/ps failed (or on_server_lost): next success = restart
        self._paused = False
        self._generation: int | None = None
        self._epoch = 0  # bumped by the hooks, so an answer from before them is not trusted
        self._wake = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None

    # -- wiring ------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Watch and warm until cancelled; ready at once (warm-ups happen in the background)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            while True:
                delay = self.poll_s
                if not self._paused:
                    delay = await self._pass(tg)
                with anyio.move_on_after(max(0.05, delay)):
                    await self._wake.wait()
                self._wake = anyio.Event()

    def poke(self) -> None:
        """Look at `/api/ps` now instead of at the next poll."""
        self._wake.set()

    def reconfigure(
        self,
        *,
        configured: Sequence[str],
        keep_alive: KeepAliveValue,
        num_ctx: int,
        auto_pull: bool,
        poll_s: float,
    ) -> list[WarmEntry]:
        """Take reloaded settings; returns the entries that are no longer on the warm list.

        Run-time changes (`warm.add`, `warm.remove`) stay as they are. A warm model
        whose keep_alive or num_ctx changed gets one warm request with the new values
        at the next look (else a "forever" model would never learn its new keep_alive).
        """
        before = {e.key: e for e in self.entries()}
        old_keep_alive = {key: self._keep_alive(e) for key, e in before.items()}
        num_ctx_changed = num_ctx != self.num_ctx
        self.configured = tuple(configured)
        self.keep_alive, self.num_ctx = keep_alive, num_ctx
        self.auto_pull, self.poll_s = auto_pull, poll_s
        after = {e.key: e for e in self.entries()}
        for key, entry in after.items():
            state = self._states.get(key)
            changed = num_ctx_changed or old_keep_alive.get(key) != self._keep_alive(entry)
            if state is not None and changed:
                state.last_warm_mono = None  # as if loaded by someone else: set ours once
        self.poke()
        return [entry for key, entry in before.items() if key not in after]

    def on_server_ready(self, generation: int) -> None:
        """The server answers; a new ``generation`` means it restarted and lost its models."""
        if self._generation is not None and generation != self._generation:
            self._server_gone = True
        self._generation = generation
        self._epoch += 1
        self._paused = False
        self.poke()

    def on_server_lost(self) -> None:
        """The server stopped answering: pause warm-ups until ``on_server_ready``."""
        self._server_gone = True
        self._epoch += 1
        self._paused = True

    # -- what clients see ---------------------------------------------------------

    def entries(self) -> list[WarmEntry]:
        return self.store.entries(self.configured)

    def last_seen(self) -> list[LoadedModel]:
        """Every model loaded at the last look at `/api/ps`."""
        return [row.model for row in self._seen.values()]

    def loaded_names(self) -> frozenset[str]:
        """The names in :meth:`last_seen`, the same object until the next look (the
        proxy asks on every request and caches on identity)."""
        if self._names[0] is not self._seen:
            self._names = (self._seen, frozenset(row.model.name for row in self._seen.values()))
        return self._names[1]

    def is_warm(self, key: str) -> bool:
        return any(entry.key == key for entry in self.entries())

    def rows(self, loaded: Sequence[LoadedModel] | None = None) -> list[WarmRow]:
        """`warm.list` rows; ``loaded`` is a fresh `/api/ps`, else the last one seen."""
        current = {m.key: m for m in map(loaded_row, loaded)} if loaded is not None else None
        return [
            self._state(entry).row(self._keep_alive(entry), entry.source, current)
            for entry in self.entries()
        ]

    def _keep_alive(self, entry: WarmEntry) -> KeepAliveValue:
        return self.keep_alive if entry.keep_alive is None else entry.keep_alive

    def _state(self, entry: WarmEntry) -> WarmState:
        state = self._states.get(entry.key)
        if state is None:
            state = self._states[entry.key] = WarmState(entry.name, entry.key)
        return state

    # -- one look at /api/ps --------------------------------------------------------

    async def _pass(self, tg: anyio.abc.TaskGroup) -> float:
        """Observe `/api/ps`, start the warm-ups that are due; seconds until the next look."""
        epoch = self._epoch
        try:
            loaded = await self.client.ps()
            if epoch != self._epoch:
                return 0.0  # answered by a server that has gone since: look again
        except UnexpectedResponse:
            # It answered, with something unreadable (logged where it entered): no sign
            # of a restart, so nothing to reset; look again at the next poll.
            return self.poll_s
        except OllamaError as exc:
            if not self._server_gone:
                log.info("warm.server_unavailable", error=exc.message)
            self._server_gone = True
            return self.poll_s
        entries = self.entries()
        self._observe(loaded, {e.key for e in entries})
        now, mono = self._wall(), self._clock()
        wake = self.poll_s
        for entry in entries:
            state = self._state(entry)
            wake = min(wake, self._consider(tg, entry, state, now, mono))
        for key in set(self._states) - {e.key for e in entries}:
            del self._states[key]
        return wake

    def _observe(self, loaded: Sequence[LoadedModel], warm: set[str]) -> None:
        current = {row.key: row for row in map(loaded_row, loaded)}
        restarted, self._server_gone = self._server_gone, False
        if restarted:
            for state in self._states.values():
                state.reset_after_restart()
        now, mono = self._wall(), self._clock()
        for key, row in current.items():
            if key not in self._seen:
                self._publish("model.loaded", row.event(key in warm))
        for key, gone in self._seen.items():
            if key not in current:
                reason = "server_restart" if restarted else gone.reason_gone(now)
                self._publish("model.unloaded", {**gone.event(key in warm), "reason": reason})
                mine = self._states.get(key)
                # Not while n3d itself is (re)loading it: a reload drops it from /api/ps.
                if mine is not None and not restarted and not mine.in_flight:
                    metric("ollama.model.evicted", 1, "{eviction}", model=gone.name, reason=reason)
                    log.warning("warm.evicted", model=gone.name, reason=reason)
        self._seen = current
        for state in self._states.values():
            state.observe(current.get(state.key), mono)

    def _consider(
        self,
        tg: anyio.abc.TaskGroup,
        entry: WarmEntry,
        state: WarmState,
        now: datetime,
        mono: float,
    ) -> float:
        """Start a warm-up if due; seconds until this model next needs a look."""
        if state.in_flight:
            return self.poll_s
        wanted_s = parse_keep_alive(self._keep_alive(entry)) or 0.0
        if wanted_s <= 0:  # `[warm].keep_alive = 0` would unload what it warms
            state.last_error = "keep_alive 0 unloads the model; use -1 (forever) or a duration"
            return self.poll_s
        if state.loaded is None:
            wait = state.next_attempt - mono
            reason = "start" if state.last_warm_mono is None else "rewarm"
        else:
            if state.loaded_since is not None and mono - state.loaded_since >= STABLE_S:
                state.attempts = 0
            due = refresh_at(state.loaded.model.expires, wanted_s, self.poll_s, now)
            if state.last_warm_mono is None:
                due = 0.0  # loaded by someone else: set our keep_alive and options once
            elif due is None:
                return self.poll_s
            else:  # never two refreshes within one lead time, whatever /api/ps says
                lead = refresh_lead(wanted_s, self.poll_s)
                due = max(due, state.last_warm_mono + lead - mono)
            wait, reason = due, "refresh"
        if wait > 0:
            return wait
        state.in_flight = True
        tg.start_soon(self._warm, entry, state, reason, name=f"warm {entry.name}")
        return self.poll_s

    async def _warm(self, entry: WarmEntry, state: WarmState, reason: str) -> None:
        keep_alive, num_ctx = self._keep_alive(entry), self.num_ctx
        base = {"model": entry.name, "reason": reason, "keep_alive": keep_alive}
        self._publish("warm", {**base, "action": "warming"})
        try:
            result = await self._load(entry, keep_alive, num_ctx, base)
        except OllamaError as exc:
            retry_in = state.failed(exc, backoff_delay(state.attempts + 1), self._clock())
            failure = {"error": exc.message, "kind": exc.kind, "retry_in_s": retry_in}
            log.warning("warm.failed", **base, **failure)
            self._publish("warm", {**base, "action": "failed", **failure})
        else:
            delay, wall = backoff_delay(state.attempts + 1), self._wall().timestamp()
            state.warmed(delay, refresh=reason == "refresh", mono=self._clock(), wall=wall)
            if (keep_alive, num_ctx) != (self._keep_alive(entry), self.num_ctx):
                state.last_warm_mono = None  # reconfigured meanwhile: again with the new values
            took = result.duration_s
            metric("ollama.model.warm_duration", took, "s", model=entry.name, reason=reason)
            log.info("warm.warmed", **base, duration_s=took)
            self._publish("warm", {**base, "action": "warmed", "duration_s": round(took, 3)})
        finally:
            state.in_flight = False
            self.poke()  # see the result in /api/ps now, and publish model.loaded

    async def _load(
        self, entry: WarmEntry, keep_alive: KeepAliveValue, num_ctx: int, base: dict[str, Any]
    ) -> LoadResult:
        """The load-only request, after a pull when the model is missing and auto_pull."""
        try:
            return await self.client.load(entry.name, keep_alive=keep_alive, num_ctx=num_ctx)
        except ModelNotFound:
            if not self.auto_pull or not self.is_warm(entry.key):
                raise  # removed meanwhile (a delete): never pull back what was deleted
        self._publish("warm", {**base, "action": "pulling"})
        await self._pull(entry.name)
        return await self.client.load(entry.name, keep_alive=keep_alive, num_ctx=num_ctx)
