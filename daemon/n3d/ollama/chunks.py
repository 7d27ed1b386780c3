"""What generations answer: the chunks of ``/api/generate`` and ``/api/chat``.

A streamed generation is a line per chunk; a non-streamed one is a single object
of the same shape, its final chunk. The final chunk (``done``) carries Ollama's
own counters, kept as :class:`InferenceStats` (durations in integer nanoseconds,
with an ``_ns`` suffix). ``from_json`` tolerates extra and missing optional fields,
like every typed answer (:mod:`n3d.ollama.types`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from n3d.ollama.fields import dict_field, int_field, str_field

__all__ = ["ChatChunk", "GenerateChunk", "InferenceStats"]


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
            total_duration_ns=int_field(data, "total_duration"),
            load_duration_ns=int_field(data, "load_duration"),
            prompt_eval_count=int_field(data, "prompt_eval_count") or 0,
            prompt_eval_duration_ns=int_field(data, "prompt_eval_duration"),
            eval_count=int_field(data, "eval_count") or 0,
            eval_duration_ns=int_field(data, "eval_duration"),
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
            model=str_field(data, "model", ""),
            created_at=str_field(data, "created_at", ""),
            response=str_field(data, "response", ""),
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
            model=str_field(data, "model", ""),
            created_at=str_field(data, "created_at", ""),
            message=dict_field(data, "message"),
            done=done,
            done_reason=reason if isinstance(reason, str) else None,
            stats=InferenceStats.from_json(data) if done else None,
            raw=dict(data),
        )

    @property
    def text(self) -> str:
        content = self.message.get("content", "")
        return content if isinstance(content, str) else ""
