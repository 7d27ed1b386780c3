"""How the model machinery tells the rest of n3d what happened: events.

``Publish`` is the one callable the daemon hands in, usually the RPC server's
``broadcast(topic, payload)``; topics used here are ``pull``, ``warm``,
``model.loaded`` and ``model.unloaded`` (DESIGN.md). Publishing never raises into
the caller: an event is news, not a step the model machinery depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

__all__ = ["Publish", "SafePublisher"]

Publish = Callable[[str, Mapping[str, Any]], object]

log = structlog.get_logger(__name__)


class SafePublisher:
    """Wraps a ``Publish`` so a failing subscriber path never breaks a pull or a warm-up."""

    def __init__(self, publish: Publish | None) -> None:
        self._publish = publish

    def __call__(self, topic: str, payload: Mapping[str, Any]) -> None:
        if self._publish is None:
            return
        try:
            self._publish(topic, payload)
        except Exception:  # events are best effort by design
            log.warning("event.publish_failed", topic=topic, exc_info=True)
