"""One function per n3ctl command: call the daemon, print the result, return the exit code.

Data goes to ``ctx.out`` (stdout), messages and progress to ``ctx.err``
(stderr). With ``--json`` a command prints the RPC result as one JSON document
(keys sorted, so the text is stable); the streams `pull` and `events` (in
:mod:`~n3d.ctl.streams`) print JSON Lines. Errors are not handled here:
:func:`n3d.ctl.main` turns :class:`~n3d.client.RpcError` and
:class:`~n3d.client.DaemonUnreachable` into messages and exit codes. Modules that
only some commands need (progress, tables) are imported inside those
commands to keep `status` fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from n3d import __version__
from n3d.client import DaemonUnreachable
from n3d.ctl.context import Context
from n3d.ctl.fmt import printable
from n3d.ctl.streams import events, pull, with_progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["COMMANDS"]


def status(ctx: Context) -> int:
    from n3d.ctl.render import render_status, status_exit_code

    result = ctx.call("status")
    name = getattr(ctx.args, "server", None)  # the fast path has no --server
    if name is not None and isinstance(result, dict):
        from n3d.ctl.servers import one_server, server_blocks

        picked = one_server(result, name)
        if picked is None:
            known = ", ".join(str(b.get("name")) for b in server_blocks(result))
            ctx.say(f"no server named {name!r} (servers: {known})")
            return 1
        result = picked
    ctx.emit(result, lambda: render_status(result, now=ctx.now(), style=ctx.style))
    return status_exit_code(result if isinstance(result, dict) else {})


def health(ctx: Context) -> int:
    from n3d.ctl.render import render_health

    result = ctx.call("health", ctx.on_server({"force": True} if ctx.args.force else {}))
    ctx.emit(result, lambda: render_health(result, now=ctx.now(), style=ctx.style))
    return 0 if isinstance(result, dict) and result.get("ok") else 1


def models(ctx: Context) -> int:
    """Every server's models (a SERVER column when there are several), or ``--server``'s."""
    from n3d.ctl.tables import render_loaded, render_models

    if ctx.args.loaded:
        result = ctx.call("models.loaded", ctx.on_server({}))
        ctx.emit(result, lambda: render_loaded(result, now=ctx.now(), style=ctx.style))
    else:
        params = ctx.on_server({"refresh": True} if ctx.args.refresh else {})
        result = ctx.call("models.list", params)
        ctx.emit(result, lambda: render_models(result, now=ctx.now(), style=ctx.style))
    return 0


def rm(ctx: Context) -> int:
    result = ctx.call("models.delete", ctx.on_server({"model": ctx.args.model}))
    deleted = isinstance(result, dict) and bool(result.get("deleted"))
    ctx.emit(result, lambda: f"deleted {printable(ctx.args.model)}" if deleted else "")
    if not deleted and not ctx.args.json:
        ctx.say(f"{ctx.args.model} was not deleted")
    return 0 if deleted else 1


def ensure(ctx: Context) -> int:
    model = ctx.args.model
    params: dict[str, Any] = {"model": model}
    if ctx.args.pull:
        params["pull"] = True
    # Even without --pull the daemon may pull (auto_pull_model): wait like `pull`.
    result = with_progress(ctx, "models.ensure", params, model)
    r = ctx.shown(result) if isinstance(result, dict) else {}
    state = "available" if r.get("available") else "not available"
    pulled = " (pulled now)" if r.get("pulled") else ""
    ctx.emit(result, lambda: f"{r.get('model') or printable(model)}: {state}{pulled}")
    if not r.get("available") and not ctx.args.json:
        ctx.say(f"pull it with: n3ctl pull {model}  (or: n3ctl ensure --pull {model})")
    return 0 if r.get("available") else 1


def validate(ctx: Context) -> int:
    result = ctx.call("models.validate", {"model": ctx.args.model})
    r = result if isinstance(result, dict) else {}

    def human() -> str:
        if r.get("valid"):
            return f"valid: {r.get('normalized') or printable(ctx.args.model)}"
        return f"invalid: {r.get('message') or printable(ctx.args.model)}"

    ctx.emit(result, human)
    return 0 if r.get("valid") else 1


def _keep_alive_value(text: str) -> str | int | float:
    """`300` and `-1` are seconds (sent as JSON numbers, as Ollama reads them);
    anything else (`"24h"`, `"-1s"`) is sent as the duration string it is."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def warm(ctx: Context) -> int:
    """The warm list after the action: every server's (a SERVER column when there are
    several), or ``--server``'s; `add` answers with the list of the server it went to."""
    from n3d.ctl.tables import render_warm

    action = ctx.args.warm_action or "list"
    if action == "add":
        params: dict[str, Any] = {"model": ctx.args.model}
        if ctx.args.keep_alive is not None:
            params["keep_alive"] = _keep_alive_value(ctx.args.keep_alive)
        result = ctx.call("warm.add", ctx.on_server(params))
    elif action == "rm":
        result = ctx.call("warm.remove", ctx.on_server({"model": ctx.args.model}))
    else:
        result = ctx.call("warm.list", ctx.on_server({}))
    ctx.emit(result, lambda: render_warm(result, now=ctx.now(), style=ctx.style))
    return 0


def server(ctx: Context) -> int:
    """`start`/`restart` exit 0 only once the server is up; `stop` reports the state it reached.

    `server.start` answers once its attempt has an outcome, but at once (``starting``)
    when a start was already under way, and within its own bound: n3ctl waits out
    ``starting``/``stopping`` by polling `status`, until ``--timeout`` (default 90 s,
    120 s for restart) has passed since the command began.
    """
    from n3d.ctl.render import UP_STATES
    from n3d.ctl.servers import one_server

    command = ctx.args.command
    name = getattr(ctx.args, "server", None)
    deadline = time.monotonic() + ctx.timeout if ctx.timeout else float("inf")
    with ctx.connect() as conn:
        result = conn.call(f"server.{command}", {"server": name} if name is not None else None)
        while (
            command != "stop"
            and _state_of(result) in _SETTLING
            and time.monotonic() + _POLL_S < deadline
        ):
            time.sleep(_POLL_S)
            found = conn.call("status")
            if name is not None and isinstance(found, dict):
                found = one_server(found, name)
            server = found.get("server") if isinstance(found, dict) else None
            if isinstance(server, dict):
                result = {"state": server.get("state"), "server": server}
    shown = ctx.shown(result)
    state = _state_of(shown)
    label = "ollama" if name is None else f"ollama {name}"
    ctx.emit(result, lambda: f"{label}: {state or 'unknown'}")
    if command == "stop" or state in UP_STATES:
        return 0
    if not ctx.args.json:
        ctx.say(_not_up(shown, state, ctx.timeout))
    return 1


_SETTLING = ("starting", "stopping")
_POLL_S = 0.1


def _state_of(result: Any) -> str | None:
    state = result.get("state") if isinstance(result, dict) else None
    return state if isinstance(state, str) else None


def _not_up(result: dict[str, Any], state: str | None, timeout: float | None) -> str:
    """Why `start`/`restart` did not leave the server up, and what comes next."""
    from n3d.ctl.fmt import human_duration

    found = result.get("server")
    server: dict[str, Any] = found if isinstance(found, dict) else {}
    why = server.get("last_error") or server.get("reason") or "no reason given"
    if state in _SETTLING:
        return (
            f"ollama is still {state} after {timeout or 0:g} s; "
            "check with: n3ctl status (or wait longer with --timeout)"
        )
    if state == "backoff":
        retry = server.get("next_start_in_s")
        when = ""
        if isinstance(retry, int | float):
            when = f" in {human_duration(retry)}" if retry >= 1 else f" in {retry:.2g}s"
        return (
            f"ollama did not start: {why}; n3d tries again{when} "
            "(follow with: n3ctl events --topic server.state)"
        )
    if state == "fatal":
        return (
            f"ollama did not start: {why}; n3d gave up after repeated failures: "
            "fix the cause, then run: n3ctl start"
        )
    return f"ollama is {state or 'in an unknown state'}: {why}"


def metrics(ctx: Context) -> int:
    if ctx.args.prometheus:
        # Rendered once, in the daemon: the same text as GET /metrics on the proxy.
        exposition = ctx.call("metrics.prometheus")
        text = exposition.get("text") if isinstance(exposition, dict) else None
        lines = text.split("\n") if isinstance(text, str) else []
        # Label values are Ollama's words (model names): no control character
        # reaches the terminal, as everywhere in n3ctl (the text escapes newlines).
        ctx.out.write("\n".join(printable(line) for line in lines))
        return 0
    result = ctx.call("metrics")
    r = result if isinstance(result, dict) else {}
    from n3d.ctl.tables import render_metrics

    ctx.emit(result, lambda: render_metrics(r, style=ctx.style))
    return 0


def requests(ctx: Context) -> int:
    """The proxy's requests in flight; ``--cancel ID`` ends one (exit 1: no such request)."""
    from n3d.ctl.tables import render_requests

    if ctx.args.cancel:
        result = ctx.call("requests.cancel", {"id": ctx.args.cancel})
        ctx.emit(result, lambda: f"cancelled {ctx.args.cancel}")
        return 0
    result = ctx.call("requests.list")
    r = result if isinstance(result, dict) else {}
    ctx.emit(result, lambda: render_requests(r, style=ctx.style))
    return 0


def version(ctx: Context) -> int:
    """The client's version, and the daemon's when it answers (unreachable is not an error)."""
    from n3d.ctl.render import render_version

    daemon: dict[str, Any] | None = None
    try:
        result = ctx.call("status")
        found = result.get("daemon") if isinstance(result, dict) else None
        daemon = found if isinstance(found, dict) else {}
    except DaemonUnreachable as exc:
        if not ctx.args.json:
            ctx.say(f"n3d is not reachable at {exc.path} ({exc.reason})")
    document = {"n3ctl": {"version": __version__}, "n3d": daemon}
    ctx.emit(document, lambda: render_version(__version__, daemon))
    return 0


COMMANDS: dict[str, Callable[[Context], int]] = {
    "status": status,
    "health": health,
    "models": models,
    "pull": pull,
    "rm": rm,
    "ensure": ensure,
    "validate": validate,
    "warm": warm,
    "start": server,
    "stop": server,
    "restart": server,
    "metrics": metrics,
    "requests": requests,
    "events": events,
    "version": version,
}
