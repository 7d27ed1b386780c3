"""Every number has a sane floor: no busy loop, no keep-alive Ollama rounds to 0, no overflow."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from n3d.config import load_settings
from n3d.config.checks import Invalid
from n3d.config.durations import MAX_SECONDS
from n3d.config.schema import FLOOR_S, PROBE_INTERVAL_FLOOR_S, SCHEMA
from n3d.errors import ConfigError

from .conftest import WriteConfig

# Every key that is a number of seconds, and whether 0 is allowed ("off" / "at once").
DURATIONS = {
    "ollama.model_cache_ttl": True,
    "ollama.health_check_interval": False,
    "ollama.pull_timeout": False,
    "server.start_timeout": False,
    "server.stop_timeout": True,
    "server.health_timeout": False,
    "restart.backoff_initial": False,
    "restart.backoff_max": False,
    "restart.window": False,
    "proxy.hold_timeout": False,
    "proxy.drain_timeout": True,  # 0: restart at once, cutting what is in flight
    "liveness.probe_timeout": False,
    "liveness.stuck_unload_after": False,
}
FLOATS = [
    *DURATIONS,
    "ollama.keep_alive",
    "warm.keep_alive",
    "liveness.probe_interval",
    "liveness.slow_factor",
]


def refusal(write_config: WriteConfig, dotted: str, value: str) -> ConfigError:
    section, key = dotted.split(".")
    path = write_config(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert (caught.value.key, caught.value.line) == (dotted, 2)
    return caught.value


def check(dotted: str, value: object) -> object:
    section, key = dotted.split(".")
    return SCHEMA[section][key].check(value)


@pytest.mark.parametrize("dotted", list(DURATIONS))
def test_an_interval_below_the_floor_is_a_config_error_not_a_busy_loop(
    write_config: WriteConfig, dotted: str
) -> None:
    # 1e-300 s health checks ran ~700 probes a second at 93 % CPU.
    for value in ("1e-300", "5e-324", "0.049"):
        error = refusal(write_config, dotted, value)
        assert f"at least {FLOOR_S:g} seconds" in error.message
    assert check(dotted, FLOOR_S) == FLOOR_S
    if DURATIONS[dotted]:
        assert check(dotted, 0) == 0.0  # 0 means off (cache) or at once (SIGKILL)


@pytest.mark.parametrize("dotted", FLOATS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "-1e400"])
def test_a_non_finite_number_is_a_config_error_naming_the_key(
    write_config: WriteConfig, dotted: str, value: str
) -> None:
    # TOML reads 1e400 as inf: it must not reach a timer or Ollama.
    assert "finite" in refusal(write_config, dotted, value).message


@pytest.mark.parametrize("dotted", list(DURATIONS))
def test_a_duration_longer_than_go_can_hold_is_a_config_error(
    write_config: WriteConfig, dotted: str
) -> None:
    assert "at most" in refusal(write_config, dotted, "1e300").message
    assert check(dotted, MAX_SECONDS) == MAX_SECONDS


@given(st.floats(min_value=0, max_value=FLOOR_S, exclude_min=True, exclude_max=True))
def test_no_duration_between_zero_and_the_floor_is_accepted(value: float) -> None:
    for dotted in DURATIONS:
        with pytest.raises(Invalid, match="at least"):
            check(dotted, value)


def test_a_probe_interval_under_a_second_is_a_config_error(write_config: WriteConfig) -> None:
    # Each probe is a generate on every warm model: faster than 1/s is load, not a check.
    for value in ("0.05", "0.999", "1e-300"):
        error = refusal(write_config, "liveness.probe_interval", value)
        assert f"at least {PROBE_INTERVAL_FLOOR_S:g} seconds" in error.message
    assert check("liveness.probe_interval", 1) == 1.0
    assert "at most" in refusal(write_config, "liveness.probe_interval", "1e300").message


@pytest.mark.parametrize("value", ["1", "0.5", "-2", "true", '"5"'])
def test_a_slow_factor_of_one_or_less_is_a_config_error(
    write_config: WriteConfig, value: str
) -> None:
    # At 1 or below every rate under the baseline would be "slow"; 0 turns it off.
    assert "above 1" in refusal(write_config, "liveness.slow_factor", value).message
    assert check("liveness.slow_factor", 0) == 0.0
    assert check("liveness.slow_factor", 1.5) == 1.5


@pytest.mark.parametrize("dotted", ["ollama.keep_alive", "warm.keep_alive"])
@pytest.mark.parametrize("value", ["1e-320", "1e-10", "0.9e-9", '"0.5ns"', '"0.0000000001s"'])
def test_a_keep_alive_ollama_rounds_to_zero_is_a_config_error(
    write_config: WriteConfig, dotted: str, value: str
) -> None:
    # Ollama keeps whole nanoseconds (time.Duration(t * 1e9) truncates): these become 0,
    # which unloads the model as soon as it is idle.
    assert "Ollama rounds it to 0" in refusal(write_config, dotted, value).message


@pytest.mark.parametrize("dotted", ["ollama.keep_alive", "warm.keep_alive"])
def test_a_keep_alive_too_long_for_a_go_duration_is_a_config_error(
    write_config: WriteConfig, dotted: str
) -> None:
    # 1e10 s * 1e9 passes int64: on amd64 Go makes it negative and Ollama unloads at once.
    for value in ("1e10", "9.3e9", "1e300"):
        assert "-1 for forever" in refusal(write_config, dotted, value).message
    assert check(dotted, 9.2e9) == 9.2e9
    assert check(dotted, -1e300) == -1e300  # negative: forever


def test_the_ollama_keep_alive_may_be_zero_or_one_nanosecond() -> None:
    assert check("ollama.keep_alive", 0) == 0
    assert check("ollama.keep_alive", 1e-9) == 1e-9
    assert check("ollama.keep_alive", "1ns") == "1ns"


@pytest.mark.parametrize("value", ["0.5", '"999ms"', "1e-9"])
def test_a_warm_keep_alive_under_a_second_is_a_config_error(
    write_config: WriteConfig, value: str
) -> None:
    # The keeper renews a finite keep_alive halfway through: it would reload non-stop.
    assert "under 1 s" in refusal(write_config, "warm.keep_alive", value).message
    assert check("warm.keep_alive", 1) == 1 and check("warm.keep_alive", "1s") == "1s"


@pytest.mark.parametrize("dotted", ["ollama.num_ctx", "socket.max_message_bytes"])
def test_an_integer_beyond_64_bits_is_a_config_error(
    write_config: WriteConfig, dotted: str
) -> None:
    error = refusal(write_config, dotted, str(2**63))
    assert f"..{2**63 - 1}" in error.message
    assert check(dotted, 2**63 - 1) == 2**63 - 1


def test_every_key_that_takes_seconds_has_a_floor_test() -> None:
    """A new seconds key must join DURATIONS, and so get the tests above."""
    for section, keys in SCHEMA.items():
        for name, key in keys.items():
            try:
                value = key.check(1.5)
            except Invalid:
                continue  # not a number of seconds
            if isinstance(value, float):
                assert f"{section}.{name}" in FLOATS, f"{section}.{name} has no floor test"
