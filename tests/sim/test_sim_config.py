"""The simulator reads Ollama's variables with Go's number rules, not Python's.

envconfig/config.go (HEAD): `KeepAlive` tries time.ParseDuration, then
strconv.ParseInt(s, 10, 64) as seconds (`time.Duration(n) * time.Second`, which wraps
around in int64), negative = forever, else the 5m default; `Uint` (OLLAMA_CONTEXT_LENGTH,
OLLAMA_MAX_LOADED_MODELS) is strconv.ParseUint(s, 10, 64). Both take ASCII digits only,
where Python's int() and str.isdigit() also take `١٠` or `²`.
"""

from __future__ import annotations

import math

import pytest

from n3d.sim.config import load_config


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10m", 600.0),
        ("10", 10.0),  # no unit: ParseInt's seconds
        ("-1", math.inf),
        ("0", 0.0),
        ("9223372036854775807ns", ((1 << 63) - 1) / 1e9),
        ("9223372037", math.inf),  # n * time.Second wraps below zero: forever
        ("١٠", 300.0),  # Arabic-Indic digits are no number to Go: the default
        ("1_0", 300.0),
        ("١٠m", 300.0),
        ("soon", 300.0),
    ],
)
def test_ollama_keep_alive_is_read_as_envconfig_reads_it(text: str, seconds: float) -> None:
    assert load_config({"OLLAMA_KEEP_ALIVE": text}).keep_alive_s == seconds


@pytest.mark.parametrize("text", ["²", "١٠", "+4", "4_0"])
def test_integers_go_rejects_keep_the_defaults(text: str) -> None:
    config = load_config({"OLLAMA_MAX_LOADED_MODELS": text, "OLLAMA_CONTEXT_LENGTH": text})
    assert (config.max_loaded, config.default_num_ctx) == (3, 4096)


def test_integers_go_accepts() -> None:
    config = load_config({"OLLAMA_MAX_LOADED_MODELS": "2", "OLLAMA_CONTEXT_LENGTH": "8192"})
    assert (config.max_loaded, config.default_num_ctx) == (2, 8192)
