"""The simulator's settings, read once from the environment at start.

Ollama's own variables (`OLLAMA_HOST`, `OLLAMA_MODELS`, `OLLAMA_KEEP_ALIVE`,
`OLLAMA_MAX_LOADED_MODELS`, `OLLAMA_CONTEXT_LENGTH`, `OLLAMA_NUM_PARALLEL`) mean what
they mean to Ollama;
the `OLLAMA_SIM_*` variables are the simulator's own knobs and fault switches
(docs/simulator.md). Durations are seconds as floats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from n3d.ollama.duration import KeepAliveError, parse_go_duration_ns
from n3d.ollama.gonum import parse_go_int
from n3d.ollama.host import OllamaHost, parse_ollama_host

__all__ = ["DEFAULT_VERSION", "SimConfig", "SimConfigError", "load_config", "model_switch"]

DEFAULT_VERSION = "0.13.5"


class SimConfigError(ValueError):
    """An `OLLAMA_SIM_*` or `OLLAMA_*` variable the simulator cannot use."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything the simulator reads from its environment."""

    host: OllamaHost
    models_dir: Path
    keep_alive_s: float  # default for new loads; math.inf = forever
    max_loaded: int
    num_parallel: int  # requests one runner serves at once; the rest wait in order
    default_num_ctx: int
    version: str
    ready_delay_s: float
    pull_seconds: float
    load_seconds: float
    token_seconds: float
    response_delay_s: float
    crash_after_s: float | None
    crash_code: int
    hang_after_s: float | None
    fail_pulls: str  # "" = off, "midway", or the error text every pull ends with
    fail_loads: bool
    poison: bool  # /api/tags and /api/ps answer poisoned JSON (faults.py)
    hang_inference: bool  # inference routes accepted, never answered (faults.py)
    hang_runner: str  # the model whose runner stops answering, "" = none
    wedge_unload: bool  # unloads never complete while the runner lives
    slow: float  # tokens this many times slower; 1 = normal speed
    control_path: Path | None
    request_log_path: Path | None
    preload: tuple[str, ...]
    gin_release: bool
    env: Mapping[str, str]


def _trimmed(env: Mapping[str, str], key: str) -> str:
    # Ollama trims spaces and quotes from every variable (envconfig.Var).
    return env.get(key, "").strip().strip("\"'").strip()


def _seconds(env: Mapping[str, str], key: str, default: float | None) -> float | None:
    text = _trimmed(env, key)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SimConfigError(f"{key}={text!r} is not a number of seconds") from None
    if value < 0 or math.isnan(value):
        raise SimConfigError(f"{key}={text!r} must be zero or more seconds")
    return value


def _go_uint(text: str) -> int | None:
    """Go's `strconv.ParseUint(text, 10, 64)` (envconfig.Uint): ASCII digits only, so
    `"²"` or `"١"` (digits to ``str.isdigit``) are no number; None when Go fails."""
    if not text or text[0] in "+-":
        return None
    try:
        return parse_go_int(text, 65)
    except ValueError:
        return None


def _keep_alive(env: Mapping[str, str]) -> float:
    """`OLLAMA_KEEP_ALIVE` as envconfig.KeepAlive reads it: a Go duration, else an
    integer of seconds (`strconv.ParseInt(s, 10, 64)`: ASCII digits only); negative
    means forever; anything else keeps the default, 5m."""
    text = _trimmed(env, "OLLAMA_KEEP_ALIVE")
    if not text:
        return 300.0
    try:
        ns = parse_go_duration_ns(text)
    except KeepAliveError:
        try:
            seconds = parse_go_int(text)
        except ValueError:
            return 300.0  # Ollama keeps its default
        # time.Duration(n) * time.Second wraps around in int64, as Go's does.
        ns = (seconds * 1_000_000_000 + (1 << 63)) % (1 << 64) - (1 << 63)
    return math.inf if ns < 0 else ns / 1_000_000_000


def _on(env: Mapping[str, str], key: str) -> bool:
    return _trimmed(env, key).lower() in ("1", "true", "yes", "on")


def model_switch(text: str) -> str:
    """A switch that names a model: "" (off) for an empty or false-like value."""
    return "" if text.lower() in ("", "0", "false", "no", "off") else text


def _slow(env: Mapping[str, str]) -> float:
    """`OLLAMA_SIM_SLOW=N`: a factor of at least 1 (1, or unset, is normal speed)."""
    text = _trimmed(env, "OLLAMA_SIM_SLOW")
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise SimConfigError(f"OLLAMA_SIM_SLOW={text!r} is not a number") from None
    if not 1 <= value < math.inf:
        raise SimConfigError(f"OLLAMA_SIM_SLOW={text!r} must be a factor of 1 or more")
    return value


def _fail_pulls(text: str) -> str:
    lowered = text.lower()
    if lowered in ("", "0", "false", "no", "off"):
        return ""
    if lowered in ("1", "true", "yes", "on", "always"):
        return "offline"
    if lowered in ("midway", "half", "eof"):
        return "midway"
    return text


def load_config(env: Mapping[str, str] | None = None) -> SimConfig:
    """Read the simulator's settings; raises :class:`SimConfigError` on a bad value."""
    env = dict(os.environ if env is None else env)
    models = _trimmed(env, "OLLAMA_MODELS")
    models_dir = Path(models).expanduser() if models else Path.home() / ".ollama-sim" / "models"
    max_loaded_text = _trimmed(env, "OLLAMA_MAX_LOADED_MODELS")
    max_loaded = _go_uint(max_loaded_text) or 0
    ctx_text = _trimmed(env, "OLLAMA_CONTEXT_LENGTH")
    control = _trimmed(env, "OLLAMA_SIM_CONTROL")
    request_log = _trimmed(env, "OLLAMA_SIM_REQUEST_LOG")
    crash_code_text = _trimmed(env, "OLLAMA_SIM_CRASH_CODE") or "2"
    if not 1 <= (_go_uint(crash_code_text) or 0) <= 255:
        raise SimConfigError(f"OLLAMA_SIM_CRASH_CODE={crash_code_text!r} must be 1..255")
    preload_text = _trimmed(env, "OLLAMA_SIM_MODELS_PRELOAD")
    preload = tuple(p.strip() for p in preload_text.split(",") if p.strip())
    return SimConfig(
        host=parse_ollama_host(env.get("OLLAMA_HOST")),
        models_dir=models_dir,
        keep_alive_s=_keep_alive(env),
        max_loaded=max_loaded or 3,  # 0 = auto = 3 per GPU, and 3 on CPU
        num_parallel=_go_uint(_trimmed(env, "OLLAMA_NUM_PARALLEL")) or 1,  # HEAD's default
        default_num_ctx=_go_uint(ctx_text) or 4096,
        version=_trimmed(env, "OLLAMA_SIM_VERSION") or DEFAULT_VERSION,
        ready_delay_s=_seconds(env, "OLLAMA_SIM_READY_DELAY", 0.0) or 0.0,
        pull_seconds=_seconds(env, "OLLAMA_SIM_PULL_SECONDS", 1.5) or 0.0,
        load_seconds=_seconds(env, "OLLAMA_SIM_LOAD_SECONDS", 0.5) or 0.0,
        token_seconds=_seconds(env, "OLLAMA_SIM_TOKEN_SECONDS", 0.01) or 0.0,
        response_delay_s=_seconds(env, "OLLAMA_SIM_RESPONSE_DELAY", 0.0) or 0.0,
        crash_after_s=_seconds(env, "OLLAMA_SIM_CRASH_AFTER", None),
        crash_code=int(crash_code_text),
        hang_after_s=_seconds(env, "OLLAMA_SIM_HANG_AFTER", None),
        fail_pulls=_fail_pulls(_trimmed(env, "OLLAMA_SIM_FAIL_PULLS")),
        fail_loads=_on(env, "OLLAMA_SIM_FAIL_LOADS"),
        poison=_on(env, "OLLAMA_SIM_POISON"),
        hang_inference=_on(env, "OLLAMA_SIM_HANG_INFERENCE"),
        hang_runner=model_switch(_trimmed(env, "OLLAMA_SIM_HANG_RUNNER")),
        wedge_unload=_on(env, "OLLAMA_SIM_WEDGE_UNLOAD"),
        slow=_slow(env),
        control_path=Path(control) if control else None,
        request_log_path=Path(request_log) if request_log else None,
        preload=preload,
        gin_release=_trimmed(env, "GIN_MODE") == "release",
        env=env,
    )
