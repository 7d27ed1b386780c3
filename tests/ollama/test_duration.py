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
    parse_go_duration_ns,
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


# --- Go's own results -----------------------------------------------------------------
# time.ParseDuration in Go's src/time/format.go (leadingInt, leadingFraction, unitMap,
# ParseDuration, quote), checked against the table of src/time/time_test.go
# (parseDurationTests, parseDurationErrorTests; Go 1.17+, which accepts the most
# negative value, golang.org/issue/48629). Values are nanoseconds; messages are the
# exact texts ParseDuration builds, with Go's time.quote escaping (every byte of a
# non-ASCII or control character as \xNN). These are the ground truth: the simulator
# shares this parser, so its tests cannot catch a misreading.
SECOND = 1_000_000_000
GO_DURATIONS = [
    # simple
    ("0", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    # sign
    ("-5s", -5 * SECOND),
    ("+5s", 5 * SECOND),
    ("-0", 0),
    ("+0", 0),
    # decimal
    ("5.0s", 5 * SECOND),
    ("5.6s", 5_600_000_000),
    ("5.s", 5 * SECOND),
    (".5s", 500_000_000),
    ("1.0s", SECOND),
    ("1.00s", SECOND),
    ("1.004s", 1_004_000_000),
    ("1.0040s", 1_004_000_000),
    ("100.00100s", 100_001_000_000),
    # different units
    ("10ns", 10),
    ("11us", 11_000),
    ("12µs", 12_000),  # U+00B5
    ("12μs", 12_000),  # U+03BC
    ("13ms", 13_000_000),
    ("14s", 14 * SECOND),
    ("15m", 15 * 60 * SECOND),
    ("16h", 16 * 3600 * SECOND),
    # composite durations
    ("3h30m", (3 * 3600 + 30 * 60) * SECOND),
    ("10.5s4m", 250_500_000_000),
    ("-2m3.4s", -123_400_000_000),
    ("1h2m3s4ms5us6ns", 3_723_004_005_006),
    ("39h9m14.425s", 140_954_425_000_000),
    # large value
    ("52763797000ns", 52_763_797_000),
    # more than 9 digits after the point (golang.org/issue/6617)
    ("0.3333333333333333333h", 20 * 60 * SECOND),
    # 1<<53 + 1 cannot be held by a double: Go never goes through one for whole units
    ("9007199254740993ns", (1 << 53) + 1),
    # the largest duration, and the most negative one
    ("9223372036854775807ns", (1 << 63) - 1),
    ("9223372036854775.807us", (1 << 63) - 1),
    ("9223372036s854ms775us807ns", (1 << 63) - 1),
    ("2562047h47m16.854775807s", (1 << 63) - 1),  # what Go prints for MaxInt64
    ("-9223372036854775807ns", -(1 << 63) + 1),
    ("-9223372036854775808ns", -(1 << 63)),
    ("-9223372036854775.808us", -(1 << 63)),
    ("-9223372036s854ms775us808ns", -(1 << 63)),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    # huge string (issue 15011), and leadingFraction's first overflow check
    ("0.100000000000000000000h", 6 * 60 * SECOND),
    ("0.830103483285477580700h", (49 * 60 + 48) * SECOND + 372_539_827),
]


@pytest.mark.parametrize(("text", "ns"), GO_DURATIONS)
def test_go_durations_match_gos_table_to_the_nanosecond(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns
    assert parse_go_duration(text) == ns / 1_000_000_000


def _invalid(text: str) -> str:
    return f"time: invalid duration {text}"


GO_DURATION_ERRORS = [
    ("", _invalid('""')),
    ("3", 'time: missing unit in duration "3"'),
    ("-", _invalid('"-"')),
    ("s", _invalid('"s"')),
    (".", _invalid('"."')),
    ("-.", _invalid('"-."')),
    (".s", _invalid('".s"')),
    ("+.s", _invalid('"+.s"')),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("\ufffd", _invalid(r'"\xef\xbf\xbd"')),  # utf8.RuneError
    ("\ufffd hello \ufffd world", _invalid(r'"\xef\xbf\xbd hello \xef\xbf\xbd world"')),
    # overflow
    ("9223372036854775810ns", _invalid('"9223372036854775810ns"')),
    ("9223372036854775808ns", _invalid('"9223372036854775808ns"')),
    ("-9223372036854775809ns", _invalid('"-9223372036854775809ns"')),
    ("9223372036854776us", _invalid('"9223372036854776us"')),
    ("3000000h", _invalid('"3000000h"')),
    ("9223372036854775.808us", _invalid('"9223372036854775.808us"')),
    ("9223372036854ms775us808ns", _invalid('"9223372036854ms775us808ns"')),
    ("2562047h47m16.854775808s", _invalid('"2562047h47m16.854775808s"')),
    # Digits are ASCII only ('0' <= c && c <= '9'): Arabic-Indic digits are no number.
    ("١٠m", _invalid(r'"\xd9\xa1\xd9\xa0m"')),
    ("1٠m", r'time: unknown unit "\xd9\xa0m" in duration "1\xd9\xa0m"'),
    ("１０s", _invalid(r'"\xef\xbc\x91\xef\xbc\x90s"')),  # fullwidth digits
    # The unit is everything up to the next '.' or ASCII digit.
    ("5 m", 'time: unknown unit " m" in duration "5 m"'),
    ("5m ", 'time: unknown unit "m " in duration "5m "'),
    (" 5m", _invalid('" 5m"')),
    ("5M", 'time: unknown unit "M" in duration "5M"'),
    ("1_000s", 'time: unknown unit "_" in duration "1_000s"'),
    ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
    ("1h\n", r'time: unknown unit "h\x0a" in duration "1h\x0a"'),
    ('5"', r'time: unknown unit "\"" in duration "5\""'),
    # Only "0" alone needs no unit; one sign only.
    ("00", 'time: missing unit in duration "00"'),
    ("0.0", 'time: missing unit in duration "0.0"'),
    (".5.5s", 'time: missing unit in duration ".5.5s"'),
    ("++5s", _invalid('"++5s"')),
    ("-+5s", _invalid('"-+5s"')),
]


@pytest.mark.parametrize(("text", "message"), GO_DURATION_ERRORS)
def test_go_duration_errors_match_gos_text(text: str, message: str) -> None:
    with pytest.raises(KeepAliveError) as info:
        parse_go_duration_ns(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # Ollama's api.Duration.UnmarshalJSON (api/types.go): a string is
        # time.ParseDuration, then negative means MaxInt64 (forever) ...
        ("2562047h47m16.854775807s", ((1 << 63) - 1) / 1e9),
        ("-9223372036854775808ns", math.inf),
        ("-0s", 0.0),
        # ... a number is time.Duration(t * float64(time.Second)), truncated to whole ns,
        # so a keep_alive too small for one nanosecond unloads like 0 does.
        (1e-320, 0.0),
        (1e-10, 0.0),
        (1.5e-9, 1e-9),
        (9.2e9, 9.2e9),
        (-1e-300, math.inf),
    ],
)
def test_keep_alive_as_ollama_turns_it_into_a_duration(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["١٠m", "10", " 5m", "9223372036854775808ns"])
def test_keep_alive_strings_go_rejects_are_rejected(value: str) -> None:
    with pytest.raises(KeepAliveError, match="^time: "):
        parse_keep_alive(value)


@pytest.mark.parametrize("value", [1e10, 10**12, 9.3e9])
def test_keep_alive_numbers_beyond_gos_duration_are_refused(value: float) -> None:
    # Go leaves float64 -> int64 overflow to the CPU: 0 (unload) on x86-64, forever on
    # arm64. n3d cannot know which Ollama gets it, so it asks for -1 instead.
    with pytest.raises(KeepAliveError, match="use -1 for forever"):
        parse_keep_alive(value)
