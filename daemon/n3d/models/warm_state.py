"""What the keeper remembers per warm model, and rows of `/api/ps` keyed by name.

Monotonic seconds (``*_mono``) schedule retries; wall-clock seconds (``*_at``)
are for people and are shown as ISO 8601 UTC. Nothing here reads a clock: the
keeper passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from n3d.errors import InvalidModelName, OllamaError
from n3d.models.warm_store import KeepAliveValue
from n3d.ollama.names import parse_model_name
from n3d.ollama.types import LoadedModel

__all__ = ["LoadedRow", "WarmRow", "WarmState", "loaded_row"]


@dataclass(frozen=True, slots=True)
class WarmRow:
    """One model of the warm list as `warm.list` shows it; ``last_warmed_at`` is wall s."""

    name: str
    keep_alive: KeepAliveValue
    loaded: bool
    expires_at: str | None  # as Ollama sent it, while loaded
    last_warmed_at: float | None
    last_error: str | None
    source: Literal["config", "runtime"]


@dataclass(frozen=True, slots=True)
class LoadedRow:
    """One `/api/ps` entry with the identity Ollama matches names by."""

    model: LoadedModel
    key: str
    name: str

    def event(self, warm: bool) -> dict[str, Any]:
        """Payload of ``model.loaded`` / ``model.unloaded`` (sizes in bytes)."""
        m = self.model
        return {
            "model": self.name,
            "warm": warm,
            "size": m.size,
            "size_vram": m.size_vram,
            "expires_at": m.expires_at,
        }

    def reason_gone(self, now: datetime) -> str:
        """Why it left `/api/ps` (the server stayed up): its time was up, or not."""
        expires = self.model.expires
        if expires is not None and (expires - now).total_seconds() <= 1.0:
            return "expired"
        return "evicted"  # gone before its time: memory pressure or an unload request


def loaded_row(model: LoadedModel) -> LoadedRow:
    try:
        name = parse_model_name(model.name)
        return LoadedRow(model, name.key, name.display)
    except InvalidModelName:  # shown as Ollama sent it; no warm entry can match it
        return LoadedRow(model, model.name.lower(), model.name)


class WarmState:
    """The keeper's memory of one warm model (mutable, owned by the keeper)."""

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.loaded: LoadedRow | None = None
        self.loaded_since: float | None = None  # monotonic s when first seen loaded
        self.in_flight = False
        self.attempts = 0  # recent warm-ups (for backoff); reset once stable
        self.next_attempt = 0.0  # monotonic s before which no re-warm starts
        self.last_warm_mono: float | None = None
        self.last_warmed_at: float | None = None  # wall s
        self.last_error: str | None = None

    def observe(self, row: LoadedRow | None, mono: float) -> None:
        if row is None:
            self.loaded_since = None
        elif self.loaded_since is None:
            self.loaded_since = mono
        self.loaded = row

    def reset_after_restart(self) -> None:
        """A fresh server: no backoff carried over, and our keep_alive must be set again."""
        self.attempts = 0
        self.next_attempt = 0.0
        self.last_warm_mono = None

    def warmed(self, delay_s: float, *, refresh: bool, mono: float, wall: float) -> None:
        if not refresh:  # refreshing a model that stays loaded is not a sign of trouble
            self.attempts += 1
            self.next_attempt = mono + delay_s
        self.last_warm_mono = mono
        self.last_warmed_at = wall
        self.last_error = None

    def failed(self, error: OllamaError, delay_s: float, mono: float) -> float:
        """Record a failed warm-up; returns the seconds until the next try."""
        self.attempts += 1
        self.next_attempt = mono + delay_s
        self.last_error = error.message
        return delay_s

    def row(
        self,
        keep_alive: KeepAliveValue,
        source: Literal["config", "runtime"],
        current: dict[str, LoadedRow] | None,
    ) -> WarmRow:
        """Its `warm.list` row; ``current`` is a fresh `/api/ps` by key, else the last seen."""
        loaded = self.loaded if current is None else current.get(self.key)
        return WarmRow(
            name=self.name,
            keep_alive=keep_alive,
            loaded=loaded is not None,
            expires_at=loaded.model.expires_at if loaded is not None else None,
            last_warmed_at=self.last_warmed_at,
            last_error=self.last_error,
            source=source,
        )
