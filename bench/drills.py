"""Fault drill: a real `n3d run --simulate` under client load while faults are injected.

    .venv/bin/python bench/drills.py [--duration 240] [--seed N] [--short] [--json] [--keep]
                                     [--proxy-clients N] [--servers N]

Clients call ``status``, ``health`` and ``models.list`` continuously on their own
connections, and a subscriber stays connected to ``events.subscribe``. Meanwhile
the drill, one fault at a time with random gaps, SIGKILLs serve, SIGSTOPs it
(briefly: SIGCONT once n3d marks it degraded; or until n3d replaces it), flips the
simulator's ``hang``, ``fail_pulls`` and ``poison`` (hostile JSON for ``/api/tags``
and ``/api/ps``: ``models.list`` must answer 1010) switches through its control file, runs
concurrent pulls (the same model from several clients, other models, one
cancelled with ``$/cancelRequest``, one abandoned by closing the connection),
opens a burst of 300 connections, sends garbage, oversized and half-written
frames, reloads a changed and then an invalid config with SIGHUP, breaks the
inference path while ``GET /`` answers (the simulator's ``hang_inference``,
``hang_runner``, ``wedge_unload`` and ``slow`` switches: n3d must replace the runner,
then serve, report the wedge or the slow rate; "recovered" is the warm model
answering again, the wedged model gone, or running at its usual rate), and (first,
before the leak baseline) SIGKILLs n3d itself and starts it again on the same home.

Invariants, checked throughout and at the end (exit status 1 if one fails):

- every well-formed request got a result or a documented error code within
  ``REQUEST_BOUND_S`` (requests cut by n3d's own SIGKILL are counted apart);
- once a new serve runs, no process of the previous serve's group is left, and
  after n3d's SIGKILL the next n3d stopped the orphaned group; after SIGTERM to
  n3d at the end, no process of any group it spawned is left;
- the warm model is loaded again within ``RECOVERY_BOUND_S`` of every disruption;
- n3d's open fds and RSS do not grow from the baseline (after the warm-up faults)
  to the end;
- every line of n3d's log (stdout) is a JSON object, with nothing but n3d's own
  lines on stderr;
- with ``--proxy-clients N`` (n3d's proxy on, N clients streaming generates through
  it): no proxied request fails, except streams that had begun when serve (or the
  runner) was killed, which end with Ollama's in-stream ``{"error": ...}`` line (counted);
- with ``--servers N`` (N ``[[servers]]`` under one n3d, each fault aimed at one):
  every invariant per server, and a fault on one server never moves another (no
  other server's ``server.state`` edge while it runs, n3d's own SIGKILL excepted);
- every logged ``server.state`` edge (and every one the subscriber received) is in
  ``n3d.state.TRANSITIONS`` and starts where the previous one ended.

The engine is the package :mod:`n3d.testing.drill` (:func:`run_drill`, :func:`render`,
:class:`DrillResult`); ``tests/drills`` imports it from there and runs
``run_drill(short=True)`` (every fault kind once, short gaps). This script is the
long version.
"""

from __future__ import annotations

import argparse
import json
import sys

from n3d.testing.drill import render, run_drill

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=240.0, help="seconds (default 240)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--short", action="store_true", help="each fault once, short gaps")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp home")
    parser.add_argument(
        "--proxy-clients",
        type=int,
        default=0,
        metavar="N",
        help="turn n3d's proxy on and stream generates through it from N clients",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        metavar="N",
        help="N [[servers]] (simulators) under one n3d, each fault aimed at one of them",
    )
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run_drill(
        args.duration,
        args.seed,
        short=args.short,
        keep_home=args.keep,
        progress=say,
        proxy_clients=args.proxy_clients,
        servers=args.servers,
    )
    print(json.dumps(result.to_json(), indent=1) if args.json else render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
