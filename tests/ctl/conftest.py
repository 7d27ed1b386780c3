"""Fixtures for n3ctl tests: a scripted fake daemon and a runner for the installed n3ctl."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import samples
from .fake_daemon import Fail, FakeDaemon, Handler, Session

N3CTL = Path(sys.executable).parent / "n3ctl"


@dataclass
class Run:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    """The environment n3ctl runs in: nothing leaky, no colour decisions from our shell."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("N3D_SOCKET", "NO_COLOR", "OLLAMA_HOST", "NAMEL3SS_OLLAMA_BASE_URL")
    }
    env.update(extra)
    return env


def run_ctl(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> Run:
    """Run the installed n3ctl; stdout and stderr are pipes (so: not a TTY)."""
    assert N3CTL.exists(), f"n3ctl is not installed at {N3CTL} (pip install -e .)"
    done = subprocess.run(
        [str(N3CTL), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _pull(params: dict[str, Any], session: Session) -> Any:
    token = params.get("workDoneToken")
    for value in samples.PULL_PROGRESS:
        if token is not None:
            session.notify("$/progress", {"token": token, "value": value})
    return {"model": params["model"], "status": "success", "duration_s": 1.5}


def _ensure(params: dict[str, Any], session: Session) -> Any:
    model = params["model"]
    if model == "missing:latest" and not params.get("pull"):
        return {"model": model, "available": False, "pulled": False}
    return {"model": model, "available": True, "pulled": bool(params.get("pull"))}


def _delete(params: dict[str, Any], session: Session) -> Any:
    if params["model"] == "nope":
        raise Fail(
            1002,
            "Ollama model 'nope' is not available locally.",
            {
                "kind": "model_not_found",
                "model": "nope",
                "base_url": "http://127.0.0.1:11434",
                "suggestion": (
                    "Run: ollama pull nope\nOr enable auto_pull_model in your configuration."
                ),
            },
        )
    return {"model": params["model"], "deleted": True}


def _validate(params: dict[str, Any], session: Session) -> Any:
    ok = " " not in params["model"]
    return {
        "valid": ok,
        "normalized": params["model"] + (":latest" if ok else ""),
        "message": "" if ok else "model names have no spaces",
    }


def _events(params: dict[str, Any], session: Session) -> Any:
    def later() -> None:
        time.sleep(0.05)
        for i, topic in enumerate(("server.state", "health")):
            if params.get("topics") and topic not in params["topics"]:
                continue
            session.notify("event", {"topic": topic, "at": samples.NOW + i, "to": "running"})

    import threading

    threading.Thread(target=later, daemon=True).start()
    return {"topics": params.get("topics")}


def default_handlers() -> dict[str, Handler]:
    return {
        "status": lambda p, s: samples.STATUS,
        "health": lambda p, s: {**samples.HEALTH, "cached": not p.get("force")},
        "models.list": lambda p, s: samples.MODELS,
        "models.loaded": lambda p, s: samples.LOADED,
        "models.pull": _pull,
        "models.delete": _delete,
        "models.ensure": _ensure,
        "models.validate": _validate,
        "warm.list": lambda p, s: samples.WARM,
        "warm.add": lambda p, s: samples.WARM,
        "warm.remove": lambda p, s: samples.WARM,
        "server.start": lambda p, s: {"state": "running"},
        "server.stop": lambda p, s: {"state": "stopped"},
        "server.restart": lambda p, s: {"state": "running"},
        "metrics": lambda p, s: samples.METRICS,
        "metrics.prometheus": lambda p, s: samples.PROMETHEUS,
        "events.subscribe": _events,
    }


@pytest.fixture
def fake(short_dir: Path) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(short_dir / "s.sock", default_handlers())
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def ctl(fake: FakeDaemon) -> Callable[..., Run]:
    """Run the installed n3ctl against the fake daemon (via N3D_SOCKET)."""

    def run(*args: str, **env: str) -> Run:
        return run_ctl(*args, env=clean_env(N3D_SOCKET=str(fake.path), **env))

    return run
