"""`ollama-sim serve` (also `python -m n3d.sim serve`): start the Ollama simulator.

`serve` (or its Ollama alias `start`) is the only command. Anything else prints
usage on stderr and exits 2; `-h`/`--help` prints it on stdout and exits 0.
Configuration is by environment only, as with `ollama serve` (docs/simulator.md).
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """\
Start the Ollama simulator (behaves like `ollama serve`, without inference or a GPU)

Usage:
  ollama-sim serve [flags]

Aliases:
  serve, start

Flags:
  -h, --help   help for serve

Environment Variables:
      OLLAMA_HOST                IP Address for the server (default 127.0.0.1:11434)
      OLLAMA_MODELS              The path to the models directory (default ~/.ollama-sim/models)
      OLLAMA_KEEP_ALIVE          The duration that models stay loaded in memory (default "5m")
      OLLAMA_MAX_LOADED_MODELS   Maximum number of loaded models (default 3)
      OLLAMA_SIM_*               Simulator timings and fault switches: see docs/simulator.md
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ollama-sim` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if not args or args[0] not in ("serve", "start"):
        shown = f'unknown command "{args[0]}"' if args else "a command is required"
        sys.stderr.write(f'Error: {shown} for "ollama-sim"\n\n{USAGE}')
        return 2
    if any(a in ("-h", "--help") for a in args[1:]):
        sys.stdout.write(USAGE)
        return 0
    if len(args) > 1:
        sys.stderr.write(
            f'Error: unknown flag or argument "{args[1]}" for "ollama-sim serve"\n\n{USAGE}'
        )
        return 2
    # Imported here so `--help` and usage errors stay instant.
    from n3d.sim.config import SimConfigError, load_config
    from n3d.sim.server import main_serve

    try:
        config = load_config()
    except SimConfigError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 2
    return main_serve(config)


if __name__ == "__main__":
    raise SystemExit(main())
