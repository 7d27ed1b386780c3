"""The parts of `n3ctl` (:mod:`n3d.ctl`): pure renderers and the commands that use them.

Standard library only: ``n3ctl status`` runs every few seconds from prompts and
status bars, so nothing here may import anyio, httpx, structlog or psutil.

- :mod:`~n3d.ctlkit.parse`      the command line; a fast path without argparse
- :mod:`~n3d.ctlkit.context`    what a command gets: options, streams, style, clock
- :mod:`~n3d.ctlkit.commands`   one function per command: call, print, exit code
- :mod:`~n3d.ctlkit.streams`    `pull` (progress, Ctrl-C) and `events` (follow)
- :mod:`~n3d.ctlkit.fmt`        sizes, durations, times, colour, tables (pure)
- :mod:`~n3d.ctlkit.render`     `status`, `health`, `version`, `events` for humans (pure;
                                ``now`` and ``style`` are arguments)
- :mod:`~n3d.ctlkit.tables`     `models`, `warm`, `metrics` as tables (pure)
- :mod:`~n3d.ctlkit.progress`   the `pull` progress bar and its plain-lines form
- :mod:`~n3d.ctlkit.prometheus` the `metrics` result as Prometheus text
"""
