"""The Ollama simulator: `ollama-sim serve` behaves like `ollama serve` without a GPU.

It imitates what a supervisor, an editor or a script can observe of Ollama (routes,
bodies, status codes, streaming, startup order, signals, logs, runner children) and
does no real inference. docs/simulator.md lists every behaviour with its source in
research/ollama.md, and every fault switch.

The server path imports only the standard library and the small `n3d.ollama`
parsers, so it starts answering in a few tens of milliseconds.
"""

from __future__ import annotations
