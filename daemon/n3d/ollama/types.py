"""Typed answers of Ollama's model calls: listings, pulls, loads (research/ollama.md §1).

``/api/tags`` (:class:`InstalledModel`), ``/api/ps`` (:class:`LoadedModel`), a line of
``/api/pull`` (:class:`PullProgress`), what a warm-up cost (:class:`LoadResult`), and
name matching over listings. Generations answer chunks: :mod:`n3d.ollama.chunks`.

Every type is a frozen dataclass built by ``from_json``, which tolerates extra fields
(Ollama adds some in most releases) and missing optional ones, and raises
:class:`ValueError` only when a field the type cannot do without is absent or of the
wrong type, or an integer field holds a number no integer can (``1e400`` decodes to
inf; :mod:`n3d.ollama.fields`); the client turns that into
:class:`~n3d.errors.UnexpectedResponse`.

Times stay the strings Ollama sent, with :func:`parse_go_time` to read them (Go's
RFC 3339 with nanoseconds and local offset, including the year-2318 "forever" of a
negative keep-alive).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from n3d.errors import InvalidModelName
from n3d.ollama.decoding import brief
from n3d.ollama.fields import dict_field, int_field, str_field
from n3d.ollama.names import parse_model_name

__all__ = [
    "InstalledModel",
    "LoadResult",
    "LoadedModel",
    "PullProgress",
    "find_model",
    "has_model",
    "parse_go_time",
    "parse_installed",
    "parse_loaded",
    "parse_version",
]

# `ollama ps` prints "Forever" beyond this horizon (`format/time.go`).
_FOREVER_AFTER = timedelta(days=365 * 20)
_GO_TIME = re.compile(r"^(?P<base>[^.]+?)(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:\d{2})?$")


def parse_go_time(text: str | None) -> datetime | None:
    """An aware datetime for a Go RFC 3339 time, or None when absent or unreadable.

    Go writes up to nine fractional digits; Python keeps six, so the rest is dropped.
    A time without an offset is taken as UTC.
    """
    if not text:
        return None
    match = _GO_TIME.match(text.strip())
    if match is None:
        return None
    frac = (match["frac"] or "")[:6]
    tz = match["tz"] or "Z"
    iso = match["base"] + (f".{frac.ljust(6, '0')}" if frac else "") + tz.replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """One entry of ``GET /api/tags``: a model on disk. ``size`` is bytes."""

    name: str
    model: str
    size: int
    digest: str
    modified_at: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        # Old servers send only `name`, the official Python client only reads `model`.
        name = str_field(data, "name", data.get("model"))
        return cls(
            name=name,
            model=str_field(data, "model", name),
            size=int_field(data, "size") or 0,
            digest=str_field(data, "digest", ""),
            modified_at=str_field(data, "modified_at", ""),
            details=dict_field(data, "details"),
        )

    @property
    def modified(self) -> datetime | None:
        return parse_go_time(self.modified_at)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One entry of ``GET /api/ps``: a model held in memory. Sizes are bytes.

    ``context_length`` exists since about Ollama 0.11 and is None before.
    """

    name: str
    model: str
    size: int
    size_vram: int
    digest: str
    expires_at: str
    context_length: int | None = None
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        name = str_field(data, "name", data.get("model"))
        return cls(
            name=name,
            model=str_field(data, "model", name),
            size=int_field(data, "size") or 0,
            size_vram=int_field(data, "size_vram") or 0,
            digest=str_field(data, "digest", ""),
            expires_at=str_field(data, "expires_at", ""),
            context_length=int_field(data, "context_length"),
            details=dict_field(data, "details"),
        )

    @property
    def expires(self) -> datetime | None:
        """When Ollama plans to unload it (an estimate while loading or busy)."""
        return parse_go_time(self.expires_at)

    def is_forever(self, now: datetime | None = None) -> bool:
        """True when kept loaded indefinitely (a negative keep-alive shows ≈ year 2318)."""
        expires = self.expires
        return expires is not None and expires - (now or datetime.now(UTC)) > _FOREVER_AFTER


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One line of a streamed ``POST /api/pull``; byte counts are absent while zero.

    ``status`` is optional on the wire, as in the official Python client: Ollama's
    experimental client2 pull (``OLLAMA_EXPERIMENT=client2``, v0.5-v0.13;
    server/internal/registry/server.go, `progressUpdateJSON` with `omitempty`) sends
    layer lines with only digest, total and completed. Such a line gets the status a
    classic pull sends for it, ``pulling <digest[7:19]>`` (server/download.go).
    """

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        digest = data.get("digest")
        digest = digest if isinstance(digest, str) else None
        status = data.get("status")
        if status is None or status == "":
            status = f"pulling {digest[7:19]}" if digest else "pulling"
        elif not isinstance(status, str):
            raise ValueError(f"field 'status' should be a string, got {brief(status)}")
        return cls(
            status=status,
            digest=digest,
            total=int_field(data, "total"),
            completed=int_field(data, "completed"),
        )

    @property
    def fraction(self) -> float | None:
        """Share of this layer downloaded, 0.0-1.0, when Ollama reported a total."""
        if not self.total:
            return None
        return min(1.0, (self.completed or 0) / self.total)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load (warm-up) cost: ``duration_s`` measured by n3d around the request,
    ``load_duration_s`` as Ollama reported it (None when it did not)."""

    model: str
    duration_s: float
    load_duration_s: float | None
    done_reason: str | None


_T = TypeVar("_T")


def _models(data: Mapping[str, Any], parse: Callable[[dict[str, Any]], _T]) -> list[_T]:
    entries = data.get("models") or []  # `[]`, never null, says Ollama; be lenient anyway
    if not isinstance(entries, list):
        raise ValueError(f"'models' should be a list, got {brief(entries)}")
    return [parse(entry) for entry in entries if isinstance(entry, dict)]


def parse_installed(data: Mapping[str, Any]) -> list[InstalledModel]:
    """The answer to ``GET /api/tags``; entries that are not objects are skipped."""
    return _models(data, InstalledModel.from_json)


def parse_loaded(data: Mapping[str, Any]) -> list[LoadedModel]:
    """The answer to ``GET /api/ps``; entries that are not objects are skipped."""
    return _models(data, LoadedModel.from_json)


def parse_version(data: Mapping[str, Any]) -> str:
    """The answer to ``GET /api/version``: e.g. `0.6.8` (no leading `v`)."""
    version = data.get("version")
    if not isinstance(version, str):
        raise ValueError(f"no 'version' in {brief(data)}")
    return version


_Entry = TypeVar("_Entry", bound=InstalledModel | LoadedModel | str)


def _model_name(entry: InstalledModel | LoadedModel | str) -> str:
    return entry if isinstance(entry, str) else entry.name


def find_model(models: Iterable[_Entry], name: str) -> _Entry | None:
    """The entry Ollama would treat as model `name` (case-insensitive, `:latest` implied).

    Raises :class:`InvalidModelName` when `name` itself is invalid; entries whose own
    names do not parse are skipped.
    """
    key = parse_model_name(name).key
    for entry in models:
        try:
            if parse_model_name(_model_name(entry)).key == key:
                return entry
        except InvalidModelName:
            continue
    return None


def has_model(models: Iterable[InstalledModel | LoadedModel | str], name: str) -> bool:
    """True when `name` is among `models` as Ollama matches names (`llama3` = `llama3:latest`)."""
    return find_model(models, name) is not None
