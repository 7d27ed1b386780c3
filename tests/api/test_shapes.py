"""Every result has the shape DESIGN.md's method table names, and real answers keep to it.

Each handler declares its result as a TypedDict of :mod:`n3d.api.shapes`; these
tests hold those declarations to DESIGN.md's "main fields" and, with a real daemon,
hold every method's actual answer to its declaration: the same keys, in the
declared order, with values of the declared JSON types.
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import (
    Any,
    Literal,
    NotRequired,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import pytest

from n3d.api import shapes
from n3d.api.faults import fault_of
from n3d.api.methods import DaemonView, build_methods, health_result, server_result
from n3d.api.models import delete_result, warm_result
from n3d.client import RpcError
from n3d.errors import OllamaError
from n3d.models.results import DeleteResult
from n3d.models.warm_state import WarmRow
from n3d.rpc.dispatch import MethodTable
from n3d.state import ServerState, Snapshot
from n3d.supervisor.health import HealthReport, HealthResult
from n3d.testing import DaemonProcess, wait_until
from n3d.testing.simulator import free_port

# Documents owned elsewhere, passed through as they are (see n3d.api.shapes).
DOCUMENTS = {"config.get", "config.reload", "rpc.discover"}
# The registry's snapshot is typed where it is made (n3d.metrics.MetricsSnapshot):
# the aggregate is its own wire shape, with nothing of the domain to hide.
TYPED_ELSEWHERE = {"metrics": "n3d.metrics"}

# DESIGN.md's method table, "result (main fields)": a name maps to its nested fields.
_MODEL_ROWS = {"models": {"name", "size", "digest", "modified_at", "details"}}
_WARM_ROWS = {"models": {"name", "keep_alive", "loaded", "expires_at", "last_warmed_at"}}
DESIGN: dict[str, dict[str, Any] | set[str]] = {
    "status": {
        "daemon": {"version", "pid", "uptime_s", "socket"},
        "server": {"state", "mode", "pid", "base_url", "version", "restarts", "since",
                   "last_exit"},
        "health": set(),
        "resources": {"rss_bytes", "cpu_percent", "processes"},
        "models": {"installed", "loaded", "warm"},
    },
    "health": {"ok", "latency_ms", "checked_at", "age_s", "cached", "version", "error",
               "checks"},
    "server.start": {"state"},
    "server.stop": {"state"},
    "server.restart": {"state"},
    "models.list": {**_MODEL_ROWS, "cached": set(), "age_s": set()},
    "models.loaded": {"models": {"name", "size", "size_vram", "expires_at", "warm"}},
    "models.pull": {"model", "status", "duration_s"},
    "models.delete": {"model", "deleted"},
    "models.ensure": {"model", "available", "pulled"},
    "models.validate": {"valid", "normalized", "message"},
    "models.default": {"model"},
    "warm.list": _WARM_ROWS,
    "warm.add": _WARM_ROWS,
    "warm.remove": _WARM_ROWS,
    "capabilities": {"chat", "streaming", "embeddings", "function_calling", "vision"},
    "events.subscribe": {"topics"},
    "events.unsubscribe": {"topics"},
    "requests.list": {"requests": {"id", "method", "route", "model", "state", "started_at",
                                   "age_s", "ttft_s", "chunks", "tokens", "server"}},
    "requests.cancel": {"id", "cancelled"},
    "metrics.prometheus": {"text"},  # docs/protocol.md (a method of its own, not a param)
}  # fmt: skip
ERROR_DATA = {"kind", "model", "base_url", "suggestion"}


def _table() -> MethodTable:
    """The daemon's method table; building it touches none of the parts it is given."""
    view = DaemonView(
        servers=[],
        socket_path=Path("/unused"),
        settings=cast(Any, None),
        reload=lambda: None,
    )
    return build_methods(view)


def _declared() -> dict[str, Any]:
    return {m.name: get_type_hints(m.handler)["return"] for m in _table()}


def _element(tp: Any) -> Any:
    """A TypedDict itself, the TypedDict of a ``list[...]``, else None."""
    if is_typeddict(tp):
        return tp
    if get_origin(tp) is list and is_typeddict(get_args(tp)[0]):
        return get_args(tp)[0]
    return None


def _required(tp: Any) -> set[str]:
    # Not tp.__required_keys__: under `from __future__ import annotations` Python 3.11
    # cannot see NotRequired in the string annotations and counts every key required.
    hints = get_type_hints(tp, include_extras=True)
    return {key for key, hint in hints.items() if get_origin(hint) is not NotRequired}


def problems(value: Any, tp: Any, where: str = "result") -> list[str]:
    """How ``value`` (decoded JSON) differs from type ``tp``; empty when it fits."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        hints = get_type_hints(tp)
        found: list[str] = []
        missing = _required(tp) - value.keys()
        extra = value.keys() - hints.keys()
        if missing or extra:
            found.append(f"{where}: missing {sorted(missing)}, undeclared {sorted(extra)}")
        order = [k for k in hints if k in value]
        if [k for k in value if k in hints] != order:
            found.append(f"{where}: keys {list(value)}, declared order {order}")
        for key, item in value.items():
            if key in hints:
                found += problems(item, hints[key], f"{where}.{key}")
        return found
    if origin in (Union, types.UnionType):
        fits = any(not problems(value, arg, where) for arg in args)
        return [] if fits else [f"{where}: {value!r} is none of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not an array"]
        return [p for i, item in enumerate(value) for p in problems(item, args[0], f"{where}[{i}]")]
    if origin is dict:
        return [] if isinstance(value, dict) else [f"{where}: {value!r} is not an object"]
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} is not one of {args}"]
    if tp is type(None):
        return [] if value is None else [f"{where}: {value!r} is not null"]
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not a number"]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not an integer"]
    return [] if isinstance(value, tp) else [f"{where}: {value!r} is not {tp.__name__}"]


def _missing_fields(tp: Any, fields: dict[str, Any] | set[str], where: str) -> list[str]:
    hints = get_type_hints(tp)
    missing = [f"{where}.{name}" for name in fields if name not in hints]
    if isinstance(fields, dict):
        for name, inner in fields.items():
            nested = _element(hints.get(name))
            if inner and nested is not None:
                missing += _missing_fields(nested, inner, f"{where}.{name}")
            elif inner:
                missing.append(f"{where}.{name} (not an object)")
    return missing


def test_every_method_declares_its_result_shape() -> None:
    declared = _declared()
    assert set(DESIGN) | DOCUMENTS | set(TYPED_ELSEWHERE) == set(declared)
    for name, tp in declared.items():
        if name in DOCUMENTS:
            assert get_origin(tp) is dict, name
        elif name in TYPED_ELSEWHERE:
            assert is_typeddict(tp) and tp.__module__ == TYPED_ELSEWHERE[name], name
        else:
            assert is_typeddict(tp) and tp.__module__ == shapes.__name__, name


def test_the_shapes_carry_every_field_of_the_design_table() -> None:
    declared = _declared()
    missing = [m for name, fields in DESIGN.items() for m in _missing_fields(
        declared[name], fields, name)]  # fmt: skip
    assert not missing
    assert get_type_hints(shapes.ErrorData).keys() >= ERROR_DATA


def test_a_snapshot_is_shown_field_by_field_with_its_state_as_a_lowercase_string() -> None:
    data = server_result(Snapshot(state=ServerState.DEGRADED, pid=7))
    assert data["state"] == "degraded" and data["pid"] == 7
    assert not problems(data, shapes.Server)


def test_health_before_any_check_is_all_unknown_but_cached() -> None:
    data = health_result(None, None)
    assert data == {
        "ok": None,
        "latency_ms": None,
        "checked_at": None,
        "age_s": None,
        "cached": True,
        "version": None,
    }


def test_a_failed_health_check_shows_its_error_before_the_version() -> None:
    failed = HealthResult(False, None, 1.0, 1.0, "no answer within 5s", "timeout")
    data = health_result(HealthReport(failed, 0.12345, cached=False), "0.9.0")
    assert list(data) == [
        "ok", "latency_ms", "checked_at", "age_s", "cached", "error", "error_kind", "version",
    ]  # fmt: skip
    assert data["age_s"] == 0.123 and data["error_kind"] == "timeout"
    ok = health_result(HealthReport(HealthResult(True, 0.0041234, 1.0, 1.0), 0, True), "0.9.0")
    assert ok["latency_ms"] == 4.123 and "error" not in ok and not problems(ok, shapes.Health)


def test_warm_rows_show_wall_times_in_utc_and_deletes_say_warm_removed_only_when_true() -> None:
    row = WarmRow("m:latest", "1h", True, "2318-01-01T00:00:00Z", 0.5, None, "runtime")
    (shown,) = warm_result([row])["models"]
    assert shown["last_warmed_at"] == "1970-01-01T00:00:00.500Z"
    assert not problems(shown, shapes.WarmModel)
    assert delete_result(DeleteResult("m:latest", warm_removed=False)) == {
        "model": "m:latest",
        "deleted": True,
    }
    assert delete_result(DeleteResult("m:latest", True))["warm_removed"] is True


def test_the_checker_finds_a_renamed_a_missing_and_a_misordered_key() -> None:
    good: dict[str, Any] = {"model": "m", "status": "success", "duration_s": 1.5}
    assert not problems(good, shapes.Pull)
    assert problems({"model": "m", "status": "success", "seconds": 1.5}, shapes.Pull)
    assert problems({"model": "m", "status": "success"}, shapes.Pull)
    assert problems({"status": "success", "model": "m", "duration_s": 1.5}, shapes.Pull)
    assert problems({"model": "m", "status": "failed", "duration_s": 1.5}, shapes.Pull)
    assert problems({**good, "duration_s": True}, shapes.Pull)


# -- the same shapes, from a real daemon ------------------------------------------------


PROXY_PORT = free_port()


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[DaemonProcess]:
    proxy = {"proxy": {"listen": f"127.0.0.1:{PROXY_PORT}"}}  # requests.* answer rows
    d = DaemonProcess(short_dir, config=proxy, OLLAMA_SIM_MODELS_PRELOAD="tinyllama")
    try:
        yield d.start().wait_ready()
    finally:
        d.cleanup()


def _ask_proxy() -> None:
    with contextlib.suppress(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{PROXY_PORT}/api/tags", timeout=10).read()


@pytest.mark.slow
def test_every_method_answers_in_its_declared_shape(daemon: DaemonProcess) -> None:
    declared = _declared()
    answers: list[tuple[str, Any]] = []

    def call(method: str, params: Any = None) -> Any:
        result = daemon.call(method, params, timeout=30)
        answers.append((method, result))
        return result

    wait_until(lambda: daemon.call("status")["models"]["installed"] == 1, 10, "the listing")
    call("status")
    call("health")
    call("health", {"force": True})
    call("models.list")
    call("models.ensure", {"model": "tinyllama"})
    call("models.pull", {"model": "qwen2.5:0.5b"})
    call("models.ensure", {"model": "qwen2.5:0.5b", "pull": True})
    call("warm.add", {"model": "qwen2.5:0.5b", "keep_alive": "1h"})
    wait_until(lambda: daemon.call("warm.list")["models"][0]["loaded"], 10, "the warm load")
    call("warm.list")
    call("models.loaded")
    call("models.delete", {"model": "qwen2.5:0.5b"})  # warm: it leaves the list first
    call("warm.add", {"model": "tinyllama"})
    call("warm.remove", {"model": "tinyllama"})
    call("models.delete", {"model": "tinyllama"})
    call("models.validate", {"model": "llama3"})
    call("models.validate", {"model": "Bad Name"})
    call("models.default")
    call("capabilities")
    call("metrics")
    call("metrics.prometheus")
    daemon.set_control(response_delay=5)  # a proxied request stays in flight meanwhile
    time.sleep(0.3)  # the simulator reads its control file every 100 ms
    asker = threading.Thread(target=_ask_proxy, daemon=True)
    asker.start()
    wait_until(lambda: daemon.call("requests.list")["requests"], 10, "a proxied request")
    (row,) = call("requests.list")["requests"]
    call("requests.cancel", {"id": row["id"]})
    asker.join(10)
    daemon.set_control(response_delay=0)
    call("config.get")
    call("config.reload")
    call("events.subscribe", {"topics": ["health"]})
    call("events.unsubscribe")
    call("rpc.discover")
    call("server.stop")
    call("health")  # a failed check: error and error_kind
    call("status")
    call("server.start")
    call("server.restart")
    assert {method for method, _ in answers} == set(declared)
    found = [p for method, result in answers for p in problems(result, declared[method], method)]
    assert not found, "\n".join(found)
    with pytest.raises(RpcError) as info:
        daemon.call("models.ensure", {"model": "qwen2.5:0.5b"})
    assert not problems(info.value.data, shapes.ErrorData, "error.data")
    expected = fault_of(OllamaError.model_missing("qwen2.5:0.5b", "http://h:1"))
    assert expected is not None and list(info.value.data) == list(expected.data)
