"""Typed answers of Ollama's HTTP API (research/ollama.md §1).

Every type is a frozen dataclass built by ``from_json``, which tolerates extra fields
(Ollama adds some in most releases) and missing optional ones, and raises
:class:`ValueError` only when a field the type cannot do without is absent or of the
wrong type, or an integer field holds a number no integer can (``1e400`` decodes to
inf); the client turns that into :class:`~n3d.errors.UnexpectedResponse`.

Durations from Ollama are integer nanoseconds and keep an ``_ns`` suffix here;
properties ending in ``_s`` give seconds. Times stay the strings Ollama sent, with
:func:`parse_go_time` to read them (Go's RFC 3339 with nanoseconds and local offset,
including the year-2318 "forever" of a negative keep-alive).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from n3d.errors import InvalidModelName
from n3d.ollama.decoding import brief
from n3d.ollama.names import parse_model_name

__all__ = [
    "ChatChunk",
    "GenerateChunk",
    "InferenceStats",
    "InstalledModel",
    "LoadResult",
    "LoadedModel",
    "PullProgress",
    "find_model",
    "has_model",
    "parse_go_time",
]

_INT64 = 1 << 63
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


def _str(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' should be a string, got {brief(value)}")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    """An integer field (Go's int64: sizes, counts, nanoseconds), None when absent.

    A double that is not finite (`1e400` decodes to inf) is no integer: ValueError,
    never the OverflowError of ``int(inf)``. Nor is a value beyond int64, which Go
    never sends and whose arithmetic (a percentage of 1e308 bytes) would overflow later.
    """
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field '{key}' should be a number, got {brief(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"field '{key}' should be an integer, got {value!r}")
    number = int(value)
    if not -_INT64 <= number < _INT64:
        raise ValueError(f"field '{key}' should be a 64-bit integer, got {brief(value)}")
    return number


def _dict(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


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
        name = _str(data, "name", data.get("model"))
        return cls(
            name=name,
            model=_str(data, "model", name),
            size=_opt_int(data, "size") or 0,
            digest=_str(data, "digest", ""),
            modified_at=_str(data, "modified_at", ""),
            details=_dict(data, "details"),
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
        name = _str(data, "name", data.get("model"))
        return cls(
            name=name,
            model=_str(data, "model", name),
            size=_opt_int(data, "size") or 0,
            size_vram=_opt_int(data, "size_vram") or 0,
            digest=_str(data, "digest", ""),
            expires_at=_str(data, "expires_at", ""),
            context_length=_opt_int(data, "context_length"),
            details=_dict(data, "details"),
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
            total=_opt_int(data, "total"),
            completed=_opt_int(data, "completed"),
        )

    @property
    def fraction(self) -> float | None:
        """Share of this layer downloaded, 0.0-1.0, when Ollama reported a total."""
        if not self.total:
            return None
        return min(1.0, (self.completed or 0) / self.total)


@dataclass(frozen=True, slots=True)
class InferenceStats:
    """Ollama's own counters from the final chunk of a generation (durations in ns)."""

    total_duration_ns: int | None = None
    load_duration_ns: int | None = None
    prompt_eval_count: int = 0
    prompt_eval_duration_ns: int | None = None
    eval_count: int = 0
    eval_duration_ns: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            total_duration_ns=_opt_int(data, "total_duration"),
            load_duration_ns=_opt_int(data, "load_duration"),
            prompt_eval_count=_opt_int(data, "prompt_eval_count") or 0,
            prompt_eval_duration_ns=_opt_int(data, "prompt_eval_duration"),
            eval_count=_opt_int(data, "eval_count") or 0,
            eval_duration_ns=_opt_int(data, "eval_duration"),
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_eval_count + self.eval_count

    @property
    def tokens_per_second(self) -> float | None:
        """Generated tokens per second of Ollama's eval time (not wall time)."""
        if not self.eval_duration_ns:
            return None
        return self.eval_count / (self.eval_duration_ns / 1e9)


@dataclass(frozen=True, slots=True)
class GenerateChunk:
    """A line of ``/api/generate`` (or its only object when not streaming).

    ``stats`` is set on the final (``done``) chunk; ``raw`` keeps every field sent.
    """

    model: str
    created_at: str
    response: str
    done: bool
    done_reason: str | None = None
    thinking: str | None = None
    stats: InferenceStats | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        done = bool(data.get("done", False))
        thinking = data.get("thinking")
        reason = data.get("done_reason")
        return cls(
            model=_str(data, "model", ""),
            created_at=_str(data, "created_at", ""),
            response=_str(data, "response", ""),
            done=done,
            done_reason=reason if isinstance(reason, str) else None,
            thinking=thinking if isinstance(thinking, str) else None,
            stats=InferenceStats.from_json(data) if done else None,
            raw=dict(data),
        )

    @property
    def text(self) -> str:
        return self.response


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """A line of ``/api/chat`` (or its only object when not streaming).

    ``message`` is Ollama's message object (role, content, and tool_calls, images,
    thinking when present); ``stats`` is set on the final chunk.
    """

    model: str
    created_at: str
    message: dict[str, Any]
    done: bool
    done_reason: str | None = None
    stats: InferenceStats | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        done = bool(data.get("done", False))
        reason = data.get("done_reason")
        return cls(
            model=_str(data, "model", ""),
            created_at=_str(data, "created_at", ""),
            message=_dict(data, "message"),
            done=done,
            done_reason=reason if isinstance(reason, str) else None,
            stats=InferenceStats.from_json(data) if done else None,
            raw=dict(data),
        )

    @property
    def text(self) -> str:
        content = self.message.get("content", "")
        return content if isinstance(content, str) else ""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load (warm-up) cost: ``duration_s`` measured by n3d around the request,
    ``load_duration_s`` as Ollama reported it (None when it did not)."""

    model: str
    duration_s: float
    load_duration_s: float | None
    done_reason: str | None


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
