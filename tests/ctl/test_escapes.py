"""Escape sequences in what the daemon relays (Ollama's versions, names, errors) never
reach the terminal through n3ctl's human output; ``--json`` output stays exact."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from n3d.ctl.fmt import printable

from . import samples
from .conftest import N3CTL, Run, clean_env, run_ctl
from .fake_daemon import Fail, FakeDaemon, Handler, Session

# A window title, a clear screen, a one-byte CSI, a carriage return and backspace
# that overwrite, DEL, and a right-to-left override.
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\r\x08\x7f\u202e"
FORBIDDEN = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x202E)} - {"\n", "\t"}


def poison(value: Any) -> Any:
    """``value`` with EVIL appended to every string in it (not to keys)."""
    if isinstance(value, str):
        return value + EVIL
    if isinstance(value, dict):
        return {k: poison(v) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v) for v in value]
    return value


STATUS = poison(samples.STATUS)
STATUS["server"].update(state="backoff", last_error="exited" + EVIL)
HEALTH = {**poison(samples.HEALTH), "ok": False, "error": "no answer" + EVIL}
METRICS = {
    "counters": {"ollama.pulls" + EVIL: 1.0},
    "gauges": {},
    "histograms": {},
    "units": {"ollama.pulls" + EVIL: "{pull}" + EVIL},
}


def _pull(params: dict[str, Any], session: Session) -> Any:
    for value in poison(samples.PULL_PROGRESS):
        session.notify("$/progress", {"token": params["workDoneToken"], "value": value})
    return {"model": params["model"] + EVIL, "status": "success", "duration_s": 1.5}


def _delete(params: dict[str, Any], session: Session) -> Any:
    raise Fail(
        1010,
        "Ollama said" + EVIL,
        poison({"kind": "ollama_error", "model": "m", "base_url": "http://h", "suggestion": "run"}),
    )


def _subscribe(params: dict[str, Any], session: Session) -> Any:
    session.notify(
        "event", {"topic": "server.state" + EVIL, "at": samples.NOW, "reason": EVIL, EVIL: EVIL}
    )
    return {"topics": [EVIL]}


HANDLERS: dict[str, Handler] = {
    "status": lambda p, s: STATUS,
    "health": lambda p, s: HEALTH,
    "models.list": lambda p, s: poison(samples.MODELS),
    "models.loaded": lambda p, s: poison(samples.LOADED),
    "warm.list": lambda p, s: poison(samples.WARM),
    "metrics": lambda p, s: METRICS,
    "metrics.prometheus": lambda p, s: {"text": 'ollama_pulls{model="' + EVIL + '"} 1.0\n'},
    "models.pull": _pull,
    "models.delete": _delete,
    "models.validate": lambda p, s: {"valid": False, "message": "bad" + EVIL},
    "models.ensure": lambda p, s: {"model": "m" + EVIL, "available": True, "pulled": False},
    "server.start": lambda p, s: {"state": "running" + EVIL, "server": STATUS["server"]},
    "events.subscribe": _subscribe,
}

HUMAN = [
    ["status"],
    ["health"],
    ["models"],
    ["models", "--loaded"],
    ["warm"],
    ["metrics"],
    ["metrics", "--prometheus"],
    ["pull", "m"],
    ["rm", "m"],
    ["validate", "m"],
    ["ensure", "m"],
    ["version"],
    ["start"],
]


@pytest.fixture
def hostile(short_dir: Path) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(short_dir / "s.sock", HANDLERS)
    try:
        yield daemon
    finally:
        daemon.close()


def _ctl(daemon: FakeDaemon, *argv: str) -> Run:
    return run_ctl(*argv, env=clean_env(N3D_SOCKET=str(daemon.path)))


def _controls(text: str) -> set[str]:
    return set(text) & FORBIDDEN


@pytest.mark.parametrize("argv", HUMAN, ids=" ".join)
def test_escape_sequences_from_ollama_never_reach_the_terminal(
    argv: list[str], hostile: FakeDaemon
) -> None:
    result = _ctl(hostile, *argv)
    assert result.out or result.err
    assert _controls(result.out) == set(), result.out
    assert _controls(result.err) == set(), result.err
    # Shown, not dropped: the reader can see something odd was sent.
    assert "pwned" in result.out + result.err


def test_events_in_human_form_are_printable(hostile: FakeDaemon) -> None:
    proc = subprocess.Popen(
        [str(N3CTL), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(N3D_SOCKET=str(hostile.path), TZ="UTC"),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert "server.state" in line
    assert _controls(line) == set() and _controls(err) == set(), (line, err)


@pytest.mark.parametrize(
    ("argv", "answer"),
    [
        (["status"], STATUS),
        (["health"], HEALTH),
        (["models"], poison(samples.MODELS)),
        (["warm"], poison(samples.WARM)),
        (["metrics"], METRICS),
    ],
    ids=lambda case: " ".join(case) if isinstance(case, list) else "",
)
def test_json_output_stays_exact(argv: list[str], answer: Any, hostile: FakeDaemon) -> None:
    result = _ctl(hostile, "--json", *argv)
    assert result.out == json.dumps(answer, indent=2, sort_keys=True) + "\n"
    assert json.loads(result.out) == answer


def test_pull_json_lines_stay_exact(hostile: FakeDaemon) -> None:
    result = _ctl(hostile, "--json", "pull", "m")
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[:-1] == poison(samples.PULL_PROGRESS)
    assert lines[-1]["model"] == "m" + EVIL


def test_printable_escapes_controls_and_keeps_text() -> None:
    assert printable("llama3:8b · é\tok\n") == "llama3:8b · é\tok\n"
    assert printable("\x1b]0;t\x07\x9b\x7f\u202e") == "\\x1b]0;t\\x07\\x9b\\x7f\\u202e"
