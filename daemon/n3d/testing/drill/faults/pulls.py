"""Pull faults: pulls while the simulator fails them, and concurrent, cancelled, abandoned pulls.

:func:`pull` is one counted ``models.pull`` with progress (also run during a serve
kill). :func:`fail_pulls` flips the simulator's ``fail_pulls`` switch: 1004 while on, a
good pull once off. :func:`pulls` runs three clients on one model and two on others
(one download a model, however many callers), cancels one more with
``$/cancelRequest`` and abandons another by closing its connection. Interrupted
downloads are remembered in ``drill.partial``: the simulator resumes them so fast that
a cancel may arrive after success.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from n3d.client import Connection, DaemonUnreachable, RpcError
from n3d.testing.drill.bounds import PULLABLE, REQUEST_BOUND_S
from n3d.testing.drill.drill import Drill
from n3d.testing.drill.rawconn import RawConn
from n3d.testing.drill.records import FaultRecord


def pull(drill: Drill, model: str, *, targeted: bool = False) -> tuple[str, Any]:
    """One `models.pull` on its own connection with progress; (outcome, detail).

    ``targeted``: through the target server (in a fleet; else through any running
    server of the models directory, as n3d picks)."""
    params = {"model": model, **((drill.scoped() or {}) if targeted else {})}
    t0 = time.monotonic()
    progress: list[dict[str, Any]] = []
    try:
        with Connection(drill.d.socket, timeout=REQUEST_BOUND_S) as conn:
            result = conn.call("models.pull", params, progress=progress.append)
    except RpcError as exc:
        drill.stats.error("models.pull", exc.code, time.monotonic() - t0, exc.message)
        return str(exc.code), exc.message
    except DaemonUnreachable as exc:
        drill.stats.unreachable("models.pull", exc, t0, t0, sent=True)
        return "unreachable", exc.detail
    drill.stats.ok("models.pull", time.monotonic() - t0)
    return "ok", {"result": result, "progress": len(progress)}


def fail_pulls(drill: Drill, rec: FaultRecord) -> None:
    """A pull while the simulator fails pulls: 1004; once the switch is cleared: ok."""
    model = PULLABLE[drill.pull_round % len(PULLABLE)]
    drill.pull_round += 1
    drill.overrides["fail_pulls"] = True
    drill.write_control()
    time.sleep(0.3)  # the simulator re-reads its control file at most every 100 ms
    outcome, detail = pull(drill, model, targeted=True)
    rec.detail["while_failing"] = outcome
    if outcome != "1004":
        rec.fail(f"pull with fail_pulls on: {outcome} {detail}")
    drill.overrides.pop("fail_pulls")
    drill.write_control()
    t = time.monotonic()
    for _attempt in range(5):
        outcome, detail = pull(drill, model, targeted=True)
        if outcome == "ok":
            rec.recovery_s = round(time.monotonic() - t, 3)
            break
        time.sleep(0.2)
    else:
        rec.fail(f"pulls still failing after the switch was cleared: {outcome} {detail}")
    drill.delete_models([model])


def pulls(drill: Drill, rec: FaultRecord) -> None:
    """3 clients pull one model, 2 others pull other models; one more pull is
    cancelled with $/cancelRequest and one abandoned by closing its connection."""
    fresh = [m for m in PULLABLE if m not in drill.partial]
    cancelled = drill.rng.choice(fresh or PULLABLE)
    models = [cancelled, *drill.rng.sample([m for m in PULLABLE if m != cancelled], 4)]
    shared, others, abandoned = models[1], models[2:4], models[4]
    rec.detail["models"] = models
    before = len(drill.sim_requests("/api/pull"))
    outcomes: dict[str, list[str]] = {m: [] for m in models}
    lock = threading.Lock()

    def one(model: str) -> None:
        outcome, _ = pull(drill, model)
        with lock:
            outcomes[model].append(outcome)

    threads = [threading.Thread(target=one, args=(m,)) for m in [shared] * 3 + others]
    for thread in threads:
        thread.start()
    outcomes[cancelled].append(_cancelled_pull(drill, cancelled, rec))
    outcomes[abandoned].append(_abandoned_pull(drill, abandoned, rec))
    for thread in threads:
        thread.join(REQUEST_BOUND_S * 3)
    rec.detail["outcomes"] = outcomes
    for model in [shared, *others]:
        if any(o != "ok" for o in outcomes[model]):
            rec.fail(f"pull of {model}: {outcomes[model]}")
    # A resumed download can finish before the cancel is read: then it is not cancelled.
    resumed_fast = not fresh and outcomes[cancelled] == ["ok"]
    if outcomes[cancelled] != ["-32800"] and not resumed_fast:
        rec.fail(f"cancelled pull of {cancelled}: {outcomes[cancelled]}")
    for model, got in outcomes.items():
        if got and all(o == "ok" for o in got):
            drill.partial.discard(model)
        else:
            drill.partial.add(model)
    # One download per model, however many callers (the simulator logs each /api/pull).
    downloads = len(drill.sim_requests("/api/pull")) - before
    rec.detail["downloads"] = downloads
    if downloads > len(models):
        rec.fail(f"{downloads} /api/pull requests for {len(models)} models")
    if drill.call("status")["server"]["state"] != "running":
        rec.fail(f"server left running during pulls: {drill.describe_state()}")
    drill.delete_models(models)


def _start_raw_pull(
    drill: Drill, model: str, what: str, rec: FaultRecord
) -> tuple[RawConn, float] | None:
    """A raw pull of ``model`` (token ``drill-{what}``) once its first progress came:
    its connection and when it was sent; None, with the failure on ``rec``, if it did not
    start or ended before any progress."""
    try:
        conn = RawConn(drill.d.socket, REQUEST_BOUND_S)
        conn.send_json(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "models.pull",
                "params": {"model": model, "workDoneToken": f"drill-{what}"},
            }
        )
        t0 = time.monotonic()
        first = conn.read_until(
            lambda m: m.get("method") == "$/progress" or "id" in m, REQUEST_BOUND_S
        )
        if first is None or "id" in first:
            conn.close()
            raise OSError(f"pull of {model} ended before any progress: {first}")
    except (OSError, TimeoutError) as exc:
        rec.fail(f"{what} drill: {exc}")
        return None
    return conn, t0


def _cancelled_pull(drill: Drill, model: str, rec: FaultRecord) -> str:
    started = _start_raw_pull(drill, model, "cancel", rec)
    if started is None:
        return "not started"
    conn, t0 = started
    try:
        conn.send_json({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}})
        reply = conn.read_until(lambda m: m.get("id") == 1, REQUEST_BOUND_S)
    except TimeoutError:
        drill.stats.error("models.pull", 0, time.monotonic() - t0, "no reply to a cancel")
        return "timeout"
    finally:
        conn.close()
    if reply is None:
        drill.stats.fail("models.pull: closed without a reply after $/cancelRequest")
        return "closed"
    if "error" in reply:
        code = int(reply["error"]["code"])
        drill.stats.error("models.pull", code, time.monotonic() - t0, reply["error"]["message"])
        return str(code)
    drill.stats.ok("models.pull", time.monotonic() - t0)
    return "ok"


def _abandoned_pull(drill: Drill, model: str, rec: FaultRecord) -> str:
    started = _start_raw_pull(drill, model, "abandon", rec)
    if started is None:
        return "not started"
    started[0].close()
    return "abandoned"
