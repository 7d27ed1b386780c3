"""The servers behind the proxy, and the wait of a request for one of them.

Each server is a :class:`Lane`: its :class:`~n3d.proxy.view.ServerView`, its gate
(:mod:`n3d.proxy.gate`: hold and drain) and what the proxy saw of its models
(:class:`~n3d.proxy.view.Seen`). :meth:`Router.admit` asks the policy
(:func:`~n3d.proxy.pick.pick`) where a request goes; while the answer is ``HOLD``
it waits for any of the servers the answer names to change (each view's
``wait_for``), then asks again, for at most ``hold_timeout``; then it asks once
more without waiting for anyone (``patient=False``).

A retry (the attempt's connection failed before the first byte) is admitted the
same way with the failed attempt named: that server counts as on its way back
until another serve answers there (:meth:`~n3d.proxy.gate.Gate.retry_verdict`),
so the request goes at once to a healthy server that has its model loaded, else
waits for its model's home, else goes to the least busy healthy server, else
waits for the failed server to come back (docs/proxy.md, "Several servers").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import anyio

from n3d.proxy.gate import Gate, Verdict
from n3d.proxy.pick import Candidate, pick
from n3d.proxy.view import Seen, ServerView, keys_of
from n3d.state import Snapshot

__all__ = ["Admission", "Failed", "Lane", "Router"]


class Lane:
    """One server behind the proxy: its view, its gate, what the proxy saw of its models."""

    __slots__ = ("_pinned", "_pinned_keys", "gate", "name", "seen", "view")

    def __init__(self, view: ServerView) -> None:
        self.view = view
        self.name = view.name
        self.gate = Gate(view.snapshot, view.wait_for)
        self.seen = Seen()
        self._pinned: frozenset[str] = frozenset()
        self._pinned_keys: frozenset[str] = frozenset()

    @property
    def base_url(self) -> str:
        return self.view.base_url.rstrip("/")

    def pins(self, key: str) -> bool:
        """Whether this server's ``models`` names the model ``key`` (a reload may change them)."""
        pinned = self.view.pinned()
        if pinned is not self._pinned:
            self._pinned, self._pinned_keys = pinned, keys_of(pinned)
        return key in self._pinned_keys

    def has_loaded(self, key: str, snap: Snapshot) -> bool:
        return key in self.seen.loaded_keys(snap, self.view.loaded())


@dataclass(frozen=True, slots=True)
class Failed:
    """A retry's failed attempt: the lane it went to and that server's snapshot then."""

    lane: Lane
    since: Snapshot


class Admission(NamedTuple):
    """What became of a request's wait: ``verdict`` for ``lane`` (seen as ``snap``)."""

    verdict: Verdict
    lane: Lane
    snap: Snapshot
    held_s: float


class Router:
    """The lanes in the config's order and the admission of requests to them."""

    def __init__(self, views: Sequence[ServerView], in_flight: Callable[[str], int]) -> None:
        if not views:
            raise ValueError("the proxy needs at least one server")
        names = [view.name for view in views]
        if len(set(names)) != len(names):
            raise ValueError(f"server names must be unique: {names}")
        self.lanes = tuple(Lane(view) for view in views)
        self.in_flight = in_flight

    def lanes_named(self, name: str | None) -> tuple[Lane, ...]:
        """The lane called ``name`` (all when None); ValueError for an unknown name."""
        if name is None:
            return self.lanes
        for lane in self.lanes:
            if lane.name == name:
                return (lane,)
        raise ValueError(f"no server named {name!r} behind the proxy")

    def healthy(self) -> list[Lane]:
        """The lanes that take requests now, in order (for the merged answers)."""
        return [
            lane for lane in self.lanes if lane.gate.verdict(lane.view.snapshot()) is Verdict.GO
        ]

    def _verdict(self, lane: Lane, snap: Snapshot, failed: Failed | None) -> Verdict:
        if failed is not None and failed.lane is lane:
            return lane.gate.retry_verdict(failed.since, snap)
        return lane.gate.verdict(snap)

    def _pick(
        self, key: str | None, by_model: bool, failed: Failed | None, patient: bool
    ) -> tuple[Verdict, Lane, Snapshot, tuple[Lane, ...]]:
        snaps = [lane.view.snapshot() for lane in self.lanes]
        candidates = []
        for lane, snap in zip(self.lanes, snaps, strict=True):
            verdict = self._verdict(lane, snap, failed)
            if key is None or len(self.lanes) == 1:  # one server: nothing to compare
                candidates.append(Candidate(verdict, self.in_flight(lane.name)))
                continue
            candidates.append(
                Candidate(
                    verdict,
                    self.in_flight(lane.name),
                    loaded=verdict is Verdict.GO and lane.has_loaded(key, snap),
                    home=lane.pins(key),
                    installed=lane.seen.installed(key),
                )
            )
        choice = pick(candidates, by_model=by_model, patient=patient)
        waits = tuple(self.lanes[i] for i in choice.waits)
        return choice.verdict, self.lanes[choice.at], snaps[choice.at], waits

    async def admit(
        self,
        key: str | None,
        *,
        by_model: bool,
        hold_timeout_s: float,
        failed: Failed | None = None,
        waiting: Callable[[Lane], None] = lambda lane: None,
    ) -> Admission:
        """Where the request goes, after waiting (bounded) while the answer is ``HOLD``.

        ``waiting(lane)`` is told the server a held request waits for (its record
        shows it). A hold that outlasts ``hold_timeout_s`` ends with the
        impatient answer (module docstring): ``HOLD`` there is the caller's 503.
        """
        verdict, lane, snap, waits = self._pick(key, by_model, failed, patient=True)
        if verdict is not Verdict.HOLD:
            return Admission(verdict, lane, snap, 0.0)
        started = time.monotonic()
        with anyio.move_on_after(hold_timeout_s):
            while verdict is Verdict.HOLD:
                waiting(lane)
                await self._wait_any(waits, failed)
                verdict, lane, snap, waits = self._pick(key, by_model, failed, patient=True)
            return Admission(verdict, lane, snap, time.monotonic() - started)
        verdict, lane, snap, _ = self._pick(key, by_model, failed, patient=False)
        return Admission(verdict, lane, snap, time.monotonic() - started)

    async def _wait_any(self, lanes: tuple[Lane, ...], failed: Failed | None) -> None:
        """Return once any of ``lanes`` has a verdict other than ``HOLD``."""

        async def one(lane: Lane) -> None:
            await lane.view.wait_for(lambda s: self._verdict(lane, s, failed) is not Verdict.HOLD)

        if len(lanes) == 1:
            await one(lanes[0])
            return
        async with anyio.create_task_group() as tg:

            async def first(lane: Lane) -> None:
                await one(lane)
                tg.cancel_scope.cancel()

            for lane in lanes:
                tg.start_soon(first, lane)
