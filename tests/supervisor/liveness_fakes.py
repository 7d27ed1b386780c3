"""Stand-ins for liveness unit tests: an Ollama that answers as scripted, a runner tree
whose CPU the test moves, and clocks the test sets (imported, not collected)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from n3d.config import Settings, load_settings
from n3d.errors import ModelNotFound, OllamaError, OllamaTimeout
from n3d.ollama.chunks import InferenceStats
from n3d.ollama.types import LoadedModel
from n3d.supervisor.liveness import Liveness, RepairEvent
from n3d.supervisor.runners import Runner

BLOBS = "/models/blobs"
FOREVER = "2318-01-01T00:00:00Z"
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def blob(model: str) -> str:
    return f"{BLOBS}/sha256-{abs(hash(model)) % 10**12:012d}"


def loaded(model: str, expires_at: str = FOREVER, digest: str = "d1") -> LoadedModel:
    return LoadedModel(model, model, 1000, 1000, digest, expires_at)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class Clock:
    """Monotonic seconds and the matching wall time, both moved by ``advance``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_at = NOW

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.wall_at

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall_at += timedelta(seconds=seconds)


@dataclass
class FakeOllama:
    """`/api/ps`, `/api/show` and probes as the test scripts them.

    ``answers[model]`` is ``"ok"`` (answers at ``rates[model]`` tokens/s), ``"hang"``
    (times out, after ``on_hang()`` ran: the test moves the runners' CPU there),
    ``"error"`` (a 500), ``"gone"`` (404). ``probes`` records every probe.
    """

    clock: Clock
    models: list[LoadedModel] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    embed_only: set[str] = field(default_factory=set)
    ps_fails: bool = False
    probe_s: float = 0.05
    probes: list[tuple[str, bool, float]] = field(default_factory=list)
    shows: list[str] = field(default_factory=list)
    on_hang: Callable[[str], None] = lambda model: None

    async def ps(self) -> list[LoadedModel]:
        if self.ps_fails:
            raise OllamaTimeout("/api/ps did not answer", base_url="http://x")
        return list(self.models)

    async def show(self, model: str) -> dict[str, Any]:
        self.shows.append(model)
        caps = ["embedding"] if model in self.embed_only else ["completion"]
        modelfile = f'# FROM {model}\n\nFROM {blob(model)}\nTEMPLATE """x"""\n'
        return {"modelfile": modelfile, "capabilities": caps}

    async def probe(self, model: str, *, embed: bool, timeout_s: float) -> InferenceStats:
        self.probes.append((model, embed, timeout_s))
        answer = self.answers.get(model, "ok")
        if answer == "hang":
            self.on_hang(model)
            self.clock.advance(timeout_s)
            raise OllamaTimeout(f"no answer within {timeout_s}s", base_url="http://x")
        if answer == "error":
            self.clock.advance(self.probe_s)
            raise OllamaError("model runner has unexpectedly stopped", base_url="http://x")
        if answer == "gone":
            raise ModelNotFound(f"model '{model}' not found", model=model, base_url="http://x")
        self.clock.advance(self.probe_s)
        rate = self.rates.get(model, 50.0)
        if embed:
            return InferenceStats(prompt_eval_count=1)
        return InferenceStats(eval_count=1, eval_duration_ns=int(1e9 / rate))


class Tree:
    """serve's runners: one per model the test starts, CPU moved by hand."""

    def __init__(self) -> None:
        self.runners: dict[str, Runner] = {}
        self.next_pid = 2_000_000  # beyond pid_max: never a real process

    def start(self, model: str) -> Runner:
        self.next_pid += 1
        runner = Runner(self.next_pid, float(self.next_pid), blob(model), 0.5)
        self.runners[runner.model_path] = runner
        return runner

    def work(self, model: str, cpu_s: float) -> None:
        runner = self.runners[blob(model)]
        self.runners[blob(model)] = replace(runner, cpu_s=runner.cpu_s + cpu_s)

    def stop(self, model: str) -> None:
        self.runners.pop(blob(model), None)

    def find(self, serve_pid: int) -> dict[str, Runner]:
        return dict(self.runners)


def settings(tmp_path: Any, **keys: Any) -> Settings:
    """Test settings; ``failures_before_restart`` goes to [server], the rest to [liveness]."""
    server = {"health_timeout": 1, "failures_before_restart": 3, "stop_timeout": 1}
    if "failures_before_restart" in keys:
        server["failures_before_restart"] = keys.pop("failures_before_restart")

    def table(values: dict[str, Any]) -> str:
        return "".join(
            f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in values.items()
        )

    path = tmp_path / "n3d.toml"
    path.write_text("[server]\n" + table(server) + "[liveness]\n" + table(keys))
    return load_settings(path, {})


@dataclass
class Rig:
    """A Liveness over the fakes, with what it announced and reported."""

    liveness: Liveness
    ollama: FakeOllama
    tree: Tree
    clock: Clock
    warm: list[str]
    events: list[RepairEvent] = field(default_factory=list)
    problems: list[str | None] = field(default_factory=list)

    def problem(self, reason: str | None) -> None:
        self.problems.append(reason)

    def check(self, model: str) -> Any:
        return self.liveness.book.check(model)


def rig(tmp_path: Any, warm: list[str] | None = None, **liveness: Any) -> Rig:
    clock = Clock()
    ollama, tree = FakeOllama(clock), Tree()
    chosen = ["m:latest"] if warm is None else warm
    s = settings(tmp_path, **liveness)
    live = Liveness(
        ollama,
        settings=lambda: s,
        warm=lambda: chosen,
        find=tree.find,
        clock=clock,
        wall=clock.wall,
    )
    r = Rig(live, ollama, tree, clock, chosen)
    live.listeners.append(r.events.append)
    return r
