"""The drills' engine lives in bench/drills.py, so the test and the bench run the same code.

The repository root goes on ``sys.path`` and the engine is imported as ``bench.drills``
(``drills`` alone is this test package).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
