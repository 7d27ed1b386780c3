"""A proxied stream keeps liveness from probing: real n3d, the simulator and the proxy.

n3d keeps a model warm and probes it every ``probe_interval`` (2 s here) while nothing
else shows it alive. A client streaming generates back to back through the proxy (the
simulator's answers are a dozen tokens, 0.05 s each) is that evidence: while it
streams, ``health.checks.inference`` reports the model alive from ``traffic``, and the
simulator's request log (every request serve answered, with its body) holds no probe
from n3d; once the streams are over, probes resume. The harness
is the one tests/supervisor/test_liveness_sim.py uses (a :class:`DaemonProcess` with a
warm model, :func:`n3d.testing.inference.probes`).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from n3d.testing import DaemonProcess, wait_until
from n3d.testing.inference import probes
from n3d.testing.simulator import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WARM = "tinyllama"
WARM_NAME = "tinyllama:latest"
PROBE_INTERVAL_S = 2.0
STREAMING_S = 4 * PROBE_INTERVAL_S  # generates back to back, each a dozen tokens


def _check(d: DaemonProcess) -> dict[str, Any] | None:
    for check in d.call("health")["checks"]["inference"]["models"]:
        if check["model"] == WARM_NAME:
            found: dict[str, Any] = check
            return found
    return None


def _probe_spans(d: DaemonProcess) -> list[tuple[float, float]]:
    """(start, end) wall-clock seconds of every probe the simulator answered."""
    return [(p["ts"] - p["duration_ms"] / 1000, p["ts"]) for p in probes(d)]


def test_a_proxied_stream_is_liveness_evidence_and_no_probe_is_sent(short_dir: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    config = {
        "warm": {"models": [WARM]},
        "liveness": {"probe_interval": PROBE_INTERVAL_S, "probe_timeout": 3},
        "proxy": {"listen": listen},
    }
    d = DaemonProcess(
        short_dir,
        config=config,
        OLLAMA_SIM_MODELS_PRELOAD=WARM,
        OLLAMA_SIM_TOKEN_SECONDS="0.05",
        OLLAMA_NUM_PARALLEL="2",  # a probe would not queue behind the stream: none is sent
    )
    try:
        d.start().wait_ready(within_s=30)
        wait_until(
            lambda: (c := _check(d)) and c["state"] == "ok" and c["source"] == "probe",
            30,
            "the warm model's first good probe",
        )
        began: list[float] = []
        finals: list[dict[str, Any]] = []

        def stream() -> None:
            with httpx.Client(base_url=f"http://{listen}", timeout=30) as client:
                while not began or time.time() - began[0] < STREAMING_S:
                    body = {"model": WARM, "prompt": f"answer {len(finals)}"}
                    with client.stream("POST", "/api/generate", json=body) as reply:
                        for line in reply.iter_lines():
                            if line.strip():
                                began.append(time.time())
                                last = json.loads(line)
                    finals.append(last)

        streamer = threading.Thread(target=stream)
        streamer.start()
        seen = wait_until(
            lambda: (c := _check(d)) and c["source"] == "traffic" and c,
            30,  # a round every interval sees it; generous for a loaded machine
            "health to show the stream as the model's evidence",
        )
        assert seen["state"] == "ok" and seen["ok"] is True
        sources = set()
        while streamer.is_alive():
            check = _check(d)
            if check is not None and began and time.time() - began[0] > PROBE_INTERVAL_S:
                sources.add(check["source"])
            time.sleep(0.2)
        streamer.join()
        ended = time.time()
        assert finals and all(final.get("done") is True for final in finals)
        assert sources == {"traffic"}
        # The first chunk was traffic at once; a probe of the round before it may end
        # a moment later, so the window opens one interval after the first chunk.
        window = (began[0] + PROBE_INTERVAL_S, ended)
        during = [s for s in _probe_spans(d) if s[0] <= window[1] and s[1] >= window[0]]
        assert during == [], f"probes while a stream was the evidence: {during}"
        # Without traffic the warm model is probed again.
        wait_until(
            lambda: any(start > ended for start, _ in _probe_spans(d)),
            30,
            "a probe once the stream was over",
        )
    finally:
        d.cleanup()
