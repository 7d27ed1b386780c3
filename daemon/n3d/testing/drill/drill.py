"""One drill's shared state and the waits every fault shares: :class:`Drill`.

A :class:`Drill` owns the daemon under test (an :class:`n3d.testing.DaemonProcess` in
its own temp home, started from the drill's base config with the warm model preloaded),
the simulator's control switches, the request :class:`~.tally.Stats` and n3d's down
windows, the fault records and leak samples, and a control connection whose calls are
counted like any client's. Its waits (:meth:`Drill.settled`, :meth:`Drill.recover`)
judge recovery after a fault; :func:`poll` is their retrying loop.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from n3d.client import Connection, DaemonUnreachable, RpcError
from n3d.testing import DaemonProcess
from n3d.testing.drill.bounds import (
    BASE_CONFIG,
    CONFIG_A,
    FAULT_KINDS,
    PROXY_HOLD_S,
    RECOVERY_BOUND_S,
    REQUEST_BOUND_S,
    WARM_MODEL,
    WEDGE_MODEL,
)
from n3d.testing.drill.checks import group_members
from n3d.testing.drill.records import FaultRecord, LeakSample
from n3d.testing.drill.streams import StreamTally
from n3d.testing.drill.tally import DownWindows, Stats
from n3d.testing.servers import FleetProcess
from n3d.testing.simulator import free_port


def poll(check: Callable[[], Any], within_s: float, every_s: float = 0.1) -> Any:
    """``check()`` every ``every_s`` until truthy (that value) or ``within_s`` passed (None)."""
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(DaemonUnreachable, RpcError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            return None
        time.sleep(every_s)


class Drill:
    """The daemon in ``home`` and everything the load threads and faults share."""

    def __init__(
        self,
        home: Path,
        seed: int,
        short: bool,
        progress: Callable[[str], None],
        *,
        proxy_clients: int = 0,
        servers: int = 1,
    ):
        self.home = home
        self.rng = random.Random(seed)
        self.short = short
        self.say = progress
        self.proxy_clients = proxy_clients
        self.proxy_address = ("127.0.0.1", free_port())
        self.base: dict[str, dict[str, Any]] = dict(BASE_CONFIG)
        env = {"OLLAMA_SIM_MODELS_PRELOAD": f"{WARM_MODEL},{WEDGE_MODEL}"}
        if proxy_clients:
            host, port = self.proxy_address
            self.base["proxy"] = {"listen": f"{host}:{port}", "hold_timeout": PROXY_HOLD_S}
            # Serve queues as Ollama does (OLLAMA_NUM_PARALLEL, default 1): a slot per
            # client and two for probes and the faults' own generations, so no request
            # waits in serve's queue through a second kill (tests/proxy/test_drills.py).
            env["OLLAMA_NUM_PARALLEL"] = str(proxy_clients + 2)
        self.config: dict[str, dict[str, Any]] = {**self.base, **CONFIG_A}
        self.kinds: tuple[str, ...] = (
            FAULT_KINDS  # what the schedule injects (checked: every one was)
        )
        # One server is n3d's `default` (no [[servers]]); several are a fleet whose every
        # server keeps the warm model (pinned there), each fault aimed at ``target``.
        self.names: tuple[str, ...] = ("default",)
        if servers > 1:
            self.names = tuple(f"gpu{i}" for i in range(servers))
            del env["OLLAMA_SIM_MODELS_PRELOAD"]  # installed once: the directory is shared
            pinned = {name: [WARM_MODEL] for name in self.names}
            models = [WARM_MODEL, WEDGE_MODEL]
            self.fleet: FleetProcess | None = FleetProcess(
                home, self.names, config=self.config, pinned=pinned, models=models
            )
            self.d: DaemonProcess = self.fleet
        else:
            self.fleet = None
            self.d = DaemonProcess(home, config=self.config)
        self.d.env.update(env)
        # The simulators' switches, per server (each fleet server has its control file).
        self._overrides: dict[str, dict[str, Any]] = {n: {"pull_seconds": 1.5} for n in self.names}
        for name in reversed(self.names):
            self.target = name
            self.write_control()
        self.down = DownWindows()
        self.stats = Stats(self.down)
        self.streams = StreamTally()
        self.faults: list[FaultRecord] = []
        self.samples: list[LeakSample] = []
        self.phase = "warmup"
        self.kill_offsets: list[int] = []  # log size when n3d was SIGKILLed
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.late_checks: list[threading.Thread] = []
        self.t0 = time.monotonic()
        self.t0_wall = time.time()  # log timestamps are wall clock
        self.pull_round = 0
        # Models whose download was interrupted: the simulator keeps the partial blob
        # and the next pull resumes it, so fast that a cancel may arrive after success.
        self.partial: set[str] = set()
        self._ctl: Connection | None = None
        self._ctl_opened = 0.0

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One call on the drill's own connection, counted in ``stats`` like any client's."""
        t0 = time.monotonic()
        if self._ctl is None:
            try:
                self._ctl = Connection(self.d.socket, timeout=REQUEST_BOUND_S + 1)
            except DaemonUnreachable as exc:
                self.stats.unreachable(method, exc, t0, t0, sent=False)
                raise
            self._ctl_opened = t0
        try:
            result = self._ctl.call(method, params)
        except RpcError as exc:
            self.stats.error(method, exc.code, time.monotonic() - t0, exc.message)
            raise
        except DaemonUnreachable as exc:
            self.stats.unreachable(method, exc, t0, self._ctl_opened, sent=True)
            self.close_control()
            raise
        self.stats.ok(method, time.monotonic() - t0)
        return result

    def status(self) -> dict[str, Any]:
        """``status``, with ``server`` the target's entry of ``servers`` in a fleet."""
        result: dict[str, Any] = self.call("status")
        if self.fleet is not None:
            found = [s for s in result["servers"] if s["name"] == self.target]
            result = {**result, "server": found[0]}
        return result

    def servers(self) -> list[dict[str, Any]]:
        """Every server's ``status`` block (``status.servers``; ``server`` for one)."""
        status = self.call("status")
        return list(status["servers"]) if self.fleet is not None else [status["server"]]

    def scoped(self) -> dict[str, Any] | None:
        """The params naming the target server in a fleet (none for one server)."""
        return {"server": self.target} if self.fleet is not None else None

    @property
    def port(self) -> int:
        """The target server's port (its simulator)."""
        return self.fleet.ports[self.target] if self.fleet is not None else self.d.port

    @property
    def overrides(self) -> dict[str, Any]:
        """The target server's simulator switches (write them with :meth:`write_control`)."""
        return self._overrides[self.target]

    def write_control(self) -> None:
        """Hand ``overrides`` to the target's simulator (its control file, replaced atomically)."""
        if self.fleet is not None:
            self.fleet.set_control_of(self.target, **self.overrides)
        else:
            self.d.set_control(**self.overrides)

    def close_control(self) -> None:
        """Close the control connection (the next :meth:`call` opens a new one)."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def settled(self, within_s: float = RECOVERY_BOUND_S) -> dict[str, Any] | None:
        """Running for a while (a kill now is not a failed start), warm model loaded."""

        def check() -> dict[str, Any] | None:
            for srv in self.servers():
                if srv["state"] != "running" or time.time() - srv["since"] < 2.0:
                    return None
            return self.status() if self.warm_loaded() else None

        result: dict[str, Any] | None = poll(check, within_s, 0.2)
        return result

    def warm_loaded(self) -> bool:
        """The warm models loaded, on every server."""
        for name in self.names:
            scope = {"server": name} if self.fleet is not None else None
            warm = self.call("warm.list", scope)["models"]
            if not warm or not all(m["loaded"] for m in warm):
                return False
            loaded = {m["name"] for m in self.call("models.loaded", scope)["models"]}
            if not all(m["name"] in loaded for m in warm):
                return False
        return True

    def recover(
        self,
        rec: FaultRecord,
        t_inject: float,
        *,
        old_pid: int | None,
        new_pid: bool,
        t_from: float | None = None,
    ) -> None:
        """Wait for running (with a new serve pid if ``new_pid``), the old group empty,
        and the warm model loaded; record the times or the failure."""

        def running() -> dict[str, Any] | None:
            st = self.status()
            srv = st["server"]
            if srv["state"] != "running" or (new_pid and srv["pid"] == old_pid):
                return None
            return st

        st = poll(running, RECOVERY_BOUND_S)
        if st is None:
            rec.fail(
                f"not running{' with a new serve' if new_pid else ''} within "
                f"{RECOVERY_BOUND_S}s: {self.describe_state()}"
            )
            return
        rec.recovery_s = round(time.monotonic() - (t_from or t_inject), 3)
        rec.detail["new_pid"] = st["server"]["pid"]
        if old_pid is not None and st["server"]["pid"] != old_pid:
            left = group_members(old_pid)
            rec.detail["old_group_left"] = left
            if left:
                rec.fail(f"group {old_pid} of the old serve still has {left} while the new runs")
        if poll(self.warm_loaded, RECOVERY_BOUND_S, 0.2):
            rec.warm_s = round(time.monotonic() - t_inject, 3)
        else:
            rec.fail(f"warm model not loaded within {RECOVERY_BOUND_S}s")

    def describe_state(self) -> str:
        try:
            srv = self.status()["server"]
            return f"state {srv['state']} pid {srv['pid']} ({srv['reason']})"
        except (DaemonUnreachable, RpcError) as exc:
            return f"status failed: {exc}"

    def log_events(self, name: str, offset: int = 0) -> list[dict[str, Any]]:
        """The log's events named ``name`` from byte ``offset`` (a :meth:`log_size`) on.

        ``d.events`` parses the whole log; a fault waits only on what followed it.
        """
        out = []
        with self.d.log.open("rb") as f:
            f.seek(offset)
            for line in f.read().splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict) and entry.get("event") == name:
                        out.append(entry)
        return out

    def sim_requests(self, path: str) -> list[dict[str, Any]]:
        """Every simulator's request log entries for ``path`` (all servers')."""
        if self.fleet is None:
            return self.d.requests(path)
        return [e for name in self.names for e in self.fleet.requests_of(name, path)]

    def target_events(self, name: str, offset: int = 0) -> list[dict[str, Any]]:
        """:meth:`log_events` of the target server (a line bound to another is left out)."""
        events = self.log_events(name, offset)
        return [e for e in events if e.get("server", self.target) == self.target]

    def log_size(self) -> int:
        """The JSON log's size in bytes: a mark for :meth:`log_events` and the log check."""
        return self.d.log.stat().st_size if self.d.log.exists() else 0

    def delete_models(self, models: list[str]) -> None:
        for model in models:
            with contextlib.suppress(RpcError):
                self.call("models.delete", {"model": model})
