"""Clients streaming generates through n3d's proxy while the faults run, and what became of each.

With ``proxy_clients`` set, the drill starts n3d with ``[proxy] listen`` on a free port and
:func:`stream_client` threads that send ``POST /api/generate`` (streamed, a few tokens)
through it back to back, through every fault (``slow`` included: the proxy tells liveness
each finished generation's decode rate, so a model slowed while they stream is found by
their traffic). Every request ends in one outcome (:class:`StreamTally`):

- ``ok``: 200 and Ollama's final object;
- ``runner_killed``: Ollama's 500 with a runner-death text before anything began
  (n3d replaced the hung runner the request waited on); excused only while a fault
  that hangs a runner was under way (:data:`KILLS_RUNNER`), else a failure;
- ``cut``: the answer had begun and ended with an in-stream ``{"error": ...}`` line
  (the proxy's "stopped while answering" when serve died, or Ollama's own text when the
  runner died under it); excused only if a fault that ends serve or a runner was under
  way meanwhile (:data:`KILLS_SERVE`), else a failure;
- ``lost_to_n3d_kill`` / ``unavailable``: cut by n3d's own SIGKILL (the proxy lives in
  n3d), or refused while n3d was down: counted apart, as for the control socket;
- ``failed``: anything else: a refusal, an error status, a stream cut silently, no end
  within ``STREAM_BOUND_S`` (a hang).

Standard library only (``http.client``): the drill's clients stay independent of the
proxy's own HTTP stack.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from n3d.testing.drill.bounds import STREAM_BOUND_S, STREAM_TOKENS, WARM_MODEL
from n3d.testing.drill.tally import DownWindows

__all__ = ["KILLS_SERVE", "StreamOutcome", "StreamTally", "stream_client"]

# Faults that end serve (the drill's SIGKILL, n3d's restart after a stop, a hang or a
# slow rate) or a runner (a runner repair): a stream under way may be cut by them.
KILLS_SERVE = frozenset(
    {"serve_kill", "sigstop", "sim_hang", "hang_inference", "hang_runner", "slow", "n3d_kill"}
)
# Faults after which n3d kills a runner that requests wait on before they began.
KILLS_RUNNER = frozenset({"hang_inference", "hang_runner"})
# Ollama's 500 texts for a request whose runner died under it (n3d.sim.llm has both):
# mid-answer, and while it was starting or before it answered.
RUNNER_DIED = (
    "an error was encountered while running the model",
    "model runner has unexpectedly stopped",
)


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    kind: str  # ok | cut | lost_to_n3d_kill | unavailable | failed
    sent_s: float  # drill time: the request sent
    ended_s: float  # drill time: its end
    began_s: float | None = None  # drill time: the first line of the answer
    detail: str = ""


class StreamTally:
    """Every proxied request's outcome, shared by the stream client threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: list[StreamOutcome] = []

    def add(self, outcome: StreamOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def judged(
        self, serve: list[tuple[float, float]], runner: list[tuple[float, float]]
    ) -> list[StreamOutcome]:
        """The outcomes with every ``cut`` outside the ``serve`` windows (drill times of
        faults that end serve) and every ``runner_killed`` outside the ``runner`` ones
        made ``failed``."""
        out = []
        for o in list(self.outcomes):
            windows = {"cut": serve, "runner_killed": runner}.get(o.kind)
            if windows is not None and not any(
                start <= o.ended_s and end >= (o.began_s or o.sent_s) for start, end in windows
            ):
                detail = f"{o.kind} outside a fault: {o.detail}"
                o = StreamOutcome("failed", o.sent_s, o.ended_s, o.began_s, detail)
            out.append(o)
        return out

    @staticmethod
    def summary(outcomes: list[StreamOutcome]) -> dict[str, Any]:
        counts = Counter(o.kind for o in outcomes)
        cut = [o.detail for o in outcomes if o.kind == "cut"]
        return {
            "sent": len(outcomes) - counts["unavailable"],
            **{
                k: counts[k]
                for k in ("ok", "cut", "runner_killed", "lost_to_n3d_kill", "unavailable", "failed")
            },
            "cut_serve": sum("stopped while answering" in d for d in cut),
            "cut_runner": sum("stopped while answering" not in d for d in cut),
        }


class StreamingDrill(Protocol):
    """What a stream client reads of the :class:`~.drill.Drill` (which imports this
    module for :class:`StreamTally`: named here, not imported back)."""

    stop: threading.Event
    down: DownWindows
    streams: StreamTally
    proxy_address: tuple[str, int]

    def now(self) -> float: ...


def stream_client(drill: StreamingDrill, n: int) -> None:
    """Generate through the proxy, one request after another, until ``drill.stop``."""
    i = 0
    while not drill.stop.is_set():
        i += 1
        outcome = _one(drill, f"drill client {n} request {i}")
        drill.streams.add(outcome)
        if outcome.kind == "unavailable":
            drill.stop.wait(0.2)


def _one(drill: StreamingDrill, prompt: str) -> StreamOutcome:
    host, port = drill.proxy_address
    body = {"model": WARM_MODEL, "prompt": prompt, "options": {"num_predict": STREAM_TOKENS}}
    t0 = time.monotonic()
    sent, began, last = drill.now(), None, None
    conn = http.client.HTTPConnection(host, port, timeout=STREAM_BOUND_S)
    try:
        try:
            conn.request(
                "POST", "/api/generate", json.dumps(body), {"Content-Type": "application/json"}
            )
        except OSError as exc:
            kind = "unavailable" if drill.down.crossed(t0, t0, time.monotonic()) else "failed"
            return StreamOutcome(kind, sent, drill.now(), detail=f"not sent: {exc!r}")
        reply = conn.getresponse()
        if reply.status != 200:
            text = reply.read()[:200].decode(errors="replace")
            died = reply.status == 500 and any(t in text for t in RUNNER_DIED)
            kind = "runner_killed" if died else "failed"
            return _ended(drill, t0, kind, sent, None, f"{reply.status} {text}")
        while True:
            if time.monotonic() - t0 > STREAM_BOUND_S:
                return _ended(drill, t0, "failed", sent, began, f"no end in {STREAM_BOUND_S}s")
            line = reply.readline()
            if not line:
                break
            if line.strip():
                began = drill.now() if began is None else began
                last = json.loads(line)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _ended(drill, t0, "failed", sent, began, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if isinstance(last, dict) and "error" in last:
        return StreamOutcome("cut", sent, drill.now(), began, str(last["error"])[:160])
    if isinstance(last, dict) and last.get("done") is True:
        return StreamOutcome("ok", sent, drill.now(), began)
    return _ended(drill, t0, "failed", sent, began, "ended without its final object")


def _ended(
    drill: StreamingDrill, t0: float, kind: str, sent: float, began: float | None, detail: str
) -> StreamOutcome:
    """A request that did not end well: lost to n3d's SIGKILL if n3d went down meanwhile."""
    if kind == "failed" and drill.down.crossed(t0, t0, time.monotonic()):
        kind = "lost_to_n3d_kill"
    return StreamOutcome(kind, sent, drill.now(), began, detail)
