"""What a reply says, read from the bytes as they are forwarded: chunks, TTFT, tokens, errors.

The proxy hands every piece of a reply's body to :meth:`ReplyMeter.feed` right
after writing it to the client, so nothing waits for the meter and the body is
never held: only an unfinished line is kept (up to :data:`MAX_LINE_BYTES`; a longer
one is counted but not read). Shapes (research/ollama.md §1, DESIGN.md Records):

- NDJSON (``application/x-ndjson``) and plain JSON: each line is one object, a
  chunk. Ollama's final object (``"done": true``) carries ``prompt_eval_count``,
  ``eval_count`` and ``eval_duration``; a line ``{"error": ...}`` is an in-stream
  error. A JSON body without a final newline is one object, read at :meth:`close`.
- SSE (``text/event-stream``, the ``/v1`` routes): each ``data:`` line with a JSON
  object is a chunk (``[DONE]`` is not); the chunk with ``usage`` has the tokens.

:meth:`ReplyMeter.decode_rate` is what liveness is told of a finished generation:
Ollama's own rate (``eval_count`` / ``eval_duration``), only from its final object
(``/v1``'s ``usage`` has no duration, and wall time includes the queue and the
prompt) and only for at least :data:`RATE_MIN_TOKENS` tokens.

Only the lines that can matter are decoded: every line until the first one that
carries content (its arrival is the TTFT), then only those that contain the bytes
of a final object, ``usage`` or ``error`` (a few microseconds saved per token).
"""

from __future__ import annotations

import json
from typing import Any

from n3d.ollama.chunks import InferenceStats

__all__ = ["MAX_LINE_BYTES", "RATE_MIN_TOKENS", "ReplyMeter", "Tokens"]

MAX_LINE_BYTES = 1 << 20
# A rate from fewer tokens is no evidence: Ollama samples the first token at the end
# of the prompt's evaluation, so a one-token answer ("yes", a probe-like ping) times a
# step or two, and a few microseconds of timer or scheduling noise swing it widely.
# Eight amortise that over seven decode steps, and still count short real answers
# (a sentence is 15-30 tokens) and the drill's 8-token streams.
RATE_MIN_TOKENS = 8
_FINAL_MARKS = (b'"done":true', b'"done": true', b'"prompt_eval_count"')
_DONE_SSE = b"[DONE]"


class Tokens:
    """Token counts of one reply, and the decode rate when the reply tells it."""

    __slots__ = ("completion", "prompt", "tokens_per_second")

    def __init__(self, prompt: int, completion: int, tokens_per_second: float | None) -> None:
        self.prompt = prompt
        self.completion = completion
        self.tokens_per_second = tokens_per_second

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def as_dict(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion, "total": self.total}


def _has_content(obj: dict[str, Any]) -> bool:
    """Whether one chunk carries generated output (text, thinking or a tool call)."""
    if obj.get("response") or obj.get("thinking"):
        return True
    message = obj.get("message")
    if isinstance(message, dict) and (
        message.get("content") or message.get("thinking") or message.get("tool_calls")
    ):
        return True
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        if first.get("text"):
            return True
        for key in ("delta", "message"):
            part = first.get(key)
            if isinstance(part, dict) and (
                part.get("content") or part.get("tool_calls") or part.get("reasoning")
            ):
                return True
    return False


class ReplyMeter:
    """Reads one reply's body as it passes; see the module docstring for the shapes."""

    __slots__ = (
        "_buf",
        "_skipping",
        "chunks",
        "content",
        "content_chunks",
        "error",
        "final",
        "inference",
        "model",
        "sse",
        "usage",
    )

    def __init__(self, content_type: str, *, inference: bool) -> None:
        self.sse = content_type.startswith("text/event-stream")
        self.inference = inference
        self.chunks = 0  # objects seen, the final one included
        self.content = False  # a chunk with generated output has arrived
        self.content_chunks = 0  # chunks since (and with) the first content: tokens so far
        self.final: dict[str, Any] | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.error: str | None = None
        self._buf = b""
        self._skipping = False  # inside a line longer than MAX_LINE_BYTES

    def feed(self, data: bytes) -> None:
        """Take the next piece of the body (any size, cut anywhere)."""
        if self._buf:
            data = self._buf + data
            self._buf = b""
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
                self.chunks += 0 if self.sse else 1
            else:
                self._line(data[start:end])
            start = end + 1
        rest = data[start:]
        if self._skipping:
            return
        if len(rest) > MAX_LINE_BYTES:
            self._skipping = True  # counted at its newline, never decoded
        elif rest:
            self._buf = rest

    def close(self) -> None:
        """The body ended: a last object without a newline (a JSON reply) is read now."""
        if self._buf:
            line, self._buf = self._buf, b""
            self._line(line)
        elif self._skipping and not self.sse:
            self.chunks += 1
        self._skipping = False

    def _line(self, line: bytes) -> None:
        if self.sse:
            if not line.startswith(b"data:"):
                return
            line = line[5:].strip()
            if line == _DONE_SSE:
                return
        line = line.strip()
        if not line:
            return
        self.chunks += 1
        if self.content:
            self.content_chunks += 1
            if not any(mark in line for mark in (*_FINAL_MARKS, b'"usage"', b'"error"')):
                return
        obj = self._decode(line)
        if obj is None:
            return
        if self.model is None and isinstance(obj.get("model"), str):
            self.model = obj["model"]
        if not self.content and self.inference and _has_content(obj):
            self.content = True
            self.content_chunks = 1
        error = obj.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            self.error = str(message)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        if obj.get("done") is True or "prompt_eval_count" in obj:
            self.final = obj

    @staticmethod
    def _decode(line: bytes) -> dict[str, Any] | None:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # not ours to judge: it is forwarded as it is
            return None
        return obj if isinstance(obj, dict) else None

    def decode_rate(self) -> float | None:
        """Ollama's decode rate (tokens/s) of a generation that ended well with at least
        :data:`RATE_MIN_TOKENS` tokens; None otherwise (module docstring)."""
        if self.final is None or self.error is not None or not self.inference:
            return None
        stats = InferenceStats.from_json(self.final)
        if stats.eval_count < RATE_MIN_TOKENS or (stats.eval_duration_ns or 0) <= 0:
            return None
        return stats.tokens_per_second

    def tokens(self, generation_s: float | None) -> Tokens | None:
        """The reply's token counts: Ollama's final object, else ``/v1``'s ``usage``.

        ``generation_s`` (first content to end, wall time) gives ``/v1`` a decode
        rate, which its ``usage`` lacks; Ollama's own rate uses its ``eval_duration``.
        """
        if self.final is not None:
            stats = InferenceStats.from_json(self.final)
            return Tokens(stats.prompt_eval_count, stats.eval_count, stats.tokens_per_second)
        if self.usage is not None:
            prompt = _count(self.usage, "prompt_tokens", "input_tokens")
            completion = _count(self.usage, "completion_tokens", "output_tokens")
            rate = completion / generation_s if generation_s and completion else None
            return Tokens(prompt, completion, rate)
        return None


def _count(usage: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return 0
