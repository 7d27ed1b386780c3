"""n3d's model machinery: availability cache, pull jobs, keep-warm, and their facade.

The daemon builds one :class:`Models` per Ollama server and runs it in its task
group; the RPC methods `models.*` and `warm.*` call its methods, which return the
result objects of DESIGN.md's method table. docs/models.md explains the behaviour.

- :mod:`.cache`: one shared `/api/tags` answer per base URL, TTL, single flight
- :mod:`.pulls` and :mod:`.job`: one download per model, progress fanned out
- :mod:`.warm`, :mod:`.warm_policy`, :mod:`.warm_state`, :mod:`.warm_store`: keep-warm
- :mod:`.service`: the :class:`Models` facade
"""

from __future__ import annotations

from n3d.models.cache import Listing, ModelCache
from n3d.models.events import Publish
from n3d.models.job import PullResult
from n3d.models.pulls import ProgressSink, Pulls
from n3d.models.service import Models
from n3d.models.warm import WarmKeeper
from n3d.models.warm_store import WarmEntry, WarmStore

__all__ = [
    "Listing",
    "ModelCache",
    "Models",
    "ProgressSink",
    "Publish",
    "PullResult",
    "Pulls",
    "WarmEntry",
    "WarmKeeper",
    "WarmStore",
]
