"""The `pull` progress display: a redrawn bar on a TTY, plain lines otherwise.

:class:`PullProgress` is fed the ``value`` of each ``$/progress`` notification
(``kind`` begin/report/end, and for pulls Ollama's ``status``, ``digest``,
``total``, ``completed``) with the time it arrived, and returns the text to
write to stderr; it does no I/O itself, so tests feed it fixed inputs.

- Steps without a layer (``pulling manifest``, ``verifying sha256 digest``,
  ``writing manifest``) print once each, as they change.
- On a TTY one bar line is redrawn in place (``\\r`` and erase-line), at most
  every ``redraw_s``: current layer, overall percent, bytes, speed. A finished
  layer leaves a permanent ``✓ <id>  <size>`` line above the bar.
- Otherwise a line per layer each time it crosses another 10 %, so logs of a
  large pull stay short.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from n3d.ctl.fmt import human_bytes

__all__ = ["PullProgress"]

_ERASE = "\r\x1b[K"
_SPEED_WINDOW_S = 5.0  # speed is averaged over this much recent history


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class PullProgress:
    """Renders one pull's progress for a TTY (``tty=True``) or as plain lines."""

    def __init__(self, *, tty: bool, width: int = 80, redraw_s: float = 0.1) -> None:
        self.tty = tty
        self.width = max(40, width)
        self.redraw_s = redraw_s
        self._layers: dict[str, list[int]] = {}  # digest → [total, completed]
        self._done: set[str] = set()
        self._steps_seen: list[str] = []
        self._plain_decile: dict[str, int] = {}
        self._samples: deque[tuple[float, int]] = deque()
        self._bar_shown = False
        self._last_draw = float("-inf")
        self._current = ""

    def _totals(self) -> tuple[int, int]:
        total = sum(t for t, _ in self._layers.values())
        done = sum(min(c, t) if t else c for t, c in self._layers.values())
        return total, done

    def speed(self) -> float | None:
        """Bytes per second over the last few seconds; None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def _record(self, now: float) -> None:
        _, done = self._totals()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > _SPEED_WINDOW_S:
            self._samples.popleft()

    def bar(self) -> str:
        """The current bar line (without control codes)."""
        total, done = self._totals()
        pct = 100 * done / total if total else 0.0
        speed = self.speed()
        tail = f" {pct:3.0f}%  {human_bytes(done)}/{human_bytes(total)}"
        if speed is not None:
            tail += f"  {human_bytes(speed)}/s"
        left = f"{self._current[:24]:<24} "
        slots = max(10, self.width - len(left) - len(tail) - 3)
        filled = int(slots * done / total) if total else 0
        return f"{left}[{'#' * filled}{'.' * (slots - filled)}]{tail}"

    def _permanent(self, text: str) -> str:
        """A line that stays: on a TTY it first erases the bar, which is redrawn later."""
        if self.tty and self._bar_shown:
            self._bar_shown = False
            return f"{_ERASE}{text}\n"
        return f"{text}\n"

    def update(self, value: Mapping[str, Any], now: float) -> str:
        """Feed one progress value received at ``now`` (seconds); returns text to write."""
        out: list[str] = []
        kind = value.get("kind")
        status = value.get("status") or value.get("message") or value.get("title")
        digest = value.get("digest")
        title = value.get("title")
        if kind == "begin" and isinstance(title, str) and title and title != status:
            out.append(self._permanent(title))
        if kind == "end" and status == "success":
            out.append(self._finish_layers(now))
        if isinstance(digest, str) and digest:
            layer = self._layers.setdefault(digest, [0, 0])
            layer[0] = _int(value.get("total")) or layer[0]
            layer[1] = _int(value.get("completed")) or layer[1]
            self._current = str(status or f"pulling {_short(digest)}")
            self._record(now)
            out.append(self._layer_text(digest, now))
        elif isinstance(status, str) and status and status not in self._steps_seen:
            self._steps_seen.append(status)
            percentage = _int(value.get("percentage"))
            suffix = f" ({percentage}%)" if percentage is not None and kind == "report" else ""
            out.append(self._permanent(f"{status}{suffix}"))
        if kind == "end":
            out.append(self.close())
        return "".join(out)

    def _finish_layers(self, now: float) -> str:
        """Success: every layer is complete, though coalesced progress may not have said so."""
        out = []
        for digest, layer in self._layers.items():
            if layer[0] and digest not in self._done:
                layer[1] = layer[0]
                out.append(self._layer_text(digest, now))
        return "".join(out)

    def _layer_text(self, digest: str, now: float) -> str:
        total, completed = self._layers[digest]
        finished = total > 0 and completed >= total
        if finished and digest not in self._done:
            self._done.add(digest)
            text = self._permanent(f"✓ {_short(digest)}  {human_bytes(total)}")
            return text + (self._draw(now, force=True) if self.tty else "")
        if self.tty:
            return self._draw(now)
        if not total or finished:
            return ""
        decile = int(10 * completed / total)
        if decile <= self._plain_decile.get(digest, -1):
            return ""
        self._plain_decile[digest] = decile
        speed = self.speed()
        rate = f", {human_bytes(speed)}/s" if speed is not None else ""
        return (
            f"pulling {_short(digest)}: {decile * 10}% "
            f"({human_bytes(completed)}/{human_bytes(total)}{rate})\n"
        )

    def _draw(self, now: float, *, force: bool = False) -> str:
        if not force and now - self._last_draw < self.redraw_s:
            return ""
        self._last_draw = now
        self._bar_shown = True
        return f"{_ERASE}{self.bar()}"

    def close(self) -> str:
        """Erase the bar (on a TTY) so what follows starts on a clean line."""
        if self.tty and self._bar_shown:
            self._bar_shown = False
            return _ERASE
        return ""
