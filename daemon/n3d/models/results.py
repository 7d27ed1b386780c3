"""What the operations of :class:`~n3d.models.service.Models` return: typed values.

They say what happened, in the domain's units; how they look on the wire is
:mod:`n3d.api`'s business (:mod:`n3d.api.shapes`). A finished pull is
:class:`~n3d.models.job.PullResult`, a listing :class:`~n3d.models.cache.Listing`,
a warm-list row :class:`~n3d.models.warm_state.WarmRow`.
"""

from __future__ import annotations

from dataclasses import dataclass

from n3d.ollama.types import LoadedModel

__all__ = ["DeleteResult", "EnsureResult", "LoadedEntry", "ModelCounts", "Validation"]


@dataclass(frozen=True, slots=True)
class LoadedEntry:
    """A model in memory now (one `/api/ps` entry), and whether n3d keeps it warm."""

    model: LoadedModel
    warm: bool


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A deleted model; ``warm_removed`` when it left the warm list first."""

    model: str
    warm_removed: bool


@dataclass(frozen=True, slots=True)
class EnsureResult:
    """An installed model; ``pulled`` when it was missing and has just been pulled."""

    model: str
    pulled: bool


@dataclass(frozen=True, slots=True)
class Validation:
    """A name checked against Ollama's grammar: its normalized form, or why not."""

    valid: bool
    normalized: str  # "" when not valid
    message: str


@dataclass(frozen=True, slots=True)
class ModelCounts:
    """For `status`: installed as last listed (None before any listing), loaded, warm;
    the names of the loaded models (as last seen) and of the warm list's."""

    installed: int | None
    loaded: int
    warm: int
    loaded_names: tuple[str, ...] = ()
    warm_names: tuple[str, ...] = ()
