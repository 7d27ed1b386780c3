"""The only place structlog is configured (at start, and again on a reload).

Every module does ``log = structlog.get_logger(__name__)``; the name becomes the
``logger`` field. Output is one JSON object per line on stdout (``timestamp`` ISO
8601 UTC with ``Z``, ``level`` lowercase, ``logger``, ``event``, then fields), or
structlog's console rendering on a TTY. Each line is written with a single
``write`` and flushed, so lines are never split or interleaved, and exceptions are
structured fields (``exception``), never extra lines.

Metrics are logged through this configuration too: :mod:`n3d.metrics`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = [
    "LogFormat",
    "configure_logging",
    "reconfigure_logging",
]

LogFormat = Literal["auto", "json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was created for (the `logger` field)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedLoggerFactory:
    """Makes the loggers; also remembers how :func:`configure_logging` was called."""

    def __init__(self, file: TextIO | None, forced_format: LogFormat | None = None) -> None:
        self.file = file
        self.forced_format = forced_format  # `n3d run --log-format`: wins over [log]

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = str(args[0]) if args else "n3d"
        return _NamedWriteLogger(self.file or sys.stdout, name)


def _add_logger_name(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.setdefault("logger", getattr(logger, "name", "n3d"))
    return event_dict


_exception_as_fields = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)

_FIRST = ("timestamp", "level", "logger", "event")


def _order_keys(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    ordered = {k: event_dict[k] for k in _FIRST if k in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


def _finite(obj: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by strings, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    try:
        return json.dumps(
            obj, default=str, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError:  # NaN/inf somewhere: every line must stay valid JSON
        return json.dumps(_finite(obj), default=str, ensure_ascii=False, separators=(",", ":"))


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "info",
    *,
    file: TextIO | None = None,
    force_format: LogFormat | None = None,
) -> None:
    """Configure structlog for the whole process.

    ``auto`` renders for humans when the output is a TTY and as JSON lines
    otherwise (systemd, launchd, pipes). Colour also needs NO_COLOR unset.
    ``force_format`` (`n3d run --log-format`) wins over ``fmt``, now and at every
    :func:`reconfigure_logging`.
    """
    _apply(_NamedLoggerFactory(file, force_format), force_format or fmt, level)


def reconfigure_logging(fmt: LogFormat, level: str) -> bool:
    """Apply a reloaded `[log]` section: same output, the new level and format.

    Only a configuration made by :func:`configure_logging` and still in place is
    changed (a format forced on the command line stays); otherwise (n3d used as a
    library, tests capturing logs) structlog is left alone and this returns False.
    """
    factory = structlog.get_config().get("logger_factory")
    if not isinstance(factory, _NamedLoggerFactory):
        return False
    _apply(factory, factory.forced_format or fmt, level)
    return True


def _apply(factory: _NamedLoggerFactory, fmt: LogFormat, level: str) -> None:
    out = factory.file or sys.stdout
    is_tty = hasattr(out, "isatty") and out.isatty()
    use_json = fmt == "json" or (fmt == "auto" and not is_tty)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        # Fixed width (isoformat drops the microseconds on a whole second).
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", utc=True),
    ]
    renderer: Any
    if use_json:
        shared += [_exception_as_fields, _order_keys]
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
    else:
        colors = is_tty and not os.environ.get("NO_COLOR")
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=factory,
        # Not cached: tests reconfigure (capture_logs), a reload changes the level,
        # and module loggers must follow both.
        cache_logger_on_first_use=False,
    )
