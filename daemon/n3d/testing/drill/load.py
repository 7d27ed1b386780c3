"""The client load a drill keeps up throughout: pollers, an event subscriber, a leak sampler.

:func:`start_load` starts one thread per poller (``status``, ``health`` and
``models.list`` at fixed intervals, each on its own reconnecting connection), a
subscriber that stays on ``events.subscribe`` (reconnecting after n3d's SIGKILL) and
counts every event and ``server.state`` edge it receives, a sampler of n3d's fds
and RSS, and (with the proxy on) the clients streaming generates through it
(:mod:`.streams`). Every outcome goes to ``drill.stats``; the threads run until ``drill.stop``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from n3d.client import Connection, DaemonUnreachable, RpcError
from n3d.testing.drill.bounds import REQUEST_BOUND_S
from n3d.testing.drill.drill import Drill
from n3d.testing.drill.rawconn import RawConn
from n3d.testing.drill.records import LeakSample
from n3d.testing.drill.streams import stream_client

__all__ = ["start_load"]


def start_load(drill: Drill) -> None:
    """Start the pollers, the subscriber and the leak sampler, each in its own thread."""
    for method, interval in (("status", 0.25), ("health", 0.3), ("models.list", 0.5)):
        _spawn(drill, _poller, drill, method, interval)
    _spawn(drill, _subscriber, drill)
    _spawn(drill, _sampler, drill)
    for n in range(drill.proxy_clients):
        _spawn(drill, stream_client, drill, n)


def _spawn(drill: Drill, target: Callable[..., None], *args: Any) -> None:
    def guarded() -> None:
        try:
            target(*args)
        except Exception as exc:  # a bug in the drill itself: report, never hide
            drill.stats.fail(f"drill thread {target.__name__} crashed: {exc!r}")

    thread = threading.Thread(target=guarded, daemon=True, name=target.__name__)
    thread.start()
    drill.threads.append(thread)


def _poller(drill: Drill, method: str, interval: float) -> None:
    conn: Connection | None = None
    opened = 0.0
    while not drill.stop.is_set():
        t0 = time.monotonic()
        try:
            if conn is None:
                opened = t0
                try:
                    conn = Connection(drill.d.socket, timeout=REQUEST_BOUND_S + 1)
                except DaemonUnreachable as exc:
                    drill.stats.unreachable(method, exc, t0, t0, sent=False)
                    drill.stop.wait(0.2)
                    continue
            conn.call(method)
            drill.stats.ok(method, time.monotonic() - t0)
        except RpcError as exc:
            drill.stats.error(method, exc.code, time.monotonic() - t0, exc.message)
        except DaemonUnreachable as exc:
            drill.stats.unreachable(method, exc, t0, opened, sent=True)
            if conn is not None:
                conn.close()
            conn = None
        drill.stop.wait(interval)
    if conn is not None:
        conn.close()


def _subscriber(drill: Drill) -> None:
    subscription = 0
    while not drill.stop.is_set():
        t0 = time.monotonic()
        try:
            conn = RawConn(drill.d.socket, REQUEST_BOUND_S)
        except OSError:
            drill.stop.wait(0.2)
            continue
        subscription += 1
        try:
            conn.send_json({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe"})
            reply = conn.read_until(lambda m: m.get("id") == 1, REQUEST_BOUND_S)
            if reply is None:
                raise ConnectionResetError("closed before answering events.subscribe")
            if "error" in reply:
                err = reply["error"]
                drill.stats.error(
                    "events.subscribe", err["code"], time.monotonic() - t0, err.get("message", "")
                )
                drill.stop.wait(0.5)
                continue
            drill.stats.ok("events.subscribe", time.monotonic() - t0)
            while not drill.stop.is_set():
                try:
                    message = conn.read(1.0)  # wake up now and then to notice the end
                except TimeoutError:
                    continue
                if message is None:
                    raise ConnectionResetError("n3d closed the subscription")
                params = message.get("params")
                if message.get("method") == "event" and isinstance(params, dict):
                    drill.stats.event(str(params.get("topic")), params, subscription)
        except (OSError, TimeoutError) as exc:
            if not drill.down.crossed(t0, t0, time.monotonic()):
                drill.stats.fail(f"subscriber lost its connection while n3d ran: {exc!r}")
                drill.stop.wait(0.2)
        finally:
            conn.close()


def _sampler(drill: Drill) -> None:
    every = 1.0 if drill.short else 3.0
    while not drill.stop.wait(every):
        if not drill.down.up or drill.d.proc is None or drill.d.proc.poll() is not None:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(drill.d.pid)
            drill.samples.append(
                LeakSample(
                    round(drill.now(), 2),
                    proc.pid,
                    proc.num_fds(),
                    proc.memory_info().rss,
                    drill.phase,
                )
            )
