"""Fault switches: environment defaults, overridden at run time by a control file.

The environment (`OLLAMA_SIM_*`, read once by `config.py`) sets the starting state.
`OLLAMA_SIM_CONTROL=/path/file.json` names a JSON object whose keys override it
while the simulator runs; the file is re-read when its mtime or size changes,
checked at most every 100 ms, so a test or a drill can flip a fault without a
restart. Keys: `hang` (bool), `crash` (bool or exit code), `fail_pulls` (false,
"midway", true or an error text), `fail_loads` (bool), `poison` (bool),
`hang_inference` (bool), `hang_runner` (a model name, or false), `wedge_unload`
(bool), `slow` (a factor; 1 or false is normal speed), `response_delay`,
`pull_seconds`, `load_seconds`, `token_seconds` (seconds) and `version`. A missing
or unreadable file means "no overrides".

The four inference faults are how real Ollama breaks while `GET /` still answers
(DESIGN.md "The simulator"): `hang_inference` holds generate, chat and embed before
they reach a runner; `hang_runner` makes one model's runner stop answering (the
scheduler carries it out, and the runner's death ends it); `wedge_unload` leaves an
unloading model's runner alive and listed; `slow` stretches every token.

`poison` is not how Ollama breaks but what anyone who binds its port first can send
(in n3d's `auto` and `external` modes): `/api/tags` lists a model whose size is
`1e400` (beyond a double) and `/api/ps` answers JSON nested 100 000 levels deep
(:data:`POISONED_TAGS`, :data:`POISONED_PS`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from n3d.sim.config import SimConfig, model_switch

__all__ = [
    "OFFLINE_PULL_ERROR",
    "POISONED_PS",
    "POISONED_TAGS",
    "FaultState",
    "Faults",
    "pull_error_text",
]

_CHECK_INTERVAL_S = 0.1
_SECONDS = ("response_delay", "pull_seconds", "load_seconds", "token_seconds")
OFFLINE_PULL_ERROR = (
    'pull model manifest: Get "https://registry.ollama.ai/v2/library/{model}/manifests/{tag}": '
    "dial tcp: lookup registry.ollama.ai: no such host"
)
POISONED_TAGS = (
    b'{"models":[{"name":"poison:latest","model":"poison:latest","size":1e400,'
    b'"digest":"","modified_at":"2026-01-01T00:00:00Z","details":{}}]}'
)
_DEPTH = 100_000
POISONED_PS = b'{"models":' + b"[" * _DEPTH + b"]" * _DEPTH + b"}"


@dataclass(frozen=True, slots=True)
class FaultState:
    """The faults in force right now."""

    hang: bool = False
    crash: int = 0  # 0 = no crash requested; else the exit code to die with
    fail_pulls: str = ""  # "" off, "midway", "offline", or a literal error text
    fail_loads: bool = False
    poison: bool = False
    hang_inference: bool = False
    hang_runner: str = ""  # a model name as the user wrote it; "" = off
    wedge_unload: bool = False
    slow: float = 1.0  # token time factor; 1 = normal speed
    response_delay_s: float = 0.0
    pull_seconds: float = 1.5
    load_seconds: float = 0.5
    token_seconds: float = 0.01
    version: str = ""


def pull_error_text(mode: str, model: str, tag: str) -> str:
    """The `{"error": ...}` text a failing pull ends with for a `fail_pulls` mode."""
    if mode == "offline":
        return OFFLINE_PULL_ERROR.format(model=model, tag=tag)
    return mode


class Faults:
    """The current fault state; `state()` is cheap enough to call on every request."""

    def __init__(self, config: SimConfig, started_at: float) -> None:
        self._config = config
        self._started_at = started_at
        self._base = FaultState(
            fail_pulls=config.fail_pulls,
            fail_loads=config.fail_loads,
            poison=config.poison,
            hang_inference=config.hang_inference,
            hang_runner=config.hang_runner,
            wedge_unload=config.wedge_unload,
            slow=config.slow,
            response_delay_s=config.response_delay_s,
            pull_seconds=config.pull_seconds,
            load_seconds=config.load_seconds,
            token_seconds=config.token_seconds,
            version=config.version,
        )
        self._overrides: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked_at = 0.0

    def _reload(self) -> None:
        path: Path | None = self._config.control_path
        now = time.monotonic()
        if path is None or now - self._checked_at < _CHECK_INTERVAL_S:
            return
        self._checked_at = now
        try:
            stat = path.stat()
        except OSError:
            self._overrides, self._stamp = {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # half-written: keep the last good overrides and look again soon
        self._stamp = stamp
        self._overrides = data if isinstance(data, dict) else {}

    def state(self) -> FaultState:
        """Environment defaults, time-based switches, then control-file overrides."""
        self._reload()
        state = self._base
        elapsed = time.monotonic() - self._started_at
        if self._config.hang_after_s is not None and elapsed >= self._config.hang_after_s:
            state = replace(state, hang=True)
        if self._config.crash_after_s is not None and elapsed >= self._config.crash_after_s:
            state = replace(state, crash=self._config.crash_code)
        o = self._overrides
        if "hang" in o:
            state = replace(state, hang=bool(o["hang"]))
        crash = o.get("crash")
        if crash is True or (isinstance(crash, int) and not isinstance(crash, bool) and crash > 0):
            state = replace(state, crash=self._config.crash_code if crash is True else int(crash))
        if "fail_pulls" in o:
            value = o["fail_pulls"]
            mode = "" if value in (False, None, "") else "offline" if value is True else str(value)
            state = replace(state, fail_pulls=mode)
        if "fail_loads" in o:
            state = replace(state, fail_loads=bool(o["fail_loads"]))
        if "poison" in o:
            state = replace(state, poison=bool(o["poison"]))
        state = _inference_overrides(state, o)
        seconds = {
            key: float(value)
            for key, value in o.items()
            if key in _SECONDS
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and value >= 0
        }
        state = replace(
            state,
            response_delay_s=seconds.get("response_delay", state.response_delay_s),
            pull_seconds=seconds.get("pull_seconds", state.pull_seconds),
            load_seconds=seconds.get("load_seconds", state.load_seconds),
            token_seconds=seconds.get("token_seconds", state.token_seconds),
        )
        if isinstance(o.get("version"), str) and o["version"]:
            state = replace(state, version=o["version"])
        return state


def _inference_overrides(state: FaultState, o: dict[str, Any]) -> FaultState:
    """The control file's `hang_inference`, `hang_runner`, `wedge_unload` and `slow`."""
    if "hang_inference" in o:
        state = replace(state, hang_inference=bool(o["hang_inference"]))
    if "hang_runner" in o:
        value = o["hang_runner"]
        state = replace(state, hang_runner=model_switch(value) if isinstance(value, str) else "")
    if "wedge_unload" in o:
        state = replace(state, wedge_unload=bool(o["wedge_unload"]))
    if "slow" in o:
        value = o["slow"]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        # false, null, 0 or 1 is normal speed; a factor below 1 would be faster, not a fault
        state = replace(state, slow=float(value) if number and 1 <= value < math.inf else 1.0)
    return state
