"""``Models``: the operations behind the `models.*` and `warm.*` RPC methods.

Every method returns a typed value (:mod:`n3d.models.results`, ``PullResult``,
``Listing``, ``WarmRow``), which :mod:`n3d.api` turns into the JSON of DESIGN.md's
method table, and raises :mod:`n3d.errors`' exceptions, which :mod:`n3d.api.faults`
maps to error codes. It only speaks HTTP to the server at ``client.base_url``, so
it works the same for a server n3d started, adopted or merely watches (external
mode).

Long because it is the one front the API calls for eleven methods, and the rules
that join the cache, pulls and keep-warm (a deleted warm model leaves the warm
list first, a failed delete puts it back, a model dropped from the list is handed
back to Ollama's keep_alive) live here.

Wiring (see docs/models.md): construct it with the daemon's ``OllamaClient`` and
``Settings``, start ``await tg.start(models.run)`` (pull jobs and the keep-warm
keeper), call ``on_server_ready(generation)`` / ``on_server_lost()`` from the
supervisor's state changes, and ``apply_settings(new)`` after a config reload.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import anyio
import anyio.abc
import structlog

from n3d.config import Settings
from n3d.errors import ModelNotFound, OllamaError, StateNotSaved
from n3d.metrics import metric
from n3d.models.cache import Listing, ModelCache
from n3d.models.events import Publish, SafePublisher
from n3d.models.job import PullResult
from n3d.models.pulls import UPDATE_INTERVAL_S, ProgressSink, Pulls
from n3d.models.results import DeleteResult, EnsureResult, LoadedEntry, ModelCounts, Validation
from n3d.models.warm import WarmKeeper, utc_now
from n3d.models.warm_policy import poll_interval
from n3d.models.warm_state import WarmRow, loaded_row
from n3d.models.warm_store import FILE_NAME, KeepAliveValue, SavedWarmList, WarmStore
from n3d.ollama import names
from n3d.ollama.client import OllamaClient
from n3d.ollama.duration import parse_keep_alive
from n3d.ollama.types import LoadedModel
from n3d.paths import state_dir

__all__ = ["Models"]

log = structlog.get_logger(__name__)


class Models:
    """Cache, pulls and keep-warm for the server behind ``client``.

    ``publish(topic, payload)`` receives `pull`, `warm`, `model.loaded` and
    `model.unloaded` events (e.g. the RPC server's ``broadcast``). ``state_path``
    is the warm list's JSON file (default ``<state dir>/warm.json``); ``poll_s``
    overrides the `/api/ps` interval and ``progress_interval_s`` the minimum gap
    between two progress updates per waiter (tests shorten both); ``clock``
    (monotonic s) and ``wall`` (aware UTC) are the cache's and keeper's time.
    """

    def __init__(
        self,
        client: OllamaClient,
        settings: Settings,
        *,
        publish: Publish | None = None,
        state_path: Path | None = None,
        poll_s: float | None = None,
        progress_interval_s: float = UPDATE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self.settings = settings
        self._poll_s = poll_s
        self._tg: anyio.abc.TaskGroup | None = None
        o, w = settings.ollama, settings.warm
        events = SafePublisher(publish)
        self.cache = ModelCache(client, o.model_cache_ttl_s, clock=clock)
        self.pulls = Pulls(
            client,
            timeout_s=o.pull_timeout_s,
            publish=events,
            on_success=self._pulled,
            interval_s=progress_interval_s,
        )
        self.keeper = WarmKeeper(
            client,
            configured=w.models,
            keep_alive=w.keep_alive,
            num_ctx=o.num_ctx,
            auto_pull=o.auto_pull_model,
            store=WarmStore(state_path or Path(state_dir()) / FILE_NAME),
            pull=self.pulls.pull,
            publish=events,
            poll_s=self._poll_interval(settings),
            clock=clock,
            wall=wall,
        )

    def _poll_interval(self, settings: Settings) -> float:
        if self._poll_s is not None:
            return self._poll_s
        return poll_interval(settings.ollama.health_check_interval_s)

    @property
    def base_url(self) -> str:
        return self.client.base_url

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run pull jobs and the keeper until cancelled; ready once both are."""
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.pulls.run)
                await tg.start(self.keeper.run)
                self._tg = tg
                task_status.started()
        finally:
            self._tg = None

    def apply_settings(self, new: Settings) -> None:
        """Take the settings of a config reload (SIGHUP, `config.reload`).

        ``new`` is a reload plan's ``effective`` (:mod:`n3d.config.reload`): its
        `ollama.base_url` is the running one, since this object keeps talking to the
        server it was built for until n3d restarts. Applied at once:
        `model_cache_ttl`, `pull_timeout` (running pulls too, from their next line),
        `default_model`, `auto_pull_model`, `keep_alive` and `num_ctx` for
        hand-backs, and for keep-warm `[warm].models` and `keep_alive`, `num_ctx` and
        the poll interval (`health_check_interval`); the client's `health_timeout`
        and `num_ctx` from its next request. Run-time `warm.add`/`warm.remove`
        changes stay. A model that leaves `[warm].models` is handed back like
        `warm.remove` does, so it unloads once idle.
        """
        self.settings = new
        o, w = self.settings.ollama, self.settings.warm
        self.client.configure(timeout_s=new.server.health_timeout_s, num_ctx=o.num_ctx)
        self.cache.ttl_s = o.model_cache_ttl_s
        self.pulls.timeout_s = o.pull_timeout_s
        dropped = self.keeper.reconfigure(
            configured=w.models,
            keep_alive=w.keep_alive,
            num_ctx=o.num_ctx,
            auto_pull=o.auto_pull_model,
            poll_s=self._poll_interval(self.settings),
        )
        for entry in dropped:
            log.info("warm.unconfigured", model=entry.name)
            if self._tg is not None:
                self._tg.start_soon(self._hand_back, entry.name, name=f"hand back {entry.name}")

    # -- supervisor hooks -------------------------------------------------------------

    def on_server_ready(self, generation: int) -> None:
        """The server answers health checks; bump ``generation`` on every (re)start."""
        self.cache.invalidate()
        self.keeper.on_server_ready(generation)
        self._relist()

    def on_server_lost(self) -> None:
        """The server exited or is unreachable: fail running pulls, pause warm-ups."""
        self.cache.invalidate()
        self.pulls.fail_all(OllamaError.unreachable(self.base_url))
        self.keeper.on_server_lost()

    def _pulled(self, model: str) -> None:
        self.installed_changed()

    def installed_changed(self) -> None:
        """The models directory changed (a pull or delete here, or through another
        server sharing it): list it again; a warm model that was missing may load."""
        self.cache.invalidate()
        self.keeper.poke()
        self._relist()

    def _relist(self) -> None:
        """List the installed models in the background, so `status` can count them.

        One `/api/tags` per server start, pull and delete; a failure only leaves
        the count as it was last seen.
        """
        if self._tg is not None:
            self._tg.start_soon(self._list_quietly, name="list installed models")

    async def _list_quietly(self) -> None:
        try:
            await self.cache.listing()
        except OllamaError as exc:
            log.debug("models.list_failed", error=exc.message)

    # -- models.* ---------------------------------------------------------------------

    async def list(self, refresh: bool = False) -> Listing:
        """`models.list`: the installed models, from the cache unless ``refresh`` or
        older than `model_cache_ttl`."""
        return await self.cache.installed(refresh=refresh)

    async def loaded(self) -> Sequence[LoadedEntry]:
        """`models.loaded`: the models in memory now, marking the warm ones."""
        return [
            LoadedEntry(m, self.keeper.is_warm(loaded_row(m).key)) for m in await self.client.ps()
        ]

    async def pull(self, model: str, progress: ProgressSink | None = None) -> PullResult:
        """`models.pull`: one download however many callers; see :class:`Pulls`."""
        return await self.pulls.pull(model, progress)

    async def delete(self, model: str) -> DeleteResult:
        """`models.delete`.

        A warm model leaves the warm list first (``warm_removed``): otherwise
        the keeper, finding it missing, would pull it straight back. When that
        change cannot be saved (StateNotSaved), nothing is deleted.
        """
        name = names.parse_model_name(model)
        entry = next((e for e in self.keeper.entries() if e.key == name.key), None)
        before = self.keeper.store.saved()
        if entry is not None:
            await self._unwarm(name.display)
        try:
            await self.client.delete(name.display)
        except OllamaError as exc:
            if entry is not None and not isinstance(exc, ModelNotFound):
                await self._restore(before, entry.name, exc)
            raise
        self.cache.invalidate()
        self._relist()
        metric("ollama.model.deleted", 1, "{model}", model=name.display)
        return DeleteResult(name.display, warm_removed=entry is not None)

    async def _restore(self, before: SavedWarmList, model: str, cause: OllamaError) -> None:
        """Put the warm list back as it was before a delete that failed (nothing changed)."""
        try:
            await self.keeper.store.restore(model, before)
        except StateNotSaved as exc:  # the caller gets the delete's own error
            log.warning(
                "warm.restore_failed", model=model, error=exc.message, delete_error=cause.message
            )
        self.keeper.poke()

    async def ensure(
        self, model: str, pull: bool | None = None, progress: ProgressSink | None = None
    ) -> EnsureResult:
        """`models.ensure`: the model is installed, ``pulled`` just now or not.

        Missing and neither ``pull`` nor (``pull`` unset and) ``auto_pull_model``:
        raises the seed's "is not available locally" ModelNotFound. When it pulls,
        ``progress`` gets the pull's work-done values as for :meth:`pull`, so a client
        sees the request is alive however long the download takes.
        """
        name = names.parse_model_name(model).display
        available, _cached = await self.cache.is_available(name)
        if available:
            return EnsureResult(name, pulled=False)
        if pull is None:
            pull = self.settings.ollama.auto_pull_model
        if not pull:
            raise OllamaError.model_missing(name, self.base_url)
        await self.pulls.pull(name, progress)
        return EnsureResult(name, pulled=True)

    def validate(self, model: str) -> Validation:
        """`models.validate`: never raises."""
        return Validation(*names.validate(model))

    def default(self) -> str:
        """`models.default`: the configured `default_model`."""
        return self.settings.ollama.default_model

    def counts(self) -> ModelCounts:
        """For `status`: installed (as last listed; None before that), loaded, warm,
        and the names of the loaded and the warm models."""
        listing = self.cache.newest()
        loaded, warm = self.keeper.last_seen(), self.keeper.entries()
        return ModelCounts(
            installed=len(listing.models) if listing is not None else None,
            loaded=len(loaded),
            warm=len(warm),
            loaded_names=tuple(m.name for m in loaded),
            warm_names=tuple(e.name for e in warm),
        )

    # -- warm.* -----------------------------------------------------------------------

    async def warm_list(self) -> Sequence[WarmRow]:
        """`warm.list`: each model kept warm, with its state."""
        ps: list[LoadedModel] | None
        try:
            ps = await self.client.ps()
        except OllamaError:
            ps = None  # the server is down: show what was seen last
        return self.keeper.rows(ps)

    async def warm_add(
        self, model: str, keep_alive: KeepAliveValue | None = None
    ) -> Sequence[WarmRow]:
        """`warm.add`: keep ``model`` loaded from now on (and after restarts).

        ``keep_alive`` overrides `[warm].keep_alive` for this model; a value Ollama
        would reject raises ``KeepAliveError`` (a ValueError) with Ollama's words.
        """
        await self.keeper.store.add(model, keep_alive)
        self.keeper.poke()
        return await self.warm_list()

    async def warm_remove(self, model: str) -> Sequence[WarmRow]:
        """`warm.remove`: stop keeping ``model`` warm (persisted; idempotent)."""
        name = names.parse_model_name(model).display
        if self.keeper.is_warm(names.parse_model_name(name).key):
            await self._unwarm(name)
            await self._hand_back(name)
        return await self.warm_list()

    async def _unwarm(self, name: str) -> None:
        configured = any(names.same_model(name, c) for c in self.keeper.configured)
        await self.keeper.store.remove(name, configured=configured)
        self.keeper.poke()

    async def _hand_back(self, name: str) -> None:
        """Give a loaded model Ollama's normal keep_alive again, so it unloads once idle
        instead of staying "forever" after n3d stopped looking after it. A configured
        keep_alive of 0 means exactly that: it is unloaded (``load`` refuses 0)."""
        keep_alive, num_ctx = self.settings.ollama.keep_alive, self.settings.ollama.num_ctx
        try:
            if not any(names.same_model(name, m.name) for m in await self.client.ps()):
                return
            if parse_keep_alive(keep_alive) == 0:
                await self.client.unload(name)
            else:
                await self.client.load(name, keep_alive=keep_alive, num_ctx=num_ctx)
        except OllamaError as exc:
            log.warning("warm.hand_back_failed", model=name, error=exc.message)
