"""n3d, the namel3ss supervisor for Ollama."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
