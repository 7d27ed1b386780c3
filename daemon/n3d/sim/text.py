"""Deterministic stand-ins for inference: completions, token ids and embeddings.

The same model and prompt always give the same short answer and the same vector,
so tests can compare outputs; nothing is learned or computed beyond a hash.
"""

from __future__ import annotations

import hashlib
import math
import random

__all__ = ["completion_words", "count_tokens", "embedding", "rng_for", "token_ids"]

_WORDS = (
    "the",
    "simulator",
    "answers",
    "quietly",
    "while",
    "a",
    "model",
    "stays",
    "warm",
    "in",
    "memory",
    "and",
    "every",
    "token",
    "arrives",
    "on",
    "time",
    "without",
    "any",
    "GPU",
    "so",
    "tests",
    "can",
    "watch",
    "streams",
    "end",
    "with",
    "counters",
    "that",
    "look",
    "real",
    "enough",
    "for",
    "supervisors",
    "editors",
    "scripts",
    "alike",
    "today",
    "llamas",
    "graze",
    "near",
    "local",
    "servers",
    "under",
    "clear",
    "skies",
    "of",
    "bytes",
)


def rng_for(*parts: str) -> random.Random:
    seed = hashlib.sha256("\x00".join(parts).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def completion_words(model: str, prompt: str) -> list[str]:
    """8 to 24 pieces of text (each one streamed chunk), ending with a full stop."""
    rng = rng_for("completion", model.lower(), prompt)
    count = rng.randint(8, 24)
    words = [rng.choice(_WORDS) for _ in range(count)]
    words[0] = words[0].capitalize()
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    pieces[-1] += "."
    return pieces


def count_tokens(text: str) -> int:
    """A rough token count: words plus punctuation, at least 1."""
    return max(1, len(text.split()) + sum(text.count(p) for p in ".,;:!?"))


def token_ids(text: str, count: int) -> list[int]:
    """`count` stable token ids for `text` (generate's deprecated `context`)."""
    rng = rng_for("tokens", text)
    return [rng.randrange(1, 128256) for _ in range(count)]


def embedding(model: str, text: str, dimensions: int) -> list[float]:
    """A unit-length vector for `text`, rounded to float32 precision as Ollama sends it."""
    rng = rng_for("embedding", model.lower(), text)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [float(f"{v / norm:.8g}") for v in raw]
