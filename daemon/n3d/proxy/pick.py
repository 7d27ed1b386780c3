"""Which server takes a request: the routing policy, a pure function (DESIGN.md, "Several servers").

:func:`pick` sees each server as a :class:`Candidate` (the gate's verdict for it,
whether it has the request's model loaded, pins it, has it installed, and its
requests in flight) and answers with a :class:`Pick`. For a request that names a
model M (``by_model``):

1. a healthy server (verdict ``GO``) with M loaded, the fewest in flight first;
2. else a healthy server whose ``models`` names M (M's home);
3. else, while a home of M is starting, in backoff or being restarted by n3d
   (``HOLD``), wait for it: loading M elsewhere would evict what runs there, for
   a restart that takes seconds;
4. else the healthy server with the fewest in flight, among those whose last
   ``/api/tags`` lists M when any does (a server known not to have M answers
   404), else among those not known to lack it, else any.

A request without a model (``/``, ``/api/version``, model management, unknown
paths) goes to the first healthy server in the config's order. Then, for both:
wait while any server is on its way back (``HOLD``); a server that a user
stopped or that is ``fatal`` (``REFUSE``) is passed over, and when every server
refuses the request is refused (the refusal names M's home, else the first
server). Ties go to the server listed first.

``patient=False`` is the answer once ``hold_timeout`` has passed: nothing is
waited for any more, so a home still restarting is passed over for a healthy
server; with none, the answer stays ``HOLD`` on the server waited for (the
caller's 503, or a retry's last attempt). Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from n3d.proxy.gate import Verdict

__all__ = ["Candidate", "Pick", "pick"]

# Named tuples and these names: made and read once per request, so kept cheap
# (a frozen dataclass and an enum attribute lookup cost microseconds here).
_GO, _HOLD, _REFUSE = Verdict.GO, Verdict.HOLD, Verdict.REFUSE


class Candidate(NamedTuple):
    """One server as the policy sees it, for one request."""

    verdict: Verdict
    in_flight: int = 0
    loaded: bool = False  # has the request's model loaded
    home: bool = False  # its `models` names the request's model
    installed: bool | None = None  # its last /api/tags lists the model; None: unknown


class Pick(NamedTuple):
    """``verdict`` for the server at ``at``; ``waits``: the servers a ``HOLD`` waits for."""

    verdict: Verdict
    at: int  # not `index`: a tuple has an index method
    waits: tuple[int, ...] = ()


def _least(servers: Sequence[Candidate], indexes: list[int]) -> int:
    """The index with the fewest requests in flight; the first listed on a tie."""
    if len(indexes) == 1:
        return indexes[0]
    return min(indexes, key=lambda i: servers[i].in_flight)


def pick(servers: Sequence[Candidate], *, by_model: bool, patient: bool = True) -> Pick:
    """Where a request goes now, or what it waits for (module docstring)."""
    go: list[int] = []
    held: list[int] = []
    loaded: list[int] = []
    homes: list[int] = []
    for i, server in enumerate(servers):  # one pass: this runs for every request
        if server.verdict is _GO:
            go.append(i)
            if server.loaded:
                loaded.append(i)
        elif server.verdict is _HOLD:
            held.append(i)
        if server.home:
            homes.append(i)
    if by_model:
        if loaded:
            return Pick(_GO, _least(servers, loaded))
        if homes:
            homes_go = [i for i in homes if servers[i].verdict is _GO]
            if homes_go:
                return Pick(_GO, _least(servers, homes_go))
            homes_held = [i for i in homes if servers[i].verdict is _HOLD]
            if homes_held and (patient or not go):
                return Pick(_HOLD, homes_held[0], tuple(homes_held) if patient else ())
        if len(go) > 1:
            have = [i for i in go if servers[i].installed]
            maybe = [i for i in go if servers[i].installed is not False]
            return Pick(_GO, _least(servers, have or maybe or go))
    if go:
        return Pick(_GO, go[0])
    if held:
        return Pick(_HOLD, held[0], tuple(held) if patient else ())
    return Pick(_REFUSE, homes[0] if homes and by_model else 0)
