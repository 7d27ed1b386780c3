"""The four inference faults (DESIGN.md "The simulator"): how real Ollama breaks while
`GET /` still answers, each set by environment and by the control file, and lifted
by the control file."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest

from n3d.supervisor.runners import progressed
from n3d.testing.simulator import SimulatorProcess, cpu_seconds

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]

GENERATE = {"model": "llama3.2", "prompt": ".", "stream": False, "options": {"num_predict": 1}}


def _control(path: Path, data: dict[str, object]) -> None:
    """Replace the control file; return once later requests are answered under it
    (the simulator looks at most every 100 ms, and its fault watcher every 100 ms)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
    time.sleep(0.25)


def _hangs(url: str, path: str, body: dict[str, object], within: float = 0.5) -> bool:
    try:
        httpx.post(url + path, json=body, timeout=within)
    except httpx.ReadTimeout:
        return True
    return False


def _all_hang(url: str, requests: list[tuple[str, dict[str, object]]]) -> bool:
    """Whether every request goes unanswered for half a second (sent all at once)."""
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda p=path, b=body: results.append(_hangs(url, p, b)))
        for path, body in requests
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results == [True] * len(requests)


def _ps(url: str) -> list[dict]:
    return list(httpx.get(url + "/api/ps", timeout=5).json()["models"])


def _eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def _settled(lines: list[float], quiet: float = 0.3) -> bool:
    """Whether no line came for ``quiet`` seconds (after a wait of that long)."""
    count = len(lines)
    time.sleep(quiet)
    return len(lines) == count


def _requests_at(runner: int) -> int:
    """Connections the server holds open to ``runner`` now: its requests under way
    (the runner answers with `Connection: close`, one connection per request)."""
    conns = psutil.Process(runner).net_connections("tcp")
    return sum(1 for conn in conns if conn.status == psutil.CONN_ESTABLISHED)


def _epoch(stamp: str) -> float:
    """An RFC 3339 time as Go writes it (up to 9 fraction digits) in seconds."""
    match = re.fullmatch(r"([^.]+)(?:\.(\d+))?(.*)", stamp)
    assert match is not None
    head, fraction, zone = match.groups()
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]}{zone}").timestamp()


def _runner_of(sim: SimulatorProcess, model: str) -> int:
    """The pid of the runner whose --model is the blob /api/show names for `model`."""
    modelfile = httpx.post(sim.url + "/api/show", json={"model": model}).json()["modelfile"]
    blob = next(line[5:] for line in modelfile.splitlines() if line.startswith("FROM /"))
    (pid,) = [pid for pid, path in sim.runner_blobs().items() if path == blob]
    return pid


def test_hang_inference_holds_generate_chat_and_embed_while_the_rest_answers(
    start_sim: StartSim, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    sim = start_sim(
        {
            "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,nomic-embed-text",
            "OLLAMA_SIM_HANG_INFERENCE": "1",
            "OLLAMA_SIM_CONTROL": str(control),
        }
    )
    chat = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    assert _all_hang(
        sim.url,
        [
            ("/api/generate", GENERATE),
            ("/api/chat", chat),
            ("/api/embed", {"model": "nomic-embed-text", "input": "."}),
            ("/api/generate", {"model": "llama3.2"}),  # a load, too
        ],
    )
    with httpx.Client(base_url=sim.url, timeout=2) as c:
        assert c.get("/").text == "Ollama is running"
        assert c.get("/api/version").status_code == 200
        assert len(c.get("/api/tags").json()["models"]) == 2
        assert c.get("/api/ps").json() == {"models": []}  # nothing reached the scheduler
    assert sim.runner_pids() == set()
    _control(control, {"hang_inference": False})
    assert httpx.post(sim.url + "/api/generate", json=GENERATE, timeout=10).status_code == 200
    _control(control, {"hang_inference": True})
    assert _hangs(sim.url, "/api/generate", GENERATE)


def test_hang_inference_by_control_file_and_a_request_held_resumes_when_lifted(
    start_sim: StartSim, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_CONTROL": str(control)})
    assert httpx.post(sim.url + "/api/generate", json=GENERATE, timeout=10).status_code == 200
    _control(control, {"hang_inference": True})
    held: list[int] = []
    waiter = threading.Thread(
        target=lambda: held.append(
            httpx.post(sim.url + "/api/generate", json=GENERATE, timeout=10).status_code
        )
    )
    waiter.start()
    time.sleep(0.5)
    assert held == []
    _control(control, {})
    waiter.join(10)
    assert held == [200]


def test_hang_runner_hangs_one_model_until_its_runner_dies(start_sim: StartSim) -> None:
    sim = start_sim(
        {
            "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,tinyllama",
            "OLLAMA_SIM_HANG_RUNNER": "llama3.2",
            "OLLAMA_SIM_TOKEN_SECONDS": "0.01",
        }
    )
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        for model in ("llama3.2", "tinyllama"):
            assert c.post("/api/generate", json={"model": model}).status_code == 200  # loads
        hung = _runner_of(sim, "llama3.2")
        before = cpu_seconds(hung)
        assert _hangs(sim.url, "/api/generate", GENERATE, within=1.0)
        assert cpu_seconds(hung) - before < 0.02  # accepted, and no work done
        assert c.post("/api/generate", json={**GENERATE, "model": "tinyllama"}).status_code == 200
        assert c.get("/").status_code == 200
        # A request in flight when the runner dies gets Ollama's error. (Killed once it
        # has reached the runner: killed sooner, the request would load a new one.)
        answers: list[httpx.Response] = []
        waiter = threading.Thread(
            target=lambda: answers.append(c.post("/api/generate", json=GENERATE))
        )
        # The request abandoned above is dropped (its connection closed) once the
        # simulator sees its client gone: wait for that, so only the new one counts.
        _eventually(lambda: _requests_at(hung) == 0)
        waiter.start()
        _eventually(lambda: _requests_at(hung) == 1)
        os.kill(hung, signal.SIGTERM)
        waiter.join(10)
        assert answers[0].status_code == 500
        assert answers[0].json()["error"].startswith("an error was encountered while running")
        # The next request loads the model again, and the new runner answers.
        reply = c.post("/api/generate", json=GENERATE)
        assert reply.status_code == 200 and reply.json()["load_duration"] > 100_000_000
        assert _runner_of(sim, "llama3.2") != hung
    assert sim.proc is not None and sim.proc.poll() is None


def test_hang_runner_by_control_file_stops_a_stream_and_lifting_it_resumes(
    start_sim: StartSim, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    sim = start_sim(
        {
            "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2",
            "OLLAMA_SIM_CONTROL": str(control),
            "OLLAMA_SIM_TOKEN_SECONDS": "0.1",
        }
    )
    httpx.post(sim.url + "/api/generate", json={"model": "llama3.2"}, timeout=10)
    runner = _runner_of(sim, "llama3.2")
    lines: list[float] = []

    def stream() -> None:
        body = {"model": "llama3.2", "prompt": "hello there"}  # 22 tokens, about 2.2 s
        with httpx.stream("POST", sim.url + "/api/generate", json=body, timeout=20) as reply:
            lines.extend(time.monotonic() for _ in reply.iter_lines())

    reader = threading.Thread(target=stream)
    reader.start()
    _eventually(lambda: len(lines) >= 2)  # under way (a fixed sleep raced the stream's end)
    _control(control, {"hang_runner": "llama3.2:latest"})
    # The switch reaches the runner within the watcher's 0.1 s; the token it was
    # computing may still come, then nothing.
    _eventually(lambda: "runner stops answering" in sim.stderr())
    stopped_at = time.monotonic()
    _eventually(lambda: _settled(lines))
    stalled = len(lines)
    before = cpu_seconds(runner)
    time.sleep(0.8)
    assert reader.is_alive() and len(lines) == stalled < 23  # the stream stalled mid-way
    assert cpu_seconds(runner) - before < 0.02
    _control(control, {"hang_runner": False})
    reader.join(10)
    assert len(lines) == 23 and lines[-1] - stopped_at > 0.8


def test_wedge_unload_keeps_the_model_listed_in_the_past_until_its_runner_dies(
    start_sim: StartSim,
) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_WEDGE_UNLOAD": "1"})
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        runner = _runner_of(sim, "llama3.2")
        assert (
            c.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0}).status_code == 200
        )
        time.sleep(0.3)
        (row,) = c.get("/api/ps").json()["models"]  # "Stopping..." in `ollama ps`
        assert _epoch(row["expires_at"]) < time.time()
        assert _hangs(sim.url, "/api/generate", GENERATE)
        assert sim.runner_pids() == {runner}
        before = cpu_seconds(runner)
        time.sleep(0.3)
        assert cpu_seconds(runner) - before < 0.02  # wedged, not working
        os.kill(runner, signal.SIGTERM)
        _eventually(lambda: _ps(sim.url) == [])
        assert c.post("/api/generate", json=GENERATE).status_code == 200  # loads again
        assert _runner_of(sim, "llama3.2") != runner


def test_wedge_unload_by_control_file_and_lifting_it_completes_the_unload(
    start_sim: StartSim, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_CONTROL": str(control)})
    _control(control, {"wedge_unload": True})
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        c.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0.3})
        time.sleep(0.8)
        assert [m["name"] for m in _ps(sim.url)] == ["llama3.2:latest"]
        assert len(sim.runner_pids()) == 1
        _control(control, {"wedge_unload": False})
        _eventually(lambda: _ps(sim.url) == [] and sim.runner_pids() == set())


def test_slow_stretches_tokens_keeps_cpu_busy_and_ps_shows_all_in_vram(
    start_sim: StartSim, tmp_path: Path
) -> None:
    control = tmp_path / "control.json"
    sim = start_sim(
        {
            "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2",
            "OLLAMA_SIM_TOKEN_SECONDS": "0.01",
            "OLLAMA_SIM_SLOW": "10",
            "OLLAMA_SIM_CONTROL": str(control),
        }
    )
    # Ten tokens: a rate over more steps is less moved by one late wake-up at the end.
    probe = {**GENERATE, "options": {"num_predict": 10}}

    def rate(c: httpx.Client) -> float:
        body = c.post("/api/generate", json=probe).json()
        return float(body["eval_count"] / body["eval_duration"] * 1e9)

    with httpx.Client(base_url=sim.url, timeout=10) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        runner = _runner_of(sim, "llama3.2")
        before, began = cpu_seconds(runner), time.monotonic()
        slow = rate(c)
        worked, window = cpu_seconds(runner) - before, time.monotonic() - began
        # Tokens of 0.1 s, a quarter of each computed: about 0.25 s of CPU alone, less
        # when other processes share the core (a loaded run met 0.04 for five). What
        # matters is that n3d's own rule sees work, which a hung runner never shows.
        assert progressed(worked, window), (worked, window)
        (row,) = c.get("/api/ps").json()["models"]
        assert row["size_vram"] == row["size"]  # `ollama ps` says 100% GPU
        _control(control, {"slow": 1})
        fast = rate(c)
        assert c.get("/api/ps").json()["models"][0]["size_vram"] == 0
        _control(control, {"slow": 20})
        slower = rate(c)
    assert slow < 12 and fast > 50 and slower < 6
