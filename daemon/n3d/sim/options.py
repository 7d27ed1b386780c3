"""Model options as Ollama reads them: types checked, defaults merged, reloads decided.

`api.Options.FromMap` (api/types.go:785-875, v0.13.5) applies the model's own
parameters and then the request's `options` over `api.DefaultOptions()` (routes.go
`modelOptions`, 107-119): unknown keys are skipped, `null` is skipped, and a value of
the wrong type fails the request with a 500 (`option "num_ctx" must be of type
integer`, via handleScheduleError's default case). Every JSON number is a float64 to
Go, so an integer option takes `4096.7` as 4096 and a float option takes `1`.

A loaded model is reloaded when the merged runner options differ (`needsReload`,
sched.go:625-657): the comparison is of the merged values, so naming a default
(`num_batch: 512`, `num_gpu: -1`) changes nothing; a negative `num_gpu` never
reloads; `num_ctx` is compared as requested (at least 4, sched.go:85-87), before the
runner caps it at the model's trained context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OptionError", "RunnerOptions", "merge_options"]

_INT = frozenset(
    {
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
    }
)
_FLOAT = frozenset(
    {
        "top_p",
        "min_p",
        "typical_p",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
)
_BOOL = frozenset({"use_mmap"})  # a *bool: absent means "let the runner decide"
_STRINGS = frozenset({"stop"})


class OptionError(Exception):
    """An option of the wrong type; the message is Ollama's 500 text."""


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """`api.Runner`: the options fixed when a model is loaded."""

    num_ctx: int
    num_batch: int = 512
    num_gpu: int = -1  # -1: decided by the scheduler
    main_gpu: int = 0
    use_mmap: bool | None = None
    num_thread: int = 0

    def needs_reload(self, wanted: RunnerOptions) -> bool:
        """`needsReload`'s options test: a negative `num_gpu` matches any."""
        if wanted.num_gpu < 0:
            return _without_gpu(self) != _without_gpu(wanted)
        return self != wanted


def _without_gpu(options: RunnerOptions) -> tuple[Any, ...]:
    return (
        options.num_ctx,
        options.num_batch,
        options.main_gpu,
        options.use_mmap,
        options.num_thread,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(key: str, value: Any) -> Any:
    """`value` as FromMap stores it in the option `key`, or OptionError."""
    if key in _INT:
        if not _is_number(value):
            raise OptionError(f'option "{key}" must be of type integer')
        return int(value)  # Go's int64(float64): truncated toward zero
    if key in _FLOAT:
        if not _is_number(value):
            raise OptionError(f'option "{key}" must be of type float32')
        return float(value)
    if key in _BOOL:
        if not isinstance(value, bool):
            raise OptionError(f'option "{key}" must be of type boolean')
        return value
    if not isinstance(value, list):
        raise OptionError(f'option "{key}" must be of type array')
    if not all(isinstance(item, str) for item in value):
        raise OptionError(f'option "{key}" must be of an array of strings')
    return list(value)


def _apply(merged: dict[str, Any], given: Mapping[str, Any]) -> None:
    for key, value in given.items():
        if value is None or key not in _INT | _FLOAT | _BOOL | _STRINGS:
            continue  # Ollama logs "invalid option provided" and goes on
        merged[key] = _typed(key, value)


def merge_options(
    default_num_ctx: int, model_params: Mapping[str, Any], request: Mapping[str, Any]
) -> tuple[dict[str, Any], RunnerOptions]:
    """The options a request runs with (defaults, then the model's, then the request's),
    and the runner options it asks for; OptionError on a value of the wrong type."""
    merged: dict[str, Any] = {
        "num_ctx": default_num_ctx,
        "num_batch": 512,
        "num_gpu": -1,
        "main_gpu": 0,
        "num_thread": 0,
        "num_predict": -1,
        "num_keep": 4,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.9,
        "seed": -1,
    }
    _apply(merged, model_params)
    _apply(merged, request)
    runner = RunnerOptions(
        num_ctx=max(int(merged["num_ctx"]), 4),  # GetRunner: "if opts.NumCtx < 4"
        num_batch=int(merged["num_batch"]),
        num_gpu=int(merged["num_gpu"]),
        main_gpu=int(merged["main_gpu"]),
        use_mmap=merged.get("use_mmap"),
        num_thread=int(merged["num_thread"]),
    )
    return merged, runner
