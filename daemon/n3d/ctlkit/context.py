"""The :class:`Context` every n3ctl command gets: options, streams, style, clock, connection."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from n3d.client import Connection
from n3d.ctlkit.fmt import Style

# typing costs n3ctl status ~2 ms to import; the hints need it only for checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TextIO

__all__ = ["Context"]


class Context:
    """What every command needs: parsed options, streams, styles and the clock.

    (A plain class, not a dataclass: importing dataclasses costs `status` time.)
    """

    def __init__(
        self,
        args: Any,
        out: TextIO,
        err: TextIO,
        style: Style,
        *,
        err_tty: bool = False,
        socket: Path | str | None = None,
        timeout: float | None = 5.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.args, self.out, self.err, self.style = args, out, err, style
        self.err_tty, self.socket, self.timeout, self.now = err_tty, socket, timeout, now

    def connect(self, timeout: float | None = None) -> Connection:
        return Connection(self.socket, timeout=self.timeout if timeout is None else timeout)

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        with self.connect() as conn:
            return conn.call(method, params)

    def emit(self, result: Any, human: Callable[[], str]) -> None:
        """Print ``result`` as JSON with ``--json``, else the text ``human()`` returns."""
        if self.args.json:
            self.out.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
        else:
            text = human()
            self.out.write(text + "\n" if text else "")

    def json_line(self, value: Any) -> None:
        self.out.write(json.dumps(value, sort_keys=True) + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        self.err.write(f"n3ctl: {text}\n")
