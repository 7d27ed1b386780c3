"""The JSON of every method's result, as TypedDicts mypy checks: DESIGN.md's method table.

The domain returns typed values (dataclasses such as
:class:`~n3d.state.Snapshot`, :class:`~n3d.supervisor.health.HealthReport`,
:class:`~n3d.models.job.PullResult`); :mod:`n3d.api.methods` and
:mod:`n3d.api.models` turn them into these, and only these go on the wire. Keys
are listed in the order they are sent. A field beyond DESIGN.md's "main fields"
is an addition, never a rename; ``NotRequired`` keys appear only when they apply.
``tests/api/test_shapes.py`` holds real answers and DESIGN.md's table to these.

Three results are documents owned elsewhere and pass through as they are:
``config.get``/``config.reload`` (the config's own document, which
`n3d config show --json` prints too), ``metrics`` (the registry's snapshot) and
``rpc.discover`` (:mod:`n3d.api.openrpc`).

Long because it is the whole wire contract in one place: splitting it by method
would scatter what a reviewer of DESIGN.md's table must read side by side.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "Capabilities",
    "Checks",
    "DaemonFeatures",
    "DaemonInfo",
    "DefaultModel",
    "Delete",
    "Ensure",
    "ErrorData",
    "Health",
    "HttpCheck",
    "InferenceChecks",
    "InferenceModel",
    "InstalledModel",
    "LoadedList",
    "LoadedModel",
    "ModelCounts",
    "ModelList",
    "Prometheus",
    "ProxiedRequest",
    "Pull",
    "RequestCancel",
    "RequestList",
    "RequestTokens",
    "Resources",
    "SchedulerCheck",
    "Server",
    "ServerCommand",
    "Status",
    "Topics",
    "Validate",
    "WarmList",
    "WarmModel",
]


# -- status, health, server.* -----------------------------------------------------------


class DaemonInfo(TypedDict):
    version: str
    pid: int
    uptime_s: float
    socket: str
    simulate: bool


class Server(TypedDict):
    """The server's snapshot; times are Unix seconds, ``state`` its lowercase name."""

    state: str
    mode: str
    base_url: str
    pid: int | None
    owned: bool
    version: str | None
    restarts: int
    since: float
    reason: str
    last_exit: str | None
    last_error: str | None
    port_holder: str | None
    next_start_in_s: float | None
    name: str  # the server's name ("default" without [[servers]])


class HttpCheck(TypedDict):
    """``checks.http``: `HEAD /` answered within ``health_timeout``."""

    ok: bool | None
    latency_ms: float | None


class SchedulerCheck(TypedDict):
    """``checks.scheduler``: `/api/ps` answered in time, no model wedged (stuck unloading)."""

    ok: bool | None
    latency_ms: float | None
    wedged: list[str]
    age_s: float | None
    error: NotRequired[str]


class InferenceModel(TypedDict):
    """One loaded model's inference check; ``age_s`` is the age of its last output."""

    model: str
    ok: bool | None
    state: str  # ok slow busy waiting hung unknown failed unchecked
    source: Literal["probe", "traffic"] | None
    latency_ms: float | None
    tokens_per_second: float | None
    baseline_tps: float | None
    slow: bool
    age_s: float | None
    warm: bool
    error: NotRequired[str]


class InferenceChecks(TypedDict):
    ok: bool | None
    probe: bool  # [liveness] inference_probe
    models: list[InferenceModel]


class Checks(TypedDict):
    http: HttpCheck
    scheduler: SchedulerCheck
    inference: InferenceChecks


class Health(TypedDict):
    """``health`` (and ``status.health``): all None but ``cached`` before the first check.

    ``ok`` is false when any check that ran failed (``error`` then says which).
    """

    ok: bool | None
    latency_ms: float | None
    checked_at: float | None
    age_s: float | None
    cached: bool
    error: NotRequired[str]
    error_kind: NotRequired[str | None]
    version: str | None
    checks: NotRequired[Checks]
    server: NotRequired[str]  # `health`: the server's name


class Resources(TypedDict):
    rss_bytes: int
    cpu_percent: float
    processes: int


class ModelCounts(TypedDict):
    installed: int | None
    loaded: int
    warm: int
    loaded_names: list[str]  # the loaded models (as last seen), for `n3ctl status`
    warm_names: list[str]  # the warm list


class ServerStatus(Server):
    """One entry of ``status.servers``: a server's snapshot, health, resources, counts."""

    health: Health
    resources: Resources
    models: ModelCounts


class Status(TypedDict):
    """``server``, ``health``, ``resources`` and ``models`` are the first server's."""

    daemon: DaemonInfo
    server: Server
    health: Health
    resources: Resources
    models: ModelCounts
    servers: list[ServerStatus]


class ServerCommand(TypedDict):
    """``server.start`` / ``server.stop`` / ``server.restart``."""

    state: str
    server: Server


# -- models.* ---------------------------------------------------------------------------


class InstalledModel(TypedDict):
    name: str
    size: int
    digest: str
    modified_at: str
    details: dict[str, Any]
    servers: NotRequired[list[str]]  # the servers that have it


class ModelList(TypedDict):
    models: list[InstalledModel]
    cached: bool
    age_s: float
    servers: NotRequired[list[str]]  # the servers whose models it lists


class LoadedModel(TypedDict):
    name: str
    size: int
    size_vram: int
    expires_at: str
    warm: bool
    context_length: int | None
    server: NotRequired[str]  # where it is loaded


class LoadedList(TypedDict):
    models: list[LoadedModel]
    server: NotRequired[str]  # the server named, else the first
    servers: NotRequired[list[str]]  # the servers whose models it lists


class Pull(TypedDict):
    model: str
    status: Literal["success"]
    duration_s: float
    servers: NotRequired[list[str]]  # the servers that list it now


class Delete(TypedDict):
    model: str
    deleted: Literal[True]
    warm_removed: NotRequired[Literal[True]]
    servers: NotRequired[list[str]]  # the servers it was deleted from


class Ensure(TypedDict):
    model: str
    available: Literal[True]
    pulled: bool
    server: NotRequired[str]


class Validate(TypedDict):
    valid: bool
    normalized: str
    message: str


class DefaultModel(TypedDict):
    model: str


# -- warm.* -----------------------------------------------------------------------------


class WarmModel(TypedDict):
    name: str
    keep_alive: str | float | int
    loaded: bool
    expires_at: str | None
    last_warmed_at: str | None  # ISO 8601 UTC with `Z`
    last_error: str | None
    source: Literal["config", "runtime"]
    server: NotRequired[str]  # whose warm list it is on


class WarmList(TypedDict):
    models: list[WarmModel]
    server: NotRequired[str]  # the server named, else the first
    servers: NotRequired[list[str]]  # the servers whose warm lists it shows


# -- capabilities, events.* ------------------------------------------------------------


class DaemonFeatures(TypedDict):
    version: str
    framing: list[str]
    progress: bool
    cancel: bool
    events: list[str]
    keep_warm: bool
    mode: str
    simulate: bool


class Capabilities(TypedDict):
    chat: bool
    completion: bool
    streaming: bool
    embeddings: bool
    function_calling: bool
    vision: bool
    model_dependent: list[str]
    auto_pull: bool
    local_deployment: bool
    daemon: DaemonFeatures


class Topics(TypedDict):
    topics: list[str]


# -- the proxy ------------------------------------------------------------------------


class RequestTokens(TypedDict):
    prompt: int
    completion: int
    total: int


class ProxiedRequest(TypedDict):
    """One row of `requests.list`: a request in flight through the proxy."""

    id: str
    method: str
    route: str
    model: str | None
    state: Literal["held", "sent", "streaming"]
    started_at: float
    age_s: float
    held_s: float
    retried: bool
    ttft_s: float | None
    chunks: int
    tokens: RequestTokens | None
    server: str


class RequestList(TypedDict):
    requests: list[ProxiedRequest]
    listen: str | None  # the proxy's address; None when [proxy] listen is off


class RequestCancel(TypedDict):
    id: str
    cancelled: bool


class Prometheus(TypedDict):
    """`metrics.prometheus`: the text `GET /metrics` answers, rendered in the daemon."""

    content_type: str
    text: str


# -- errors -----------------------------------------------------------------------------


class ErrorData(TypedDict):
    """An application error's ``data``: DESIGN.md's ``{kind, model?, base_url?, suggestion?}``
    (``path`` instead of model and server when a change could not be saved)."""

    kind: str
    model: NotRequired[str]
    base_url: NotRequired[str]
    path: NotRequired[str]
    id: NotRequired[str]  # request_not_found: the id asked for
    server: NotRequired[str]  # unknown_server: the name asked for
    suggestion: NotRequired[str]
