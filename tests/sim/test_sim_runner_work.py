"""The runner does the inference, as Ollama's does, so a supervisor can tell busy from hung.

What n3d's liveness checks rely on (DESIGN.md "Liveness"; research/fidelity.md B8):
a generating runner's CPU time advances and an idle one's does not; with
`OLLAMA_NUM_PARALLEL=1` a second request waits behind the first, and leaves the
queue when its client goes away; `/api/ps`'s `expires_at` stays where it was while a
model is busy; `/api/show`'s `FROM` names the blob the runner has as `--model`; the
request log shows each request's body.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from n3d.supervisor.runners import progressed
from n3d.testing.simulator import SimulatorProcess, cpu_seconds

pytestmark = pytest.mark.slow

StartSim = Callable[..., SimulatorProcess]

# "hello there" gives llama3.2 a 22-token answer (n3d.sim.text is deterministic).
LONG = {"model": "llama3.2", "prompt": "hello there"}


def _runner(sim: SimulatorProcess) -> int:
    (pid,) = sim.runner_pids()
    return pid


def _expires_at(client: httpx.Client) -> str:
    (row,) = client.get("/api/ps").json()["models"]
    return str(row["expires_at"])


class Timed:
    """A streamed generate on its own thread: when its first and last lines arrived."""

    def __init__(self, url: str, body: dict[str, object], timeout: float = 30.0) -> None:
        self.first: float | None = None
        self.end: float | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(url, body, timeout))
        self._thread.start()

    def _run(self, url: str, body: dict[str, object], timeout: float) -> None:
        try:
            with httpx.stream("POST", url + "/api/generate", json=body, timeout=timeout) as r:
                for _ in r.iter_lines():
                    self.first = self.first or time.monotonic()
            self.end = time.monotonic()
        except httpx.HTTPError as exc:
            self.error = exc

    def join(self) -> Timed:
        self._thread.join(60)
        return self

    def wait_begun(self, within: float = 10.0) -> Timed:
        """Return once the first line came (a fixed head start raced a loaded machine)."""
        deadline = time.monotonic() + within
        while self.first is None and self.error is None:
            assert time.monotonic() < deadline, "the stream never began"
            time.sleep(0.01)
        return self


def test_a_generating_runner_spends_cpu_and_an_idle_one_does_not(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_TOKEN_SECONDS": "0.05"})
    with httpx.Client(base_url=sim.url, timeout=30) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        pid = _runner(sim)
        before = cpu_seconds(pid)
        time.sleep(0.6)
        idle = cpu_seconds(pid) - before
        started = time.monotonic()
        body = c.post("/api/generate", json={**LONG, "stream": False}).json()
        took = time.monotonic() - started
        busy = cpu_seconds(pid) - before - idle
    assert body["eval_count"] == 22 and took >= 22 * 0.05
    assert idle < 0.02  # blocked in accept: no CPU at all
    # A quarter of each 50 ms token is computed: ~0.27 s of CPU alone, a fraction of it
    # when other processes share the core; work by n3d's own rule either way.
    assert progressed(busy, took), (busy, took)
    rate = body["eval_count"] / body["eval_duration"] * 1e9
    assert 10 < rate <= 21  # about 20 tokens a second, measured by the runner


def test_num_parallel_1_queues_the_second_request_and_expires_at_stays_frozen(
    start_sim: StartSim,
) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_TOKEN_SECONDS": "0.04"})
    with httpx.Client(base_url=sim.url, timeout=30) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        idle_since = _expires_at(c)
        first = Timed(sim.url, {**LONG, "prompt": "first"}).wait_begun()
        second = Timed(sim.url, {**LONG, "prompt": "second"})
        seen = set()
        while first.end is None:
            seen.add(_expires_at(c))
            time.sleep(0.1)
        first.join()
        second.join()
        assert first.first is not None and second.first is not None and first.end is not None
        assert second.first >= first.end  # waited for the only slot
        assert seen == {idle_since}  # busy: the value from when it last went idle
        assert _expires_at(c) > idle_since  # idle again: the timer restarted


def test_num_parallel_2_serves_two_at_once(start_sim: StartSim) -> None:
    sim = start_sim(
        {
            "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2",
            "OLLAMA_SIM_TOKEN_SECONDS": "0.04",
            "OLLAMA_NUM_PARALLEL": "2",
        }
    )
    httpx.post(sim.url + "/api/generate", json={"model": "llama3.2"}, timeout=30)
    first = Timed(sim.url, {**LONG, "prompt": "first"}).wait_begun()
    second = Timed(sim.url, {**LONG, "prompt": "second"}).join()
    first.join()
    assert first.end is not None and second.first is not None and second.first < first.end


def test_a_queued_request_whose_client_leaves_is_dropped_with_499(
    start_sim: StartSim, tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    sim = start_sim(
        {
            "OLLAMA_SIM_MODELS_PRELOAD": "llama3.2",
            "OLLAMA_SIM_TOKEN_SECONDS": "0.04",
            "OLLAMA_SIM_REQUEST_LOG": str(log),
        }
    )
    httpx.post(sim.url + "/api/generate", json={"model": "llama3.2"}, timeout=30)
    first = Timed(sim.url, {**LONG, "prompt": "first"}).wait_begun()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sim.url + "/api/generate", json={**LONG, "stream": False}, timeout=0.3)
    first.join()
    assert first.end is not None
    # Had the abandoned request kept its place, this one would wait a whole generation:
    # its wait (all but its load and its decoding, the simulator's own figures) is
    # compared with its own generation's length, not with a wall-clock bound.
    after = httpx.post(
        sim.url + "/api/generate", json={**LONG, "prompt": "after", "stream": False}, timeout=30
    ).json()
    waited = after["total_duration"] - after["load_duration"] - after["eval_duration"]
    assert waited < after["eval_duration"] / 2, after
    generates = [r for r in sim.request_log() if r["path"] == "/api/generate"]
    assert [r["status"] for r in generates].count(499) == 1
    # Dropped when its client left, while the first still ran (`ts` is when each ended).
    (dropped,) = [r for r in generates if r["status"] == 499]
    (ran,) = [r for r in generates if r["body"] == {**LONG, "prompt": "first"}]
    assert dropped["ts"] < ran["ts"], (dropped, ran)


def test_show_from_names_the_blob_the_runner_has_as_model(start_sim: StartSim) -> None:
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2,nomic-embed-text"})
    with httpx.Client(base_url=sim.url, timeout=30) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        c.post("/api/embed", json={"model": "nomic-embed-text"})
        froms = {}
        for name in ("llama3.2", "nomic-embed-text"):
            modelfile = c.post("/api/show", json={"model": name}).json()["modelfile"]
            assert modelfile.startswith('# Modelfile generated by "ollama show"\n')
            (froms[name],) = re.findall(r"^FROM (/\S+)$", modelfile, re.MULTILINE)
    blobs = sim.runner_blobs()
    assert sorted(blobs.values()) == sorted(froms.values())
    assert all(Path(blob).is_file() and "/blobs/sha256-" in blob for blob in blobs.values())


def test_embedding_runner_spends_cpu_per_text(start_sim: StartSim) -> None:
    sim = start_sim(
        {"OLLAMA_SIM_MODELS_PRELOAD": "nomic-embed-text", "OLLAMA_SIM_TOKEN_SECONDS": "0.05"}
    )
    with httpx.Client(base_url=sim.url, timeout=30) as c:
        c.post("/api/embed", json={"model": "nomic-embed-text"})
        pid = _runner(sim)
        before, began = cpu_seconds(pid), time.monotonic()
        body = c.post("/api/embed", json={"model": "nomic-embed-text", "input": ["a"] * 16}).json()
        worked, window = cpu_seconds(pid) - before, time.monotonic() - began
    assert len(body["embeddings"]) == 16 and body["prompt_eval_count"] == 16
    # 16 texts, a quarter of 50 ms computed each (~0.2 s alone, less on a shared core).
    assert progressed(worked, window), (worked, window)


def test_request_log_records_each_body(start_sim: StartSim, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    sim = start_sim({"OLLAMA_SIM_MODELS_PRELOAD": "llama3.2", "OLLAMA_SIM_REQUEST_LOG": str(log)})
    probe = {"model": "llama3.2", "prompt": ".", "stream": False, "options": {"num_predict": 1}}
    with httpx.Client(base_url=sim.url, timeout=30) as c:
        assert c.post("/api/generate", json=probe).json()["eval_count"] == 1
        c.get("/api/tags")
        c.post("/api/show", content=b"not json")
    deadline = time.monotonic() + 5
    while len(records := [r for r in sim.request_log() if r["path"] != "/"]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [(r["path"], r["body"]) for r in records] == [
        ("/api/generate", probe),
        ("/api/tags", None),
        ("/api/show", "not json"),
    ]
