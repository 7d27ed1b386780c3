"""The long and streaming commands: `pull` (progress, Ctrl-C) and `events` (follow).

`ensure --pull` shares the progress handling and the wait: a download has no
overall time limit, since the daemon itself ends a pull that stalls for
`pull_timeout`; an explicit ``--timeout`` bounds each wait between two messages.
With ``--json`` both streams print JSON Lines: `pull` one line per ``$/progress``
value then the result, `events` one line per event (`ensure --pull --json` prints
only its result document).
"""

from __future__ import annotations

import time

from n3d.client import Connection
from n3d.ctl.context import Context
from n3d.ctl.fmt import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["events", "pull", "with_progress"]


def with_progress(ctx: Context, method: str, params: dict[str, Any], model: str) -> Any:
    """Call a long method showing its `$/progress`; Ctrl-C cancels the wait, not the work.

    Waits as long as the download runs unless ``--timeout`` was given (`pull` and
    `ensure --pull` alike; a fixed limit would walk away from a big download and,
    being the last waiter, make the daemon abandon it). On Ctrl-C the connection
    sends ``$/cancelRequest`` for the call (:meth:`n3d.client.Connection.call`).
    """
    from n3d.ctl.progress import PullProgress

    streaming = ctx.args.json and ctx.args.command == "pull"
    view = PullProgress(tty=ctx.err_tty, width=_terminal_width(ctx.err))

    def on_progress(value: dict[str, Any]) -> None:
        if streaming:
            ctx.json_line(value)
        elif not ctx.args.json:
            ctx.err.write(view.update(ctx.shown(value), time.monotonic()))
            ctx.err.flush()

    conn = Connection(ctx.socket, timeout=ctx.timeout if ctx.args.timeout is not None else None)
    try:
        return conn.call(method, params, progress=on_progress)
    except KeyboardInterrupt:
        # The daemon shares one download among all callers, so cancelling our
        # request only ends our wait; the download itself may well go on.
        ctx.err.write(view.close())
        ctx.say(
            f"stopped waiting for {model}; the download may continue in the daemon "
            "(check with: n3ctl models)"
        )
        raise
    finally:
        conn.close()
        ctx.err.write(view.close())


def _terminal_width(stream: TextIO) -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns if stream.isatty() else 80


def pull(ctx: Context) -> int:
    model = ctx.args.model
    result = with_progress(ctx, "models.pull", ctx.on_server({"model": model}), model)
    if ctx.args.json:
        ctx.json_line(result)
    else:
        took = result.get("duration_s") if isinstance(result, dict) else None
        extra = f" in {took:.1f}s" if isinstance(took, int | float) else ""
        ctx.out.write(f"pulled {printable(model)}{extra}\n")
    return 0


def events(ctx: Context) -> int:
    """Follow `event` notifications until Ctrl-C (exit 0) or the daemon goes (69)."""
    from n3d.ctl.render import render_event

    topics = ctx.args.topic
    with ctx.connect(timeout=ctx.timeout) as conn:
        subscribed = conn.call("events.subscribe", {"topics": topics} if topics else {})
        # On stderr (stdout is data): from this line on, no event is missed.
        following = subscribed.get("topics") if isinstance(subscribed, dict) else None
        ctx.say(f"following {', '.join(following or ['all events'])} (Ctrl-C to stop)")
        ctx.err.flush()
        try:
            for method, params in conn.notifications():
                if method != "event" or not isinstance(params, dict):
                    continue
                if ctx.args.json:
                    ctx.json_line(params)
                else:
                    shown = ctx.shown(params)
                    ctx.out.write(render_event(shown, now=ctx.now(), style=ctx.style) + "\n")
                    ctx.out.flush()
        except KeyboardInterrupt:
            return 0
    return 0  # pragma: no cover - notifications() only ends by raising
