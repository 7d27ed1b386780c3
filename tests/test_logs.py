"""Logs are one JSON object per line with the four fields; metrics aggregate and never raise."""

from __future__ import annotations

import io
import json

import structlog
from structlog.testing import capture_logs

from n3d.logs import configure_logging, reconfigure_logging
from n3d.metrics import REGISTRY, metric


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_timestamp_level_logger_event_first() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    structlog.get_logger("n3d.test").info("hello", model="llama3:latest")
    (line,) = _lines(buf)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info" and line["logger"] == "n3d.test" and line["event"] == "hello"
    assert str(line["timestamp"]).endswith("Z")
    assert line["model"] == "llama3:latest"


def test_level_filter_drops_debug() -> None:
    buf = io.StringIO()
    configure_logging("json", "warning", file=buf)
    log = structlog.get_logger("n3d.test")
    log.info("quiet")
    log.warning("loud")
    assert [x["event"] for x in _lines(buf)] == ["loud"]


def test_exceptions_are_a_structured_field_on_one_line() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        structlog.get_logger("n3d.test").exception("failed")
    assert len(buf.getvalue().splitlines()) == 1
    (line,) = _lines(buf)
    exc = line["exception"]
    assert isinstance(exc, list) and exc[0]["exc_type"] == "ValueError"


def test_auto_is_json_when_not_a_tty() -> None:
    buf = io.StringIO()
    configure_logging("auto", "info", file=buf)
    structlog.get_logger("x").info("e")
    assert _lines(buf)[0]["event"] == "e"


def test_console_format_is_not_json() -> None:
    buf = io.StringIO()
    configure_logging("console", "info", file=buf)
    structlog.get_logger("x").info("readable")
    assert "readable" in buf.getvalue()
    assert not buf.getvalue().startswith("{")


def test_metric_event_shape_and_registry() -> None:
    with capture_logs() as logs:
        metric("ollama.request.duration", 0.25, "s", model="m")
        metric("ollama.request.duration", 0.75, "s", model="m")
        metric("ollama.server.restarts", 1, "{restart}")
        metric("ollama.server.restarts", 1, "{restart}")
        metric("ollama.models.count", 3, "{model}")
        metric("ollama.models.count", 2, "{model}")
    assert logs[0] == {
        "event": "metric",
        "metric": "ollama.request.duration",
        "value": 0.25,
        "unit": "s",
        "tags": {"model": "m"},
        "log_level": "info",
    }
    snap = REGISTRY.snapshot()
    assert snap["counters"]["ollama.server.restarts"] == 2
    assert snap["gauges"]["ollama.models.count"] == 2
    hist = snap["histograms"]["ollama.request.duration"]
    assert (hist["count"], hist["sum"], hist["p50"], hist["p99"]) == (2, 1.0, 0.25, 0.75)


def test_metric_never_raises() -> None:
    metric("x", "not a number", "s")  # type: ignore[arg-type]
    assert "x" not in REGISTRY.snapshot()["histograms"]


def test_nan_and_infinity_still_give_valid_json() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    structlog.get_logger("x").info("odd", a=float("nan"), b=[float("inf")])
    (line,) = _lines(buf)
    assert line["a"] == "nan" and line["b"] == ["inf"]


def test_timestamps_have_a_fixed_width() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    structlog.get_logger("x").info("e")
    stamp = str(_lines(buf)[0]["timestamp"])
    assert len(stamp) == len("2026-11-25T00:40:22.610247Z") and stamp.endswith("Z")


def test_a_reload_changes_the_level_and_format_of_the_running_logs() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", file=buf)
    log = structlog.get_logger("n3d.test")  # taken before the reload, as modules do
    log.debug("hidden")
    assert reconfigure_logging("json", "debug") is True
    log.debug("shown")
    assert [x["event"] for x in _lines(buf)] == ["shown"]
    assert reconfigure_logging("console", "warning") is True
    log.info("hidden too")
    log.warning("plain")
    assert buf.getvalue().splitlines()[-1].startswith("20")  # a console line, same output
    assert "plain" in buf.getvalue().splitlines()[-1]


def test_a_format_forced_on_the_command_line_survives_a_reload() -> None:
    buf = io.StringIO()
    configure_logging("console", "info", file=buf, force_format="json")
    assert reconfigure_logging("console", "debug") is True
    structlog.get_logger("n3d.test").debug("still json")
    assert [x["event"] for x in _lines(buf)] == ["still json"]


def test_a_reload_leaves_logging_alone_when_n3d_did_not_configure_it() -> None:
    # n3d used as a library, or a test capturing logs: not ours to change.
    assert reconfigure_logging("json", "debug") is False
    with capture_logs() as captured:
        structlog.get_logger("n3d.test").info("captured")
    assert [e["event"] for e in captured] == ["captured"]
