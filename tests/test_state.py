"""The state table: every state has edges, the edges the supervisor relies on exist."""

from __future__ import annotations

import pytest

from n3d.api.methods import server_result
from n3d.state import (
    TRANSITIONS,
    InvalidTransition,
    ServerState,
    Snapshot,
    StateStore,
    Transition,
    can_transition,
)

S = ServerState


def test_every_state_has_outgoing_edges_and_no_self_loops() -> None:
    assert set(TRANSITIONS) == set(ServerState)
    for source, targets in TRANSITIONS.items():
        assert targets, source
        assert source not in targets


def test_every_state_is_reachable_from_stopped() -> None:
    seen = {S.STOPPED}
    frontier = [S.STOPPED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ServerState)


@pytest.mark.parametrize(
    "path",
    [
        # start, healthy, crash, restart
        [S.STOPPED, S.STARTING, S.RUNNING, S.BACKOFF, S.STARTING, S.RUNNING],
        # hung server: degraded, killed, restarted
        [S.RUNNING, S.DEGRADED, S.STOPPING, S.BACKOFF, S.STARTING, S.RUNNING],
        # crash loop until fatal, then server.start
        [S.STARTING, S.BACKOFF, S.STARTING, S.FATAL, S.STARTING],
        # server.restart and server.stop
        [S.RUNNING, S.STOPPING, S.STARTING, S.RUNNING, S.STOPPING, S.STOPPED],
        # auto adopts, loses it, starts its own
        [S.STOPPED, S.EXTERNAL, S.UNREACHABLE, S.STARTING],
        # external mode watching
        [S.STOPPED, S.UNREACHABLE, S.EXTERNAL, S.UNREACHABLE, S.STOPPED],
    ],
)
def test_paths_the_supervisor_takes_are_allowed(path: list[ServerState]) -> None:
    for source, target in zip(path, path[1:], strict=False):
        assert can_transition(source, target), f"{source} → {target}"


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.STOPPED, S.RUNNING),  # running only after a probe answered in starting
        (S.EXTERNAL, S.STOPPING),  # never stop what we did not start
        (S.EXTERNAL, S.STARTING),
        (S.FATAL, S.BACKOFF),  # fatal is left only by a command
        (S.BACKOFF, S.RUNNING),
    ],
)
def test_edges_that_must_not_exist(source: ServerState, target: ServerState) -> None:
    assert not can_transition(source, target)


def test_store_applies_changes_notifies_and_keeps_history() -> None:
    store = StateStore(Snapshot(mode="managed"))
    seen: list[tuple[Transition | None, ServerState]] = []
    unsubscribe = store.subscribe(lambda edge, snap: seen.append((edge, snap.state)))
    store.transition(S.STARTING, "boot", pid=42, owned=True)
    store.update(version="0.13.5")
    assert store.snapshot.pid == 42 and store.snapshot.version == "0.13.5"
    assert store.snapshot.reason == "boot"
    assert [e.target for e in store.history] == [S.STARTING]
    assert seen[0][0] is not None and seen[0][0].source is S.STOPPED
    assert seen[1] == (None, S.STARTING)
    unsubscribe()
    store.transition(S.RUNNING, "answered")
    assert len(seen) == 2
    assert store.version == 3


def test_store_refuses_an_illegal_edge_and_stays_put() -> None:
    store = StateStore(Snapshot())
    with pytest.raises(InvalidTransition):
        store.transition(S.RUNNING, "skipped starting")
    with pytest.raises(InvalidTransition):
        store.update(state=S.RUNNING)
    assert store.state is S.STOPPED and not store.history


def test_snapshot_serialises_state_as_lowercase_string() -> None:
    data = server_result(Snapshot(state=S.DEGRADED, pid=7))
    assert data["state"] == "degraded" and data["pid"] == 7


def test_summary_is_one_line_with_pid_restarts_and_the_reason_when_it_is_news() -> None:
    url = "http://127.0.0.1:11434"
    running = Snapshot(state=S.RUNNING, base_url=url, pid=12, restarts=1, reason="answered")
    assert running.summary() == f"ollama running (pid 12) at {url}, 1 restart"
    stopped = Snapshot(state=S.STOPPED, base_url=url, reason="server.stop")
    assert stopped.summary() == f"ollama stopped at {url}"
    backoff = Snapshot(state=S.BACKOFF, base_url=url, restarts=3, reason="exit code 1")
    assert backoff.summary() == f"ollama backoff at {url}, 3 restarts: exit code 1"
    for state in (S.FATAL, S.DEGRADED, S.UNREACHABLE):
        assert Snapshot(state=state, reason="why").summary().endswith(": why")


def test_summary_never_shows_credentials() -> None:
    snap = Snapshot(state=S.EXTERNAL, base_url="http://user:secret@ollama.lan:11434")
    assert "secret" not in snap.summary()
