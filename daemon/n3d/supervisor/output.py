"""Ollama's stdout and stderr, read continuously and re-emitted as log events.

Each line becomes one event ``ollama.output`` with ``logger: "ollama"``, ``stream``
and ``line``. slog lines on stderr keep their level (``level=WARN`` → warning);
gin's access lines for n3d's own `HEAD /` probes are logged at debug, since one
line per health check is noise. Lines longer than 16 KiB are cut, so a child that
never prints a newline cannot grow n3d's memory, and so the JSON event stays
under journald's LineMax (48 KiB), which would otherwise split it. Reading never stops before EOF,
so a pipe never fills and the child never blocks on a write.

Re-emitting is rate-limited, reading is not. A chatty serve (9 MB/s of lines) once
made 74 MB of n3d log in 8 s at 98 % CPU, and journald's rate limit (by default
10 000 messages per 30 s per service) then dropped n3d's own events with it. So the
lines of one child pass a token bucket, :class:`OutputLimiter`: ``RATE_PER_S``
lines per second with bursts of ``BURST``. Ollama prints ~50–300 lines at start-up
(more with ``OLLAMA_DEBUG``), which fit the burst, and one gin line per request,
which fits the rate up to 100 requests a second. At the limit the child uses at
most 1 000 + 30 × 100 = 4 000 of journald's 10 000 per 30 s, leaving the rest to
n3d. Lines over the limit are read and dropped (a whole read at a time, so a
flood costs little more than reading it); they are counted in the metric
``ollama.output_suppressed`` and summed up in a warning event of that name (n3d's
own logger, never limited) at most every ``SUMMARY_EVERY_S`` and at EOF. The
newest stderr line is always seen (it goes into error messages), limited or not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import anyio
import structlog
from anyio.abc import ByteReceiveStream

from n3d.metrics import metric
from n3d.ratelimit import TokenBucket

__all__ = ["BURST", "RATE_PER_S", "SUMMARY_EVERY_S", "OutputLimiter", "drain", "emit"]

ollama_log = structlog.get_logger("ollama")
log = structlog.get_logger("n3d.supervisor.output")

RATE_PER_S = 100.0
BURST = 1000
SUMMARY_EVERY_S = 10.0

_MAX_LINE = 16 * 1024
_SLOG_LEVEL = re.compile(r"\blevel=(DEBUG|INFO|WARN|ERROR)\b")
_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARN": "warning", "ERROR": "error"}
_PROBE_LINE = re.compile(r'^\[GIN\] .*\|\s*HEAD\s+"/"\s*$')


class OutputLimiter(TokenBucket):
    """The bucket over one child's lines (both streams share it), with the drop count:
    ``RATE_PER_S`` lines/s, bursts of ``BURST`` (:class:`~n3d.ratelimit.TokenBucket`)."""

    def __init__(
        self,
        rate_per_s: float = RATE_PER_S,
        burst: int = BURST,
        *,
        summary_every_s: float = SUMMARY_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate_per_s, burst, summary_every_s=summary_every_s, clock=clock)


def report_suppressed(count: int) -> None:
    """The summary: a warning event and the counter, both n3d's own (never limited)."""
    if count:
        log.warning(
            "ollama.output_suppressed",
            lines=count,
            detail=f"Ollama printed more than {RATE_PER_S:g} lines/s (bursts of {BURST}): "
            "these lines were read and dropped, not logged",
        )
        metric("ollama.output_suppressed", count, "{line}", kind="counter")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


def emit(stream: str, raw: bytes) -> None:
    """Log one output line of ``stream`` ("stdout" or "stderr")."""
    line = _decode(raw)
    if not line:
        return
    level = "info"
    if stream == "stderr":
        found = _SLOG_LEVEL.search(line)
        if found:
            level = _LEVELS[found.group(1)]
    elif _PROBE_LINE.match(line):
        level = "debug"
    getattr(ollama_log, level)("ollama.output", stream=stream, line=line)


def _pass(name: str, lines: list[bytes], limiter: OutputLimiter | None) -> None:
    allowed = len(lines) if limiter is None else limiter.take(len(lines))
    for raw in lines[:allowed]:
        emit(name, raw[:_MAX_LINE])
    if limiter is not None:
        report_suppressed(limiter.summary_due())


def _note_last(lines: list[bytes], on_stderr: Callable[[str], None] | None) -> None:
    if on_stderr is None:
        return
    for raw in reversed(lines):
        line = _decode(raw[:_MAX_LINE])
        if line:
            on_stderr(line)
            return


async def drain(
    stream: ByteReceiveStream,
    name: str,
    on_stderr: Callable[[str], None] | None = None,
    limiter: OutputLimiter | None = None,
) -> None:
    """Read ``stream`` to EOF, logging each line through ``limiter`` (None: all).

    ``on_stderr`` sees the newest non-empty stderr line (the last of each read),
    whether or not the limiter let it be logged.
    """
    buffer = b""
    try:
        async for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > _MAX_LINE:
                lines.append(buffer)
                buffer = b""
            _pass(name, lines, limiter)
            if name == "stderr":
                _note_last(lines, on_stderr)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    if buffer:
        _pass(name, [buffer], limiter)
        if name == "stderr":
            _note_last([buffer], on_stderr)
    if limiter is not None:
        report_suppressed(limiter.summary_due(final=True))
