"""Ollama's stdout and stderr, read continuously and re-emitted as log events.

Each line becomes one event ``ollama.output`` with ``logger: "ollama"``, ``stream``
and ``line``. slog lines on stderr keep their level (``level=WARN`` → warning);
gin's access lines for n3d's own `HEAD /` probes are logged at debug, since one
line per health check is noise. Lines longer than 16 KiB are cut, so a child that
never prints a newline cannot grow n3d's memory, and so the JSON event stays
under journald's LineMax (48 KiB), which would otherwise split it. Reading never stops before EOF,
so a pipe never fills and the child never blocks on a write.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio
import structlog
from anyio.abc import ByteReceiveStream

__all__ = ["drain", "emit"]

ollama_log = structlog.get_logger("ollama")

_MAX_LINE = 16 * 1024
_SLOG_LEVEL = re.compile(r"\blevel=(DEBUG|INFO|WARN|ERROR)\b")
_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARN": "warning", "ERROR": "error"}
_PROBE_LINE = re.compile(r'^\[GIN\] .*\|\s*HEAD\s+"/"\s*$')


def emit(stream: str, raw: bytes, on_stderr: Callable[[str], None] | None = None) -> None:
    """Log one output line of ``stream`` ("stdout" or "stderr")."""
    line = raw.decode("utf-8", "replace").rstrip("\r")
    if not line:
        return
    level = "info"
    if stream == "stderr":
        if on_stderr is not None:
            on_stderr(line)
        found = _SLOG_LEVEL.search(line)
        if found:
            level = _LEVELS[found.group(1)]
    elif _PROBE_LINE.match(line):
        level = "debug"
    getattr(ollama_log, level)("ollama.output", stream=stream, line=line)


async def drain(
    stream: ByteReceiveStream, name: str, on_stderr: Callable[[str], None] | None = None
) -> None:
    """Read ``stream`` to EOF, logging each line; ``on_stderr`` sees each stderr line."""
    buffer = b""
    try:
        async for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                emit(name, line[:_MAX_LINE], on_stderr)
            if len(buffer) > _MAX_LINE:
                emit(name, buffer[:_MAX_LINE], on_stderr)
                buffer = b""
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    if buffer:
        emit(name, buffer, on_stderr)
