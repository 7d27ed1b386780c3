"""Ollama's two log streams: slog text on stderr, gin access lines on stdout.

Both are written synchronously and flushed per line, like Go's unbuffered
`os.Stderr`/`os.Stdout`: a supervisor that never drains its child's pipes will see
the simulator block once a pipe fills, exactly as it would block `ollama serve`.
"""

from __future__ import annotations

import re
import sys
import time

from n3d.sim.wire import go_duration, slog_time

__all__ = ["gin_access", "gin_debug", "slog"]

_BARE = re.compile(r"^[^\s\"=\\]+$")


def _value(value: object) -> str:
    """A slog text value: bare when it has no spaces, quotes or `=`, else Go-quoted."""
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if text and _BARE.match(text) and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def slog(level: str, source: str, msg: str, **attrs: object) -> None:
    """One slog text line on stderr: `time=... level=INFO source=routes.go:N msg=...`."""
    parts = [f"time={slog_time()}", f"level={level}", f"source={source}", f"msg={_value(msg)}"]
    parts.extend(f"{key}={_value(value)}" for key, value in attrs.items())
    try:
        sys.stderr.write(" ".join(parts) + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stderr any more; Go ignores write errors here too


def gin_access(status: int, latency_s: float, client_ip: str, method: str, path: str) -> None:
    """One gin access line on stdout, as gin's default formatter writes it without colour."""
    stamp = time.strftime("%Y/%m/%d - %H:%M:%S")
    line = (
        f"[GIN] {stamp} | {status:3d} | {go_duration(latency_s):>13} | {client_ip:>15} |"
        f" {method:<7}  {_go_string(path)}\n"
    )
    _stdout(line)


def gin_debug(line: str) -> None:
    """A `[GIN-debug]` line on stdout (gin prints these at startup in debug mode)."""
    _stdout(f"[GIN-debug] {line}\n")


def _go_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stdout(line: str) -> None:
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
