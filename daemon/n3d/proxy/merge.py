"""``/api/tags``, ``/api/ps`` and ``/v1/models`` answered by every healthy server, merged.

With several servers a client asking what is installed or loaded asks n3d, not one
GPU's serve. :func:`merge` makes one answer of theirs in Ollama's exact shape
(research/ollama.md §1), adding nothing a client could choke on:

- ``/api/tags``: each installed model once (servers sharing a models directory
  list the same models), newest ``modified_at`` first, as Ollama sorts;
- ``/api/ps``: every loaded model of every server (a model loaded on two GPUs is
  two instances, each with its own ``size_vram``), the latest ``expires_at``
  first, as Ollama sorts;
- ``/v1/models``: each model id once, newest ``created`` first; ``"data": null``
  when there is none, as Ollama answers.

Ties keep the config's server order. :func:`fetch_all` asks the servers at once;
one that fails or answers something else is left out (and logged); when none
answers, the request is forwarded to one server as usual, so the client sees
that server's own error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from yarl import URL

from n3d.ollama.types import parse_go_time
from n3d.proxy.bodies import forwardable
from n3d.proxy.replies import compact_json
from n3d.proxy.router import Lane
from n3d.proxy.view import model_key

__all__ = ["fetch_all", "merge", "merged_answer"]

log = structlog.get_logger("n3d.proxy")
_OLDEST = datetime.min.replace(tzinfo=UTC)


def _time(text: Any) -> datetime:
    return (parse_go_time(text) if isinstance(text, str) else None) or _OLDEST


def _created(entry: dict[str, Any]) -> int:
    created = entry.get("created")
    return created if isinstance(created, int) else 0


def _models(answer: dict[str, Any]) -> list[dict[str, Any]]:
    models = answer.get("models")
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def _name(entry: dict[str, Any]) -> str:
    name = entry.get("name") or entry.get("model") or entry.get("id")
    return name if isinstance(name, str) else ""


def _once(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first entry of each model (Ollama's identity of names; the raw name if invalid)."""
    seen: set[str] = set()
    kept = []
    for entry in entries:
        name = _name(entry)
        key = model_key(name) or name
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


def merge(route: str, answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One answer of ``route`` from the servers' ``answers`` (module docstring)."""
    if route == "/v1/models":
        data = [
            m
            for a in answers
            if isinstance(a.get("data"), list)
            for m in a["data"]
            if isinstance(m, dict)
        ]
        data.sort(key=_created, reverse=True)
        return {"object": "list", "data": _once(data) or None}
    models = [m for a in answers for m in _models(a)]
    if route == "/api/ps":
        models.sort(key=lambda m: _time(m.get("expires_at")), reverse=True)
        return {"models": models}
    models.sort(key=lambda m: _time(m.get("modified_at")), reverse=True)
    return {"models": _once(models)}


async def _fetch(
    session: aiohttp.ClientSession, lane: Lane, raw_path: str, headers: list[tuple[str, str]]
) -> dict[str, Any] | None:
    try:
        async with session.get(
            URL(lane.base_url + raw_path, encoded=True), headers=headers, allow_redirects=False
        ) as reply:
            if reply.status != 200:
                log.warning("proxy.merge_skipped", server=lane.name, status=reply.status)
                return None
            body = await reply.read()
        answer = json.loads(body)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError, RecursionError) as exc:
        log.warning("proxy.merge_skipped", server=lane.name, error=f"{type(exc).__name__}: {exc}")
        return None
    return answer if isinstance(answer, dict) else None


async def fetch_all(
    session: aiohttp.ClientSession,
    lanes: Sequence[Lane],
    route: str,
    raw_path: str,
    headers: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Each lane's answer to ``GET raw_path``, in order (failures left out).

    What a server listed updates what the proxy saw of it: installed models from
    ``/api/tags``, loaded ones from ``/api/ps`` (routing reads both).
    """
    # Plain JSON to read (Ollama compresses nothing today; a client's gzip is not ours).
    headers = [
        h for h in forwardable(headers, keep_length=False) if h[0].lower() != "accept-encoding"
    ]
    answers = await asyncio.gather(*(_fetch(session, lane, raw_path, headers) for lane in lanes))
    for lane, answer in zip(lanes, answers, strict=True):
        if answer is None:
            continue
        names = [_name(m) for m in _models(answer)]
        if route == "/api/tags":
            lane.seen.listed_installed(names)
        elif route == "/api/ps":
            lane.seen.listed_loaded(lane.view.snapshot(), names)
    return [answer for answer in answers if answer is not None]


async def merged_answer(
    session: aiohttp.ClientSession,
    lanes: Sequence[Lane],
    route: str,
    raw_path: str,
    headers: list[tuple[str, str]],
) -> bytes | None:
    """The merged answer's body (compact JSON); None when no server answered."""
    answers = await fetch_all(session, lanes, route, raw_path, headers)
    return compact_json(merge(route, answers)) if answers else None
