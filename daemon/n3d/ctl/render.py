"""The human form of `status`, `health`, `version` and `events` results; pure functions.

Every renderer takes the RPC result as a plain dict and ``now`` (epoch seconds)
and a :class:`~n3d.ctl.fmt.Style`, and returns text without a final newline.
Missing or oddly typed fields render as ``-`` rather than raising: n3ctl must
show what it can of a daemon that is older or newer than itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from n3d.ctl.checks import check_lines, inference_lines
from n3d.ctl.fmt import Style, as_dict, as_number, human_bytes, human_duration, local_time, names

# typing costs n3ctl status ~2 ms to import; the hints need it only for checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DOWN_STATES",
    "UP_STATES",
    "render_event",
    "render_health",
    "render_status",
    "render_version",
    "status_exit_code",
]

# `n3ctl status` exit codes follow LSB/systemctl: 0 up, 3 not running, 4 unknown.
# Up means a server process runs (ours or adopted) and n3d has not given up on it.
UP_STATES = frozenset({"running", "degraded", "external"})
DOWN_STATES = frozenset({"stopped", "starting", "stopping", "backoff", "fatal", "unreachable"})

_DOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "running": ("●", ("green",)),
    "external": ("●", ("green",)),
    "degraded": ("●", ("yellow",)),
    "starting": ("●", ("yellow",)),
    "stopping": ("●", ("yellow",)),
    "backoff": ("●", ("yellow",)),
    "fatal": ("×", ("red",)),
    "unreachable": ("×", ("red",)),
    "stopped": ("○", ()),
}


def status_exit_code(result: Mapping[str, Any]) -> int:
    """0 when the server is up, 3 when it is not running, 4 when its state is unknown.

    With several servers (``servers``), every one counts: 0 only when all are up, 3
    when one is not running, else 4.
    """
    blocks = [as_dict(b) for b in result.get("servers") or ()]
    states = [b.get("state") for b in blocks] or [as_dict(result.get("server")).get("state")]
    if all(state in UP_STATES for state in states):
        return 0
    if any(state in DOWN_STATES for state in states):
        return 3
    return 4


def _count_and_names(value: Any) -> tuple[int | None, list[str]]:
    """``models.installed`` and friends may be a count or a list of names."""
    if isinstance(value, list):
        found = names(value)
        return len(value), found
    number = as_number(value)
    return (int(number) if number is not None else None), []


# Up to this many models are named on the Models and Warm lines (as `systemctl
# status` names a unit's few processes); more are counted.
_FEW = 4


def _models_lines(models: dict[str, Any]) -> list[str]:
    """``Models: 3 installed; 1 loaded: llama3:8b`` and ``Warm: llama3:8b (loaded), qwen2``:
    names when there are few (``loaded_names``, ``warm_names``; an older daemon sent
    the names in place of the counts, or counts alone), else counts."""
    installed, _ = _count_and_names(models.get("installed"))
    loaded_n, loaded = _count_and_names(models.get("loaded"))
    warm_n, warm = _count_and_names(models.get("warm"))
    loaded = names(models.get("loaded_names")) or loaded
    warm = names(models.get("warm_names")) or warm
    parts = [f"{installed if installed is not None else '-'} installed"]
    loaded_text = f"{loaded_n if loaded_n is not None else '-'} loaded"
    if loaded and len(loaded) <= _FEW:
        loaded_text += ": " + ", ".join(loaded)
    parts.append(loaded_text)
    lines = [f"     Models: {'; '.join(parts)}"]
    if warm and len(warm) <= _FEW:
        marked = [f"{name} (loaded)" if name in loaded else name for name in warm]
        lines.append(f"       Warm: {', '.join(marked)}")
    elif warm:
        lines.append(f"       Warm: {len(warm)}, {sum(n in loaded for n in warm)} loaded")
    else:
        lines.append(f"       Warm: {warm_n if warm_n else 'none'}")
    return lines


def _health_summary(health: dict[str, Any], now: float) -> str:
    if not health or health.get("ok") is None:
        return "not checked yet"
    latency = as_number(health.get("latency_ms"))
    age = as_number(health.get("age_s"))
    if age is None and as_number(health.get("checked_at")) is not None:
        age = now - float(health["checked_at"])
    checked = f"checked {human_duration(age)} ago" if age is not None else "checked -"
    if health.get("ok"):
        took = f"{latency:.0f} ms" if latency is not None else "- ms"
        return f"ok, {took}, {checked}"
    return f"failing: {health.get('error') or 'no answer'}, {checked}"


def render_status(
    result: Mapping[str, Any],
    *,
    now: float,
    style: Style,
    clock: Callable[[float], time.struct_time] = time.localtime,
) -> str:
    """``systemctl status``-like text: state dot, Active/since, pid, health, memory, models.

    With several servers, one such block per server (headed by its name), then the
    daemon's line once.
    """
    daemon = as_dict(result.get("daemon"))
    several = result.get("servers")
    if not isinstance(several, list) or len(several) < 2:
        lines = _server_lines(
            as_dict(result.get("server")),
            as_dict(result.get("health")),
            as_dict(result.get("resources")),
            as_dict(result.get("models")),
            None,
            now=now,
            style=style,
            clock=clock,
        )
    else:
        from n3d.ctl.servers import server_blocks  # only with several: not on the hot path

        lines = []
        for block in server_blocks(result):
            lines += _server_lines(
                block,
                as_dict(block.get("health")),
                as_dict(block.get("resources")),
                as_dict(block.get("models")),
                str(block.get("name") or "-"),
                now=now,
                style=style,
                clock=clock,
            )
            lines.append("")
    uptime = as_number(daemon.get("uptime_s"))
    lines.append(
        f"     Daemon: n3d {daemon.get('version') or '-'}, pid {daemon.get('pid') or '-'}, "
        f"up {human_duration(uptime)}, socket {daemon.get('socket') or '-'}"
    )
    return "\n".join(lines)


def _server_lines(
    server: dict[str, Any],
    health: dict[str, Any],
    resources: dict[str, Any],
    models: dict[str, Any],
    name: str | None,
    *,
    now: float,
    style: Style,
    clock: Callable[[float], time.struct_time],
) -> list[str]:
    """One server's block; ``name`` None: the only server (the heading as it always was)."""
    state = str(server.get("state") or "unknown")
    dot, colors = _DOTS.get(state, ("?", ("yellow",)))
    heading = "ollama - the Ollama server under n3d" if name is None else f"ollama {name}"
    lines = [f"{style(dot, *colors)} {heading}"]

    since = as_number(server.get("since"))
    active = f"{style(state, *colors, 'bold')} ({server.get('mode') or '-'})"
    if since is not None:
        active += f" since {local_time(since, clock)}; {human_duration(now - since)} ago"
    backoff = as_number(server.get("next_start_in_s"))
    if state == "backoff" and backoff is not None:
        active += f" (next start in {human_duration(backoff)})"
    lines.append(f"     Active: {active}")
    if state not in ("running", "external", "stopped") and (
        server.get("last_error") or server.get("reason")
    ):
        lines.append(f"     Reason: {server.get('last_error') or server.get('reason')}")

    restarts = as_number(server.get("restarts"))
    pid_line = f"        PID: {server.get('pid') or '-'}"
    if restarts is not None:
        pid_line += f", {int(restarts)} restart{'' if restarts == 1 else 's'}"
    if server.get("last_exit"):
        pid_line += f", last exit: {server['last_exit']}"
    lines.append(pid_line)
    version = f", Ollama {server['version']}" if server.get("version") else ""
    lines.append(f"     Server: {server.get('base_url') or '-'}{version}")
    lines.append(f"     Health: {_health_summary(health, now)}")
    lines.extend(inference_lines(health, style=style))

    rss, procs = as_number(resources.get("rss_bytes")), as_number(resources.get("processes"))
    memory = human_bytes(rss) if rss is not None else "-"
    if procs:
        memory += f" in {int(procs)} process{'' if procs == 1 else 'es'}"
    cpu = as_number(resources.get("cpu_percent"))
    if cpu is not None:
        memory += f", CPU {cpu:.1f}%"
    lines.append(f"     Memory: {memory}")
    lines.extend(_models_lines(models))
    return lines


def render_health(result: Mapping[str, Any], *, now: float, style: Style) -> str:
    """``ok: Ollama 0.5.7 answered in 12 ms (checked 0s ago)`` or why it failed; then,
    from a daemon with liveness, a line per check and per loaded model."""
    summary = _health_line(result, style=style)
    return "\n".join([summary, *check_lines(result.get("checks"), style=style)])


def _health_line(result: Mapping[str, Any], *, style: Style) -> str:
    health = dict(result)
    latency = as_number(health.get("latency_ms"))
    age = as_number(health.get("age_s"))
    fresh = "cached" if health.get("cached") else "fresh"
    when = f"checked {human_duration(age)} ago, {fresh}" if age is not None else fresh
    if health.get("ok"):
        version = f"Ollama {health['version']}" if health.get("version") else "Ollama"
        took = f"{latency:.0f} ms" if latency is not None else "- ms"
        return f"{style('ok', 'green')}: {version} answered in {took} ({when})"
    reason = health.get("error") or "no answer"
    return f"{style('failing', 'red')}: {reason} ({when})"


def render_version(client_version: str, daemon: Mapping[str, Any] | None) -> str:
    """``n3ctl 0.1.0`` and, when reachable, ``n3d 0.1.0 (pid 1, socket PATH)``."""
    lines = [f"n3ctl {client_version}"]
    if daemon is not None:
        lines.append(
            f"n3d {daemon.get('version') or '-'} (pid {daemon.get('pid') or '-'}, "
            f"socket {daemon.get('socket') or '-'})"
        )
    return "\n".join(lines)


def _field(value: Any) -> str:
    """Strings bare (quoted when they hold spaces), everything else as JSON (true, null)."""
    if isinstance(value, str):
        return f'"{value}"' if (" " in value or not value) else value
    import json  # already loaded by n3d.client; imported here to keep the top lean

    return json.dumps(value, separators=(",", ":"), default=str)


def render_event(
    params: Mapping[str, Any],
    *,
    now: float,
    style: Style,
    clock: Callable[[float], time.struct_time] = time.localtime,
) -> str:
    """``14:38:31 server.state from=starting to=running reason="first health check"``."""
    stamp = as_number(params.get("at")) or as_number(params.get("timestamp")) or now
    topic = str(params.get("topic") or "event")
    fields = " ".join(
        f"{key}={_field(value)}"
        for key, value in params.items()
        if key not in ("topic", "at", "timestamp")
    )
    head = f"{time.strftime('%H:%M:%S', clock(stamp))} {style(topic, 'cyan')}"
    return f"{head} {fields}".rstrip()
