"""The simulator reads Ollama's variables with Go's number rules, not Python's.

envconfig/config.go (HEAD): `KeepAlive` tries time.ParseDuration, then
strconv.ParseInt(s, 10, 64) as seconds (`time.Duration(n) * time.Second`, which wraps
around in int64), negative = forever, else the 5m default; `Uint` (OLLAMA_CONTEXT_LENGTH,
OLLAMA_MAX_LOADED_MODELS) is strconv.ParseUint(s, 10, 64). Both take ASCII digits only,
where Python's int() and str.isdigit() also take `١٠` or `²`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from n3d.sim.config import SimConfigError, load_config
from n3d.sim.faults import Faults


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


def test_inference_faults_are_off_by_default_and_num_parallel_is_1() -> None:
    config = load_config({})
    assert (config.hang_inference, config.hang_runner, config.wedge_unload) == (False, "", False)
    assert (config.slow, config.num_parallel) == (1.0, 1)


def test_inference_fault_variables() -> None:
    config = load_config(
        {
            "OLLAMA_SIM_HANG_INFERENCE": "1",
            "OLLAMA_SIM_HANG_RUNNER": " llama3.2 ",
            "OLLAMA_SIM_WEDGE_UNLOAD": "true",
            "OLLAMA_SIM_SLOW": "20",
            "OLLAMA_NUM_PARALLEL": "4",
        }
    )
    assert (config.hang_inference, config.hang_runner, config.wedge_unload) == (
        True,
        "llama3.2",
        True,
    )
    assert (config.slow, config.num_parallel) == (20.0, 4)
    assert load_config({"OLLAMA_SIM_HANG_RUNNER": "false"}).hang_runner == ""
    assert load_config({"OLLAMA_NUM_PARALLEL": "0"}).num_parallel == 1  # as Ollama: at least 1


@pytest.mark.parametrize("text", ["0.5", "fast", "inf", "-2"])
def test_slow_must_be_a_factor_of_one_or_more(text: str) -> None:
    with pytest.raises(SimConfigError, match="OLLAMA_SIM_SLOW"):
        load_config({"OLLAMA_SIM_SLOW": text})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, ("", False, False, 1.0)),
        ({"hang_runner": "tinyllama", "hang_inference": True}, ("tinyllama", True, False, 1.0)),
        ({"wedge_unload": True, "slow": 20}, ("", False, True, 20.0)),
        ({"hang_runner": False, "slow": False}, ("", False, False, 1.0)),
        ({"hang_runner": "off", "slow": 0.5}, ("", False, False, 1.0)),
    ],
)
def test_control_file_keys_for_the_inference_faults(
    tmp_path: Path, overrides: dict[str, object], expected: tuple[object, ...]
) -> None:
    control = tmp_path / "control.json"
    control.write_text(json.dumps(overrides))
    config = load_config({"OLLAMA_SIM_CONTROL": str(control)})
    state = Faults(config, started_at=0.0).state()
    assert (state.hang_runner, state.hang_inference, state.wedge_unload, state.slow) == expected


def test_control_file_turns_off_what_the_environment_turned_on(tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    control.write_text(
        json.dumps(
            {"hang_inference": False, "hang_runner": False, "wedge_unload": False, "slow": 1}
        )
    )
    env = {
        "OLLAMA_SIM_CONTROL": str(control),
        "OLLAMA_SIM_HANG_INFERENCE": "1",
        "OLLAMA_SIM_HANG_RUNNER": "llama3.2",
        "OLLAMA_SIM_WEDGE_UNLOAD": "1",
        "OLLAMA_SIM_SLOW": "20",
    }
    state = Faults(load_config(env), started_at=0.0).state()
    assert (state.hang_runner, state.hang_inference, state.wedge_unload, state.slow) == (
        "",
        False,
        False,
        1.0,
    )
