"""How the harnesses start a child: its own session, logs to files, nothing on stdin.

:func:`spawn` is shared by :class:`~n3d.testing.DaemonProcess` and
:class:`~n3d.testing.simulator.SimulatorProcess`: a session of its own (so the child's
whole process group can be killed at the end, runners included) and files instead of
pipes (so the child never blocks on a full pipe, and every log line can be read after).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["spawn"]


def spawn(
    argv: Sequence[str], env: Mapping[str, str], stdout: Path, stderr: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, appending its output to ``stdout`` and ``stderr``."""
    with stdout.open("ab") as out, stderr.open("ab") as err:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
