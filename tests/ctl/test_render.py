"""The human renderers are pure: fixed result + fixed `now` + explicit colour → fixed text."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from n3d.ctl.fmt import Style, ago, color_enabled, epoch, human_bytes, human_duration
from n3d.ctl.render import (
    render_event,
    render_health,
    render_status,
    render_version,
    status_exit_code,
)

from . import samples

PLAIN = Style(False)
COLOR = Style(True)


def test_status_reads_like_systemctl_status() -> None:
    text = render_status(samples.STATUS, now=samples.NOW, style=PLAIN, clock=time.gmtime)
    assert text == (
        "● ollama - the Ollama server under n3d\n"
        "     Active: running (managed) since Tue 2024-06-04 09:17:00 GMT; 2h 3min ago\n"
        "        PID: 4242, 1 restart, last exit: signal SIGKILL\n"
        "     Server: http://127.0.0.1:11434, Ollama 0.5.7\n"
        "     Health: ok, 12 ms, checked 4s ago\n"
        "     Memory: 1.2 GB in 3 processes, CPU 1.5%\n"
        "     Models: 3 installed; 1 loaded: llama3:8b\n"
        "       Warm: llama3:8b (loaded), qwen2:0.5b\n"
        "     Daemon: n3d 0.1.0, pid 1234, up 2h 5min, socket /run/n3/n3d.sock"
    )


def test_status_dot_is_coloured_only_when_asked() -> None:
    coloured = render_status(samples.STATUS, now=samples.NOW, style=COLOR, clock=time.gmtime)
    assert coloured.startswith("\x1b[32m●\x1b[0m ollama")
    plain = render_status(samples.STATUS, now=samples.NOW, style=PLAIN, clock=time.gmtime)
    assert "\x1b[" not in plain


@pytest.mark.parametrize(
    ("state", "dot", "code"),
    [
        ("running", "\x1b[32m●", 0),
        ("external", "\x1b[32m●", 0),
        ("degraded", "\x1b[33m●", 0),
        ("starting", "\x1b[33m●", 3),
        ("stopping", "\x1b[33m●", 3),
        ("backoff", "\x1b[33m●", 3),
        ("stopped", "○", 3),
        ("fatal", "\x1b[31m×", 3),
        ("unreachable", "\x1b[31m×", 3),
        ("confused", "\x1b[33m?", 4),
    ],
)
def test_each_state_has_its_dot_and_exit_code(state: str, dot: str, code: int) -> None:
    result = {**samples.STATUS, "server": {**samples.STATUS["server"], "state": state}}
    assert render_status(result, now=samples.NOW, style=COLOR).startswith(dot)
    assert status_exit_code(result) == code


def test_status_without_a_server_section_is_unknown() -> None:
    assert status_exit_code({}) == 4
    assert "Active: unknown" in render_status({}, now=samples.NOW, style=PLAIN)


def test_status_explains_backoff_and_fatal() -> None:
    server = {
        **samples.STATUS["server"],
        "state": "backoff",
        "next_start_in_s": 4.0,
        "last_error": "exit code 1 during start",
    }
    text = render_status({**samples.STATUS, "server": server}, now=samples.NOW, style=PLAIN)
    assert "(next start in 4s)" in text
    assert "     Reason: exit code 1 during start" in text


def test_status_accepts_model_counts_instead_of_lists() -> None:
    result = {**samples.STATUS, "models": {"installed": 5, "loaded": 0, "warm": 2}}
    text = render_status(result, now=samples.NOW, style=PLAIN)
    assert "     Models: 5 installed; 0 loaded\n       Warm: 2" in text


def _with_models(**models: object) -> str:
    return render_status({**samples.STATUS, "models": models}, now=samples.NOW, style=PLAIN)


def test_status_names_a_few_models_as_the_daemon_sends_them() -> None:
    text = _with_models(
        installed=3,
        loaded=1,
        warm=2,
        loaded_names=["llama3:8b"],
        warm_names=["llama3:8b", "qwen2:0.5b"],
    )
    assert (
        "     Models: 3 installed; 1 loaded: llama3:8b\n"
        "       Warm: llama3:8b (loaded), qwen2:0.5b\n"
    ) in text
    assert text == render_status(samples.STATUS, now=samples.NOW, style=PLAIN)  # the docs' form


def test_status_counts_many_models_instead_of_naming_them() -> None:
    many = [f"m{i}:latest" for i in range(6)]
    text = _with_models(installed=9, loaded=5, warm=6, loaded_names=many[:5], warm_names=many)
    assert "     Models: 9 installed; 5 loaded\n       Warm: 6, 5 loaded\n" in text


def test_status_shows_a_failing_health_check() -> None:
    health = {"ok": False, "error": "connection refused", "age_s": 65.0}
    text = render_status({**samples.STATUS, "health": health}, now=samples.NOW, style=PLAIN)
    assert "     Health: failing: connection refused, checked 1min 5s ago" in text


def test_health_line() -> None:
    assert render_health(samples.HEALTH, now=samples.NOW, style=PLAIN) == (
        "ok: Ollama 0.5.7 answered in 12 ms (checked 4s ago, cached)"
    )
    failing: dict[str, Any] = {
        "ok": False,
        "error": "timed out after 5 s",
        "age_s": 0,
        "cached": False,
    }
    assert render_health(failing, now=samples.NOW, style=PLAIN) == (
        "failing: timed out after 5 s (checked 0s ago, fresh)"
    )


def test_version_lines() -> None:
    assert render_version("0.1.0", None) == "n3ctl 0.1.0"
    assert render_version("0.1.0", samples.STATUS["daemon"]) == (
        "n3ctl 0.1.0\nn3d 0.1.0 (pid 1234, socket /run/n3/n3d.sock)"
    )


def test_event_line() -> None:
    params = {
        "topic": "server.state",
        "at": samples.NOW,
        "from": "starting",
        "to": "running",
        "reason": "first health check",
    }
    assert render_event(params, now=0, style=PLAIN, clock=time.gmtime) == (
        '11:20:00 server.state from=starting to=running reason="first health check"'
    )


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (352_164_041, "352 MB"),
        (4_661_224_676, "4.7 GB"),
        (12_300_000_000_000, "12.3 TB"),
    ],
)
def test_human_bytes_is_decimal_like_ollama_list(n: int | None, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("s", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1min"),
        (200, "3min 20s"),
        (7380, "2h 3min"),
        (7200, "2h"),
        (86400, "1 day"),
        (3 * 86400 + 7200, "3 days 2h"),
    ],
)
def test_human_duration_is_systemd_like(s: float | None, text: str) -> None:
    assert human_duration(s) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (1, "1 second ago"),
        (5, "5 seconds ago"),
        (180, "3 minutes ago"),
        (7200, "2 hours ago"),
        (86400 * 3, "3 days ago"),
        (86400 * 14, "2 weeks ago"),
        (86400 * 90, "3 months ago"),
        (86400 * 800, "2 years ago"),
        (-240, "in 4 minutes"),
    ],
)
def test_ago_is_docker_like(delta: float, text: str) -> None:
    assert ago(samples.NOW - delta, samples.NOW) == text


def test_epoch_reads_numbers_iso_strings_and_go_zero_time() -> None:
    assert epoch(12.5) == 12.5
    assert epoch("2024-06-04T11:20:00Z") == samples.NOW
    assert epoch("2024-06-04T04:20:00.123456789-07:00") == pytest.approx(samples.NOW + 0.123456)
    assert epoch("0001-01-01T00:00:00Z") is None
    assert epoch("yesterday") is None
    assert epoch(None) is None
    assert epoch(True) is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_needs_a_tty_and_no_no_color() -> None:
    assert color_enabled(_Tty(), {}) is True
    assert color_enabled(io.StringIO(), {}) is False
    assert color_enabled(_Tty(), {"NO_COLOR": "1"}) is False
    assert color_enabled(_Tty(), {"NO_COLOR": ""}) is True  # no-color.org: set and non-empty
    assert color_enabled(_Tty(), {"TERM": "dumb"}) is False
