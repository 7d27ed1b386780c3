"""The :class:`Context` every n3ctl command gets: options, streams, style, clock, connection."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from n3d.client import Connection
from n3d.ctl.fmt import Style, printable, printable_tree

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
        """``method``'s result, as :meth:`shown` (ready for the renderers)."""
        with self.connect() as conn:
            return self.shown(conn.call(method, params))

    def on_server(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with ``server`` when ``--server`` was given (else the daemon's default)."""
        name = getattr(self.args, "server", None)
        return params if name is None else {**params, "server": name}

    def shown(self, result: Any) -> Any:
        """``result`` for printing: exact with ``--json``, else every string made printable.

        Results carry Ollama's text (versions, names, errors), which must not reach
        a terminal as escape sequences; cleaning them where they enter the human
        path covers every renderer at once, and JSON stays byte-exact.
        """
        return result if self.args.json else printable_tree(result)

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
        self.err.write(f"n3ctl: {printable(text)}\n")
