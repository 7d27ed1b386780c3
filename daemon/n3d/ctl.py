"""`n3ctl`: the thin client of a running n3d (issue 7; not built yet).

Until it lands, every invocation says so on stderr and exits 1, so no script can
mistake it for a working client.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    print(
        "n3ctl: not yet available in this version of n3d (the control socket and client "
        "are still being built); see `n3d run` for the daemon.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
