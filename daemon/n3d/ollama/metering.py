"""Metrics of generations, from Ollama's own counters (DESIGN.md, Logs and metrics).

Non-streaming calls record ``ollama.request.duration`` and
``ollama.throughput.tokens_per_second``; streams record
``ollama.stream.duration|chunks|tokens|throughput``; both record
``ollama.tokens.prompt|completion|total``. Tags: ``model``, ``endpoint``.

Token counts and throughput come from the final chunk (``eval_count`` over
``eval_duration``), not wall time, so a slow network or a queue in front of the
model does not look like a slow model. Durations are the wall time the caller
waited, in seconds. ``ollama.stream.tokens`` is prompt plus completion, as the seed
counted it.
"""

from __future__ import annotations

from typing import Any

from n3d.metrics import metric
from n3d.ollama.chunks import InferenceStats

__all__ = ["StreamMeter", "record_request"]


def _record_tokens(stats: InferenceStats, tags: dict[str, Any]) -> None:
    metric("ollama.tokens.prompt", stats.prompt_eval_count, "{token}", **tags)
    metric("ollama.tokens.completion", stats.eval_count, "{token}", **tags)
    metric("ollama.tokens.total", stats.total_tokens, "{token}", **tags)


def record_request(
    endpoint: str, model: str, stats: InferenceStats | None, duration_s: float
) -> None:
    """Metrics of one non-streaming generation: wall duration, tokens, tokens/s."""
    tags: dict[str, Any] = {"model": model, "endpoint": endpoint}
    metric("ollama.request.duration", duration_s, "s", **tags)
    if stats is None:
        return
    _record_tokens(stats, tags)
    rate = stats.tokens_per_second
    if rate is not None:
        metric("ollama.throughput.tokens_per_second", rate, "{token}/s", **tags)


class StreamMeter:
    """Counts the chunks of one streamed generation and reports them when it ends.

    The caller stamps ``started_s`` (a monotonic clock) before sending the request,
    calls :meth:`chunk` per chunk and :meth:`finish` with the final chunk's counters,
    before handing that chunk on, so a consumer that stops at ``done`` still records.
    """

    def __init__(self, endpoint: str, model: str, started_s: float) -> None:
        self.tags: dict[str, Any] = {"model": model, "endpoint": endpoint}
        self.started_s = started_s
        self.chunks = 0

    def chunk(self) -> None:
        self.chunks += 1

    def finish(self, stats: InferenceStats | None, now_s: float) -> None:
        metric("ollama.stream.duration", now_s - self.started_s, "s", **self.tags)
        metric("ollama.stream.chunks", self.chunks, "{chunk}", **self.tags)
        if stats is None:
            return
        metric("ollama.stream.tokens", stats.total_tokens, "{token}", **self.tags)
        _record_tokens(stats, self.tags)
        rate = stats.tokens_per_second
        if rate is not None:
            metric("ollama.stream.throughput", rate, "{token}/s", **self.tags)
