"""Go durations and keep_alive behave as Ollama's api.Duration (research/ollama.md §1)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from n3d.ollama.duration import (
    KeepAliveError,
    format_go_duration,
    parse_go_duration,
    parse_keep_alive,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        ("0", 0.0),
        ("300ms", 0.3),
        ("2us", 2e-6),
        ("2µs", 2e-6),
        ("10ns", 1e-8),
        ("+5s", 5.0),
        ("-1m", -60.0),
        (".5s", 0.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("300", 'time: missing unit in duration "300"'),
        ("-1", 'time: missing unit in duration "-1"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("", 'time: invalid duration ""'),
        ("m", 'time: invalid duration "m"'),
        ("-", 'time: invalid duration "-"'),
    ],
)
def test_go_duration_errors_use_gos_text(text: str, message: str) -> None:
    with pytest.raises(KeepAliveError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (300, 300.0),
        (1.5, 1.5),
        (0, 0.0),
        (-1, math.inf),
        (-0.5, math.inf),
        ("5m", 300.0),
        ("-1m", math.inf),
        ("0s", 0.0),
    ],
)
def test_keep_alive_values(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("300", 'time: missing unit in duration "300"'),
        (True, "Unsupported type: 'bool'"),
        ([1], "Unsupported type: '[]interface {}'"),
        ({"a": 1}, "Unsupported type: 'map[string]interface {}'"),
    ],
)
def test_keep_alive_rejections_match_ollamas_400_text(value: object, message: str) -> None:
    with pytest.raises(KeepAliveError) as info:
        parse_keep_alive(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "5m0s"),
        (0, "0s"),
        (5400, "1h30m0s"),
        (math.inf, "-1s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
    ],
)
def test_format_go_duration(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


@given(st.floats(min_value=0.001, max_value=10_000_000, allow_nan=False))
def test_format_then_parse_round_trips(seconds: float) -> None:
    assert parse_go_duration(format_go_duration(seconds)) == pytest.approx(seconds, rel=1e-5)
