"""Inference against a simulator under a :class:`~n3d.testing.DaemonProcess`, from outside.

What tests, ``bench/liveness.py`` and the drill share when they judge liveness: a
generation sent straight to the simulator (as any client of Ollama would), the
runners serve has now (pid by model blob), the probes n3d sent (from the
simulator's request log, which records each body) and the repair steps it logged.
Standard library plus :mod:`n3d.supervisor.runners`; never imported by the daemon.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from n3d.supervisor.runners import find_runners

if TYPE_CHECKING:
    from n3d.testing.daemon import DaemonProcess

__all__ = ["answers", "generate", "is_probe", "probes", "repairs", "runner_pids"]


def generate(
    port: int,
    model: str,
    *,
    prompt: str = "hello",
    timeout_s: float = 10.0,
    **fields: Any,
) -> dict[str, Any]:
    """`POST /api/generate` (``stream: false``) to the simulator; its answer. Raises
    OSError (a timeout included) or urllib's HTTPError for an error status."""
    body = {"model": model, "prompt": prompt, "stream": False, **fields}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/generate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def answers(port: int, model: str, timeout_s: float = 5.0) -> bool:
    """True when a short generation of ``model`` completes within ``timeout_s``."""
    try:
        return bool(
            generate(port, model, timeout_s=timeout_s, options={"num_predict": 2}).get("done")
        )
    except (OSError, urllib.error.HTTPError, ValueError):
        return False


def runner_pids(serve_pid: int) -> dict[str, int]:
    """serve's runners now: pid by ``--model`` blob path."""
    return {path: runner.pid for path, runner in find_runners(serve_pid).items()}


def is_probe(entry: dict[str, Any]) -> bool:
    """A request log entry that is one of n3d's liveness probes."""
    body = entry.get("body")
    if not isinstance(body, dict):
        return False
    if entry.get("path") == "/api/embed":
        return body.get("input") == "."
    options = body.get("options")
    return (
        entry.get("path") == "/api/generate"
        and body.get("prompt") == "."
        and isinstance(options, dict)
        and options.get("num_predict") == 1
    )


def probes(d: DaemonProcess) -> list[dict[str, Any]]:
    """Every probe the simulator's request log holds (all its servers), in order."""
    return [entry for entry in d.requests() if is_probe(entry)]


def repairs(d: DaemonProcess) -> list[dict[str, Any]]:
    """The ``repair`` events in n3d's log, in order."""
    return d.events("repair")
