"""When a proxied request may go to the server: now, after a wait, or never (503).

:func:`decide` is the policy, a pure function of the server's snapshot (DESIGN.md,
"The request path"):

- ``running``, ``degraded``, ``external``: go. (A degraded server still answers
  some requests; liveness decides about repairs, not the proxy.)
- ``starting``, ``backoff``, ``stopping``, ``unreachable``, and ``stopped`` before
  the first start: hold. Each is a server that n3d is bringing (back) up or
  waiting for, so a request that waits loses nothing.
- ``fatal``, and ``stopped`` by a command (``server.stop``, n3d shutting down):
  refuse at once; nobody is bringing it back.

:class:`Gate` is one server's: :func:`decide` and its drain. A drain (before a
planned restart or stop) closes the gate while the server still runs (the proxy
waits for the requests in flight to it, bounded by ``drain_timeout``) and keeps
new ones held until the server has left ``running``; from there :func:`decide`
holds them through the restart, or refuses them after a stop. The waits, bounded
by ``hold_timeout``, are the router's (:mod:`n3d.proxy.router`): with several
servers, a request may wait for any of them.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

import anyio

from n3d.state import ServerState, Snapshot

__all__ = ["Gate", "Verdict", "decide", "refusal"]

S = ServerState
_UP = frozenset({S.RUNNING, S.DEGRADED, S.EXTERNAL})
_WAIT = frozenset({S.STARTING, S.BACKOFF, S.STOPPING, S.UNREACHABLE})


class Verdict(enum.Enum):
    GO = "go"
    HOLD = "hold"
    REFUSE = "refuse"


def decide(snap: Snapshot) -> Verdict:
    """What to do with a request now, given the server's snapshot (module docstring)."""
    if snap.state in _UP:
        return Verdict.GO
    if snap.state in _WAIT:
        return Verdict.HOLD
    if snap.state is S.STOPPED and not snap.reason:
        return Verdict.HOLD  # n3d is still starting: the first start is on its way
    return Verdict.REFUSE


def refusal(snap: Snapshot, *, waited_s: float | None = None) -> str:
    """The one-line error of a 503: the seed's message, then its suggestion."""
    if waited_s is not None:
        return (
            f"Ollama server at {snap.base_url} did not become ready within "
            f"{waited_s:g}s (state {snap.state.value}: {snap.reason or 'no reason given'}). "
            "Suggestion: check it with: n3ctl status; raise [proxy] hold_timeout for slow starts"
        )
    if snap.state is S.FATAL:
        return (
            f"Ollama server at {snap.base_url} is fatal: {snap.reason}. "
            "Suggestion: see why with: n3ctl status; start it again with: n3ctl start"
        )
    return (
        f"Ollama server at {snap.base_url} is {snap.state.value}"
        f"{f' ({snap.reason})' if snap.reason else ''}. "
        "Suggestion: start it with: n3ctl start"
    )


ServerState_ = Callable[[], Snapshot]
WaitState = Callable[[Callable[[Snapshot], bool]], Awaitable[Snapshot]]


class Gate:
    """One server's gate: :func:`decide` plus its drain; see the module docstring.

    ``server_state`` and ``wait_state`` are the supervisor's ``snapshot`` and
    ``wait_for``: the gate reads the server, never commands it. The waits (a hold,
    a retry's) are the router's, across servers (:mod:`n3d.proxy.router`).
    """

    def __init__(self, server_state: ServerState_, wait_state: WaitState) -> None:
        self.server_state = server_state
        self.wait_state = wait_state
        self.draining = False

    def verdict(self, snap: Snapshot) -> Verdict:
        if self.draining:
            if snap.state in (S.RUNNING, S.DEGRADED):
                return Verdict.HOLD  # the planned stop has not begun yet
            self.draining = False  # it has: the state says the rest
        return decide(snap)

    def retry_verdict(self, since: Snapshot, snap: Snapshot) -> Verdict:
        """The verdict for a retry on this server, whose attempt went to ``since``.

        ``since``'s own later snapshots (a health update, the exit noticed) hold: a
        managed serve that died comes back with another pid. A server without a
        pid of ours (external) goes with the first change that lets requests go.
        """
        verdict = self.verdict(snap)
        if verdict is Verdict.GO and (
            snap is since or (snap.pid is not None and snap.pid == since.pid)
        ):
            return Verdict.HOLD
        return verdict

    def close(self) -> None:
        """A drain begins (before a planned restart or stop): hold new requests.

        They stay held until the server leaves ``running`` (the planned stop the
        caller is about to make), so none starts on a server that is about to go.
        A stop that never comes (the command was superseded) reopens the gate once
        the server changes state, or after a while at the latest (:meth:`release_later`).
        """
        self.draining = True

    async def release_later(self, within_s: float) -> None:
        """End a drain whose stop never began: after ``within_s`` or a state change."""
        if not self.draining:
            return
        with anyio.move_on_after(within_s):
            await self.wait_state(lambda s: s.state not in (S.RUNNING, S.DEGRADED))
        self.draining = False
