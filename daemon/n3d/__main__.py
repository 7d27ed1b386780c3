"""`python -m n3d` runs the `n3d` command."""

from __future__ import annotations

from n3d.cli import main

raise SystemExit(main())
