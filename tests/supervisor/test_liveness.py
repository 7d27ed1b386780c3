"""Liveness rounds over a scripted Ollama and a runner tree the test moves: what is probed,
how a probe that does not answer is judged, and which repair step follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from n3d.metrics import REGISTRY, Series

from .liveness_fakes import NOW, blob, iso, loaded, rig

SERVE = 4242


def series(name: str) -> list[Series]:
    return [s for s in REGISTRY.snapshot()["series"] if s["name"] == name]


async def test_only_warm_loaded_models_are_probed_and_others_are_shown_unchecked(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, warm=["m"])
    r.ollama.models = [loaded("m:latest"), loaded("other:1b")]
    step = await r.liveness.round(SERVE, r.problem)
    assert step.stage == "clear" and r.problems == [None]
    assert [p[0] for p in r.ollama.probes] == ["m:latest"]
    report = r.liveness.report()
    assert [(m.model, m.state, m.ok, m.warm) for m in report.models] == [
        ("m:latest", "ok", True, True),
        ("other:1b", "unchecked", None, False),
    ]
    assert report.inference_ok and report.scheduler is not None and report.scheduler.ok


async def test_at_most_one_probe_per_warm_model_per_interval(tmp_path: Path) -> None:
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    await r.liveness.round(SERVE, r.problem)
    for _ in range(5):  # rounds every 5 s (a shorter health interval): the check stands
        r.clock.advance(5)
        await r.liveness.round(SERVE, r.problem)
    assert len(r.ollama.probes) == 1
    r.clock.advance(5)  # 30 s after the first probe began
    await r.liveness.round(SERVE, r.problem)
    assert len(r.ollama.probes) == 2


async def test_traffic_within_the_interval_means_no_probe(tmp_path: Path) -> None:
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    r.liveness.saw_output("m", r.clock.now - 10)
    await r.liveness.round(SERVE, r.problem)
    assert r.ollama.probes == []
    (check,) = r.liveness.report().models
    assert (check.state, check.source, check.ok) == ("ok", "traffic", True)
    r.clock.advance(21)  # the traffic is now 31 s old: probe
    await r.liveness.round(SERVE, r.problem)
    assert len(r.ollama.probes) == 1


async def test_probing_can_be_turned_off(tmp_path: Path) -> None:
    r = rig(tmp_path, inference_probe=False)
    r.ollama.models = [loaded("m:latest")]
    await r.liveness.round(SERVE, r.problem)
    assert r.ollama.probes == [] and r.liveness.report().models[0].state == "unchecked"


async def test_an_embedding_model_is_probed_through_embed(tmp_path: Path) -> None:
    r = rig(tmp_path, warm=["nomic-embed-text"])
    r.ollama.models = [loaded("nomic-embed-text:latest")]
    r.ollama.embed_only.add("nomic-embed-text:latest")
    await r.liveness.round(SERVE, r.problem)
    assert r.ollama.probes == [("nomic-embed-text:latest", True, 20.0)]
    (check,) = r.liveness.report().models
    assert check.ok and check.tokens_per_second is None


async def test_a_probe_queued_behind_work_its_runner_does_is_busy_not_a_failure(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.ollama.models = [loaded("m:latest")]
    r.tree.start("m:latest")
    r.ollama.answers["m:latest"] = "hang"
    r.ollama.on_hang = lambda model: r.tree.work(model, 15.0)  # generating meanwhile
    for _ in range(10):
        step = await r.liveness.round(SERVE, r.problem)
        r.clock.advance(30)
        assert step.stage == "clear"
    assert r.events == [] and set(r.problems) == {None}
    (check,) = r.liveness.report().models
    assert (check.state, check.ok) == ("busy", True)
    assert r.liveness.report().inference_ok


async def test_a_probe_with_an_idle_runner_is_hung_and_only_that_runner_is_replaced(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, warm=["m", "n"])
    r.ollama.models = [loaded("m:latest"), loaded("n:latest")]
    r.tree.start("m:latest")
    other = r.tree.start("n:latest")
    r.ollama.answers["m:latest"] = "hang"

    def replaced(model: str) -> None:  # the runner step's stop: serve loads it again
        r.ollama.answers.pop(model, None)

    stopped: list[int] = []

    async def stop(runner: object, timeout_s: float) -> bool:
        stopped.append(runner.pid)  # type: ignore[attr-defined]
        replaced("m:latest")
        return True

    import n3d.supervisor.runner_repair as runner_repair

    original = runner_repair.stop_runner
    runner_repair.stop_runner = stop  # type: ignore[assignment]
    try:
        step = await r.liveness.round(SERVE, r.problem)
    finally:
        runner_repair.stop_runner = original
    assert step.stage == "clear" and "answers again" in step.reason
    assert stopped == [r.tree.runners[blob("m:latest")].pid]
    assert other.pid not in stopped
    (event,) = r.events
    assert (event.stage, event.model) == ("runner", "m:latest")
    assert "its runner did no work" in event.reason and "stopped its runner" in event.reason
    assert r.problems[0] is not None and r.problems[0].startswith("repairing: inference on m")
    assert r.problems[-1] is None
    (repairs,) = series("ollama.repairs")
    assert (repairs["kind"], repairs["tags"], repairs["value"]) == (
        "counter",
        {"stage": "runner"},
        1.0,
    )


async def test_a_runner_step_that_does_not_bring_the_model_back_restarts_serve(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, probe_timeout=10)
    r.ollama.models = [loaded("m:latest")]
    r.tree.start("m:latest")
    r.ollama.answers["m:latest"] = "hang"  # HANG_INFERENCE: the new runner is never reached
    step = await r.liveness.round(SERVE, r.problem)
    assert step.stage == "serve" and "replacing its runner did not help" in step.reason
    assert [e.stage for e in r.events] == ["runner", "serve"]
    # Detect (one probe_timeout) + verify (one more): the confirmation added nothing.
    assert len(r.ollama.probes) == 2


async def test_without_a_runner_to_look_at_a_timeout_is_reported_never_repaired(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, failures_before_restart=1)
    r.ollama.models = [loaded("m:latest")]
    r.ollama.answers["m:latest"] = "hang"  # and no runner in the tree
    for _ in range(3):
        step = await r.liveness.round(SERVE, r.problem)
        r.clock.advance(30)
        assert step.stage == "degrade" and "busy cannot be told from hung" in step.reason
    assert r.events == []
    assert r.liveness.report().models[0].state == "unknown"


async def test_a_server_n3d_does_not_own_is_checked_but_never_repaired(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.ollama.models = [loaded("m:latest")]
    r.ollama.answers["m:latest"] = "hang"
    step = await r.liveness.round(None, r.problem)  # no serve pid: not ours
    assert step.stage == "degrade" and r.events == []
    assert r.liveness.report().models[0].state == "unknown"


async def test_the_first_good_rates_set_a_baseline_and_a_fifth_of_it_is_slow(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.ollama.models = [loaded("m:latest")]
    for rate in (40.0, 60.0, 50.0):
        r.ollama.rates["m:latest"] = rate
        assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
        r.clock.advance(30)
    assert r.liveness.baselines.get("m") == 50.0
    r.ollama.rates["m:latest"] = 2.5  # ~20 times slower: CPU fallback
    step = await r.liveness.round(SERVE, r.problem)
    assert step.stage == "serve" and step.slow
    assert step.reason == "inference slow: 2.5 tok/s, baseline 50.0 (m:latest)"
    (check,) = r.liveness.report().models
    assert check.slow and check.tokens_per_second == 2.5 and check.baseline_tps == 50.0
    # The new serve is just as slow: one restart an hour, then degraded with the reason.
    await _new_serve(r)
    step = await r.liveness.round(SERVE + 1, r.problem)
    assert step.stage == "degrade" and step.reason.startswith("inference slow: 2.5 tok/s")
    assert r.problems[-1] == step.reason
    assert [e.stage for e in r.events] == ["serve"]


async def _new_serve(r: object) -> None:
    live = r.liveness  # type: ignore[attr-defined]
    live.book.forget_checks()
    live.policy.new_server()


async def test_a_model_stuck_unloading_is_wedged_and_its_runner_stopped(tmp_path: Path) -> None:
    r = rig(tmp_path, warm=["m"], stuck_unload_after=30)
    gone = iso(NOW.replace(hour=11, minute=58))  # two minutes ago
    r.ollama.models = [loaded("m:latest"), loaded("old:1b", expires_at=gone)]
    r.tree.start("m:latest")
    r.tree.start("old:1b")
    first = await r.liveness.round(SERVE, r.problem)  # one look: no window yet
    assert first.stage == "clear"
    r.clock.advance(30)

    async def stop(runner: object, timeout_s: float) -> bool:
        r.ollama.models = [loaded("m:latest")]  # its unload completes
        return True

    import n3d.supervisor.runner_repair as runner_repair

    original = runner_repair.stop_runner
    runner_repair.stop_runner = stop  # type: ignore[assignment]
    try:
        step = await r.liveness.round(SERVE, r.problem)
    finally:
        runner_repair.stop_runner = original
    (event,) = r.events
    assert (event.stage, event.model) == ("runner", "old:1b")
    assert "stuck unloading" in event.reason
    assert step.stage == "clear"
    # The wedged model was never probed: requests for it hang.
    assert {p[0] for p in r.ollama.probes} == {"m:latest"}


async def test_a_busy_model_past_its_keep_alive_is_not_wedged(tmp_path: Path) -> None:
    r = rig(tmp_path, warm=[], stuck_unload_after=30)
    r.ollama.models = [loaded("long:1b", expires_at=iso(NOW.replace(hour=11)))]
    r.tree.start("long:1b")
    await r.liveness.round(SERVE, r.problem)
    for _ in range(5):
        r.clock.advance(30)
        r.tree.work("long:1b", 25.0)  # generating all along (expires_at frozen: B8)
        step = await r.liveness.round(SERVE, r.problem)
        assert step.stage == "clear"
    scheduler = r.liveness.report().scheduler
    assert scheduler is not None and scheduler.ok and scheduler.wedged == ()


async def test_a_scheduler_that_stops_answering_restarts_serve_after_n_checks(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, failures_before_restart=3)
    r.ollama.ps_fails = True
    stages = [(await r.liveness.round(SERVE, r.problem)).stage for _ in range(3)]
    assert stages == ["degrade", "degrade", "serve"]
    scheduler = r.liveness.report().scheduler
    assert scheduler is not None and not scheduler.ok and "/api/ps" in (scheduler.error or "")
    assert r.events[-1].stage == "serve" and "scheduler check failed" in r.events[-1].reason


async def test_a_probe_error_is_a_failure_that_repeats_before_a_repair(tmp_path: Path) -> None:
    r = rig(tmp_path, failures_before_restart=2)
    r.ollama.models = [loaded("m:latest")]
    r.tree.start("m:latest")
    r.ollama.answers["m:latest"] = "error"
    first = await r.liveness.round(SERVE, r.problem)
    assert first.stage == "degrade" and "Ollama answered an error" in first.reason
    assert r.liveness.report().models[0].ok is False
    r.clock.advance(30)
    r.ollama.answers["m:latest"] = "ok"
    assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"


async def test_a_model_unloaded_meanwhile_is_not_a_failure(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.ollama.models = [loaded("m:latest")]
    r.ollama.answers["m:latest"] = "gone"
    assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
    assert r.liveness.report().models[0].state == "unchecked"


async def test_the_probe_metrics_carry_the_model_and_outcome(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.ollama.models = [loaded("m:latest")]
    await r.liveness.round(SERVE, r.problem)
    (probe,) = series("ollama.inference.probe_duration")
    assert probe["tags"] == {"model": "m:latest", "outcome": "ok"} and probe["unit"] == "s"
    (rate,) = series("ollama.inference.tokens_per_second")
    assert rate["tags"] == {"model": "m:latest"} and rate.get("max") == 50.0


async def test_an_unreadable_ps_is_no_failure_and_changes_nothing(tmp_path: Path) -> None:
    # Whoever holds Ollama's port may answer poisoned JSON: not a hung scheduler.
    from n3d.errors import UnexpectedResponse

    r = rig(tmp_path, failures_before_restart=1)

    async def poisoned() -> list[Any]:
        raise UnexpectedResponse("nested too deep", base_url="http://x")

    r.ollama.ps = poisoned  # type: ignore[method-assign]
    for _ in range(3):
        assert (await r.liveness.round(SERVE, r.problem)).stage == "keep"
    assert r.problems == [] and r.events == []


async def test_a_round_woken_late_still_probes_every_interval(tmp_path: Path) -> None:
    # Rounds are due every 30 s; the loop wakes a little late each time. The probe is
    # stamped with the due time, so one late wake-up never skips a whole interval.
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    due = r.clock.now
    for n in range(1, 4):
        r.clock.now = due + 0.004 * n  # woke a few ms after it was due
        await r.liveness.round(SERVE, r.problem, at=due)
        assert len(r.ollama.probes) == n
        due += 30.0


# -- traffic's decode rates (the proxy's saw_rate) ---------------------------------------


async def test_traffic_rates_set_their_own_baseline_and_a_slow_median_restarts_serve_once(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    for rate in (40.0, 60.0, 50.0):  # clients stream all along: never a probe
        r.liveness.saw_rate("m", rate)
        r.clock.advance(1)
    assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
    assert r.liveness.traffic_baselines.get("m") == 50.0 and r.liveness.baselines.get("m") is None
    (check,) = r.liveness.report().models
    assert (check.state, check.source, check.tokens_per_second, check.baseline_tps) == (
        "ok",
        "traffic",
        50.0,
        50.0,
    )
    # One slow request (a long prompt, a long context) is not a verdict: the median is.
    r.liveness.saw_rate("m", 2.5)
    r.clock.advance(1)
    assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
    for _ in range(2):  # ~20 times slower, request after request: CPU fallback
        r.liveness.saw_rate("m", 2.5)
        r.clock.advance(1)
    step = await r.liveness.round(SERVE, r.problem)
    assert step.stage == "serve" and step.slow
    assert step.reason == "inference slow: 2.5 tok/s, baseline 50.0 (m:latest, from traffic)"
    (check,) = r.liveness.report().models
    assert (check.state, check.source, check.slow) == ("slow", "traffic", True)
    assert r.ollama.probes == []
    # The new serve is just as slow: its own three requests say so; degraded, not restarted.
    await _new_serve(r)
    for _ in range(3):
        r.liveness.saw_rate("m", 2.5)
        r.clock.advance(1)
    step = await r.liveness.round(SERVE + 1, r.problem)
    assert step.stage == "degrade" and step.reason.startswith("inference slow: 2.5 tok/s")
    assert "baseline 50.0" in step.reason and r.problems[-1] == step.reason
    assert [e.stage for e in r.events] == ["serve"]


async def test_a_new_serve_is_not_judged_by_the_old_serves_traffic(tmp_path: Path) -> None:
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    for rate in (50.0, 50.0, 50.0, 2.5, 2.5):
        r.liveness.saw_rate("m", rate)
    await _new_serve(r)
    r.liveness.saw_rate("m", 2.5)  # one request of the new serve: nothing to judge yet
    step = await r.liveness.round(SERVE + 1, r.problem)
    assert step.stage == "clear" and r.ollama.probes == []
    (check,) = r.liveness.report().models
    assert (check.state, check.source, check.tokens_per_second) == ("ok", "traffic", None)


async def test_probe_and_traffic_rates_are_judged_against_their_own_baselines(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    for _ in range(3):  # one-token probes: a fast rate
        assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
        r.clock.advance(30)
    assert r.liveness.baselines.get("m") == 50.0
    # Long generations decode slower per token than a one-token probe, and are healthy:
    # below the probe baseline / 5, but not below their own.
    for _ in range(3):
        r.liveness.saw_rate("m", 8.0)
    assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
    (check,) = r.liveness.report().models
    assert (check.state, check.source, check.tokens_per_second, check.baseline_tps) == (
        "ok",
        "traffic",
        8.0,
        8.0,
    )
    assert r.liveness.baselines.get("m") == 50.0 and r.events == []
    # Once traffic stops, a probe is judged against the probe baseline again.
    r.clock.advance(31)
    r.ollama.rates["m:latest"] = 2.5
    step = await r.liveness.round(SERVE, r.problem)
    assert step.stage == "serve" and step.reason.endswith("baseline 50.0 (m:latest)")


async def test_a_busy_server_whose_requests_each_decode_slower_is_not_slow(
    tmp_path: Path,
) -> None:
    # Ollama batches OLLAMA_NUM_PARALLEL sequences: eight at once each decode at a
    # fraction of one alone, and the server is no slower. Traffic is judged as
    # rate × concurrency, so only a server slower at any concurrency is slow.
    r = rig(tmp_path, probe_interval=30)
    r.ollama.models = [loaded("m:latest")]
    for rate in (98.0, 102.0, 100.0):  # one client alone
        r.liveness.saw_rate("m", rate, 1)
        r.clock.advance(1)
    assert r.liveness.traffic_baselines.get("m") == 100.0
    for _ in range(3):  # then eight at once: 15 tok/s each, 120 together
        r.liveness.saw_rate("m", 15.0, 8)
        r.clock.advance(1)
    assert (await r.liveness.round(SERVE, r.problem)).stage == "clear"
    (check,) = r.liveness.report().models
    assert (check.state, check.source, check.tokens_per_second, check.slow) == (
        "ok",
        "traffic",
        120.0,
        False,
    )
    assert r.events == [] and r.ollama.probes == []
    for _ in range(3):  # a lost GPU: 4 tok/s alone
        r.liveness.saw_rate("m", 4.0, 1)
        r.clock.advance(1)
    step = await r.liveness.round(SERVE, r.problem)
    assert step.stage == "serve"
    assert step.reason == "inference slow: 4.0 tok/s, baseline 100.0 (m:latest, from traffic)"
    await _new_serve(r)
    for _ in range(3):  # and 0.5 tok/s each of eight at once: still 4 together
        r.liveness.saw_rate("m", 0.5, 8)
        r.clock.advance(1)
    step = await r.liveness.round(SERVE + 1, r.problem)
    assert step.stage == "degrade" and step.reason.startswith("inference slow: 4.0 tok/s")
    assert [e.stage for e in r.events] == ["serve"]
