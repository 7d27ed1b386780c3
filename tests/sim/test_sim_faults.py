"""Every fault switch, the control file and the request log (docs/simulator.md)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from n3d.testing.simulator import SimulatorProcess

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]


def _pull_lines(url: str, model: str) -> list[dict]:
    with httpx.stream("POST", url + "/api/pull", json={"model": model}, timeout=10) as reply:
        assert reply.status_code == 200
        return [json.loads(line) for line in reply.iter_lines() if line]


def _write_control(path: Path, data: dict[str, object]) -> None:
    """Write the control file; return once every later request is answered under it.

    The simulator looks at the file at most every 100 ms (when a request comes, and on
    its own every 0.1 s), so a look that starts 0.15 s after the write reads it, and no
    answer from then on uses an older file. Not a race a busy machine can lose: it can
    only make the sleep longer.
    """
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
    time.sleep(0.15)


def test_crash_after_exits_non_zero_like_a_go_panic(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_CRASH_AFTER": "0.5"})
    assert sim.proc is not None and sim.proc.wait(5) == 2
    assert "panic:" in sim.stderr() and "goroutine 1 [running]" in sim.stderr()


def test_crash_code_is_configurable(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_CRASH_AFTER": "0.3", "OLLAMA_SIM_CRASH_CODE": "9"})
    assert sim.proc is not None and sim.proc.wait(5) == 9


def test_hang_after_keeps_socket_open_but_never_answers(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_HANG_AFTER": "0.5"})
    assert sim.is_ready()
    time.sleep(0.6)  # the switch is time-based: nothing to poll for
    with socket.create_connection(("127.0.0.1", sim.port), timeout=2):
        pass
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(sim.url + "/", timeout=0.5)
    assert sim.proc is not None and sim.proc.poll() is None


def test_fail_pulls_ends_every_pull_with_the_error_line(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_FAIL_PULLS": "1"})
    lines = _pull_lines(sim.url, "llama3.2")
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-1]["error"].startswith("pull model manifest: Get \"https://registry.ollama.ai")
    reply = httpx.post(sim.url + "/api/pull", json={"model": "llama3.2", "stream": False})
    assert reply.status_code == 500


def test_fail_pulls_with_a_chosen_text(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_FAIL_PULLS": "pull model manifest: 500: boom"})
    assert _pull_lines(sim.url, "llama3.2")[-1] == {"error": "pull model manifest: 500: boom"}


def test_midway_failure_then_resume(start_sim: StartSim, tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_FAIL_PULLS": "midway", "OLLAMA_SIM_CONTROL": str(control)})
    lines = _pull_lines(sim.url, "llama3.2")
    assert lines[-1] == {"error": "max retries exceeded: EOF"}
    reached = max(line.get("completed", 0) for line in lines[1:-1])
    assert 0 < reached < lines[1]["total"]
    assert httpx.get(sim.url + "/api/tags").json() == {"models": []}
    _write_control(control, {"fail_pulls": False})
    lines = _pull_lines(sim.url, "llama3.2")
    assert lines[-1] == {"status": "success"}
    first_progress = next(line for line in lines if "completed" in line)
    assert first_progress["completed"] >= reached  # resumed from the partial blob


def test_response_delay_slows_every_request(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_RESPONSE_DELAY": "0.3"})
    started = time.monotonic()
    httpx.get(sim.url + "/api/version")
    assert time.monotonic() - started >= 0.3


def test_version_switch(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_VERSION": "0.6.8"})
    assert httpx.get(sim.url + "/api/version").json() == {"version": "0.6.8"}
    assert "(version 0.6.8)" in sim.stderr()


def test_fail_loads_is_a_500_with_ollamas_text(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_FAIL_LOADS": "1", "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2"})
    reply = httpx.post(sim.url + "/api/generate", json={"model": "llama3.2"}, timeout=10)
    assert reply.status_code == 500
    assert reply.json()["error"].startswith("model runner has unexpectedly stopped")
    assert sim.runner_pids() == set()


def test_control_file_flips_hang_on_and_off(start_sim: StartSim, tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_CONTROL": str(control)})
    _write_control(control, {"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(sim.url + "/", timeout=0.5)
    _write_control(control, {"hang": False})
    sim.wait_ready(timeout=3)


def test_control_file_crash(start_sim: StartSim, tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_CONTROL": str(control)})
    _write_control(control, {"crash": 3})
    assert sim.proc is not None and sim.proc.wait(5) == 3


def test_control_file_overrides_version_and_fail_pulls(start_sim: StartSim,
                                                       tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_CONTROL": str(control)})
    _write_control(control, {"version": "9.9.9", "fail_pulls": "midway"})
    assert httpx.get(sim.url + "/api/version").json() == {"version": "9.9.9"}
    assert _pull_lines(sim.url, "all-minilm")[-1] == {"error": "max retries exceeded: EOF"}


def test_request_log_counts_every_call(start_sim: StartSim, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    sim = start_sim({"OLLAMA_SIM_REQUEST_LOG": str(log)})
    with httpx.Client(base_url=sim.url) as c:
        for _ in range(3):
            c.get("/api/tags")
        c.post("/api/pull", json={"model": "ghost", "stream": False})
        c.get("/missing")
    deadline = time.monotonic() + 5
    # A record is written just after its reply is sent, so the last one may lag a little.
    while len(records := [r for r in sim.request_log() if r["path"] != "/"]) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", "/api/tags", 200)] * 3 + [("POST", "/api/pull", 500), ("GET", "/missing", 404)]
    assert all(isinstance(r["ts"], float) for r in records)


def test_preload_installs_models_instantly(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2, nomic-embed-text, ghost",
                     "OLLAMA_SIM_PULL_SECONDS": "60"})
    names = {m["name"] for m in httpx.get(sim.url + "/api/tags").json()["models"]}
    assert names == {"llama3.2:latest", "nomic-embed-text:latest"}
    assert "no such model" in sim.stderr()


def test_poison_answers_hostile_json_for_tags_and_ps(start_sim: StartSim, tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_POISON": "1", "OLLAMA_SIM_CONTROL": str(control),
                     "OLLAMA_SIM_MODELS_PRELOAD": "tinyllama"})
    tags = httpx.get(sim.url + "/api/tags")
    assert tags.status_code == 200 and b'"size":1e400' in tags.content
    assert json.loads(tags.content)["models"][0]["size"] == float("inf")  # as Python reads it
    ps = httpx.get(sim.url + "/api/ps")
    assert ps.status_code == 200 and ps.content.startswith(b'{"models":' + b"[" * 1000)
    with pytest.raises(RecursionError):
        json.loads(ps.content)
    assert httpx.get(sim.url + "/api/version").status_code == 200  # other routes answer
    _write_control(control, {"poison": False})
    assert [m["name"] for m in httpx.get(sim.url + "/api/tags").json()["models"]] == [
        "tinyllama:latest"
    ]
    assert httpx.get(sim.url + "/api/ps").json() == {"models": []}
    _write_control(control, {"poison": True})
    assert b"1e400" in httpx.get(sim.url + "/api/tags").content
