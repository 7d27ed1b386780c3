"""The one exception tree of n3d.

Every error n3d raises on purpose derives from :class:`N3dError`. Foreign errors
(httpx, OSError, psutil, json) are translated where they enter n3d, so callers
only ever catch these::

    N3dError
    ├── ConfigError               bad config file, key or value (names file, key, line)
    ├── PathError                 runtime/config/state dir unsafe or unusable
    │   └── StateNotSaved         state_not_saved: a run-time change could not be
    │                             written to the state dir (and was not made)
    ├── AlreadyRunning            another n3d holds the lock
    ├── ServiceError              `n3d service` could not render or install a unit
    ├── RequestNotFound           request_not_found: `requests.cancel` named no
    │                             proxied request in flight
    ├── UnknownServer             unknown_server: a `server` param named no server
    │                             of the config
    ├── RpcError                  a client's call was answered with a JSON-RPC error
    │                             (code, message, data; data.suggestion)
    ├── DaemonUnreachable         a client got no answer from n3d's socket (path,
    │   │                         detail, and `reason`, the word after each class)
    │   ├── DaemonNotRunning      missing: no socket file
    │   ├── StaleSocket           refused: a socket nobody listens on
    │   ├── SocketPermissionDenied  permission: another user's socket
    │   ├── DaemonTimeout         timeout: no answer within the client's timeout
    │   ├── ConnectionLost        closed: the connection ended while in use
    │   │   └── ClosedByDaemon    closed, and n3d said why first (an error with id null:
    │   │                         evicted at max_connections, an unreadable frame)
    │   └── UntrustedSocket       untrusted: the socket's directory or server is not
    │                             ours, nor root's (nothing was sent)
    └── OllamaError               ollama_error: anything about Ollama; carries model,
        │                         base_url, suggestion and cause
        ├── OllamaUnreachable     ollama_unreachable
        ├── ModelNotFound         model_not_found
        ├── InvalidModelName      invalid_model_name
        ├── PullFailed            pull_failed
        ├── OllamaTimeout         timeout
        ├── NotManaged            not_managed
        ├── ContextOverflow       context_overflow
        ├── OllamaNotInstalled    ollama_not_installed
        ├── ServerNotRunning      server_not_running
        └── UnexpectedResponse    ollama_error (an answer n3d cannot use)

`str(OllamaError)` is the seed's layout: the message, then `Model:` and `Server:`
lines when known, a blank line and `Suggestion:` when there is one. Credentials in
a URL (``http://user:pass@host``) are hidden in every text an error carries
(:mod:`n3d.redact`).

``kind`` names a failure the same way everywhere it is shown: logs, events, the
health report and an error's ``data.kind``. Which JSON-RPC error each class becomes
(its code, and the ``data`` sent) is the API's business, not the domain's: the one
table is :mod:`n3d.api.faults`.

The client errors (RpcError, DaemonUnreachable and its kinds) are defined here so
that the tree is one; :mod:`n3d.client` re-exports them under the names its users
import. Long because it is the whole tree, each class a few lines: split, a reader
would have to assemble it again.
"""

from __future__ import annotations

import os

from n3d.redact import redact_url

# n3ctl's hot path imports this module: keep `typing` and `pathlib` off it (type
# checkers see them).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, ClassVar

__all__ = [
    "AlreadyRunning",
    "ClosedByDaemon",
    "ConfigError",
    "ConnectionLost",
    "ContextOverflow",
    "DaemonNotRunning",
    "DaemonTimeout",
    "DaemonUnreachable",
    "InvalidModelName",
    "ModelNotFound",
    "N3dError",
    "NotManaged",
    "OllamaError",
    "OllamaNotInstalled",
    "OllamaTimeout",
    "OllamaUnreachable",
    "PathError",
    "PullFailed",
    "RequestNotFound",
    "RpcError",
    "ServerNotRunning",
    "ServiceError",
    "SocketPermissionDenied",
    "StaleSocket",
    "StateNotSaved",
    "UnexpectedResponse",
    "UnknownServer",
    "UntrustedSocket",
    "render_error",
    "root_cause",
]


def root_cause(exc: BaseException) -> BaseException:
    """The one real failure inside (nested) single-exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def render_error(
    message: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    suggestion: str | None = None,
) -> str:
    """The seed's layout: the message, `Model:` and `Server:` lines when known, then a
    blank line and `Suggestion:` when there is one. Shared by the daemon and n3ctl."""
    text = message
    if model:
        text += f"\nModel: {model}"
    if base_url:
        text += f"\nServer: {base_url}"
    if suggestion:
        text += f"\n\nSuggestion: {suggestion}"
    return text


class N3dError(Exception):
    """Root of every error n3d raises on purpose."""


class ConfigError(N3dError):
    """A config file, key or value is wrong.

    The message always names what is wrong and what was expected; ``file``,
    ``key`` and ``line`` are set whenever they are known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.line = line
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if key:
            where.append(f"key '{key}'")
        prefix = f"{', '.join(where)}: " if where else ""
        message = redact_url(message)  # a bad base_url is quoted back: not its password
        super().__init__(f"{prefix}{message}")
        self.message = message


class PathError(N3dError):
    """A runtime, config or state directory is missing, unsafe or unusable."""


class StateNotSaved(PathError):
    """A run-time change (`warm.add`, `warm.remove`) could not be saved in the state dir.

    Raised *instead of* making the change: n3d never holds in memory what the next
    start would lose.
    """

    kind: ClassVar[str] = "state_not_saved"

    def __init__(self, what: str, path: str, reason: str) -> None:
        self.path = path
        self.message = f"Could not save {what} to {path}: {reason}. Nothing was changed."
        directory = path.rpartition("/")[0] or "/"
        self.suggestion = (
            f"Check that {directory} is a directory n3d can write to "
            "(is the disk full or read-only?), then try again."
        )
        super().__init__(render_error(self.message, suggestion=self.suggestion))


class AlreadyRunning(N3dError):
    """Another n3d already holds the runtime lock."""


class ServiceError(N3dError):
    """A systemd or launchd service file could not be rendered or installed."""


# -- what the clients of n3d's socket raise (n3d.client, n3d.client.aio, n3ctl) --------


class RequestNotFound(N3dError):
    """No proxied request in flight has this id (it finished, or never was)."""

    kind: ClassVar[str] = "request_not_found"

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.message = f"No proxied request {request_id!r} is in flight."
        self.suggestion = "List the requests in flight with: n3ctl requests"
        super().__init__(f"{self.message}\n\nSuggestion: {self.suggestion}")


class UnknownServer(N3dError):
    """A method's ``server`` param names no server of the config (``known``: the names)."""

    kind: ClassVar[str] = "unknown_server"

    def __init__(self, server: str, known: Sequence[str]) -> None:
        self.server = server
        self.known = tuple(known)
        self.message = f"No server named {server!r} in the config."
        self.suggestion = f"Servers are: {', '.join(self.known)} (see: n3ctl status)"
        super().__init__(f"{self.message}\n\nSuggestion: {self.suggestion}")


class RpcError(N3dError):
    """The daemon answered a call with a JSON-RPC error: ``code``, ``message``, ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code, self.message, self.data = code, message, data

    @property
    def suggestion(self) -> str | None:
        data = self.data
        return data.get("suggestion") if isinstance(data, dict) else None


_START_HINT = "Start it with: n3d run (or: systemctl --user start n3d)"


class DaemonUnreachable(N3dError):
    """No usable connection to n3d at ``path``; ``reason`` is a short machine word."""

    reason = "unreachable"

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = os.fspath(path)
        self.detail = detail
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"n3d is not reachable at {self.path}: {self.detail}\n{_START_HINT}"


class DaemonNotRunning(DaemonUnreachable):
    reason = "missing"


class StaleSocket(DaemonUnreachable):
    reason = "refused"


class SocketPermissionDenied(DaemonUnreachable):
    reason = "permission"


class DaemonTimeout(DaemonUnreachable):
    reason = "timeout"


class ConnectionLost(DaemonUnreachable):
    reason = "closed"


class ClosedByDaemon(ConnectionLost):
    """The daemon closed the connection after saying why, with an error whose id is null.

    n3d does that when it evicts an idle connection at ``max_connections``, or when
    what it read cannot be framed; ``code`` and ``message`` are its words.
    """

    def __init__(self, path: Path | str, code: int, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(path, f"the daemon closed the connection: {message} (code {code})")

    def _describe(self) -> str:
        return f"n3d at {self.path} closed the connection: {self.message} (code {self.code})"


class UntrustedSocket(DaemonUnreachable):
    """The socket's directory or the process behind it is not ours (nor root's): refused.

    Nothing was sent on it. ``detail`` says what is wrong and what to do.
    """

    reason = "untrusted"

    def _describe(self) -> str:
        return f"refusing the n3d socket at {self.path}: {self.detail}"


class OllamaError(N3dError):
    """Something about Ollama failed; carries the context a user needs to fix it."""

    kind: ClassVar[str] = "ollama_error"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        base_url: str | None = None,
        suggestion: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        # Shown to users, logged and sent to clients: a URL's credentials never are.
        self.message = redact_url(message)
        self.model = model
        self.base_url = redact_url(base_url) if base_url else base_url
        self.suggestion = redact_url(suggestion) if suggestion else suggestion
        self.cause = cause
        # The HTTP status of Ollama's answer, when the error came from one.
        self.status_code: int | None = None
        super().__init__(self._render())
        if cause is not None:
            self.__cause__ = cause

    def _render(self) -> str:
        return render_error(
            self.message, model=self.model, base_url=self.base_url, suggestion=self.suggestion
        )

    # The seed's scenarios, as constructors, so every part of n3d words them alike.

    @classmethod
    def model_missing(cls, model: str, base_url: str) -> ModelNotFound:
        return ModelNotFound(
            f"Ollama model '{model}' is not available locally.",
            model=model,
            base_url=base_url,
            suggestion=f"Run: ollama pull {model}\n"
            "Or enable auto_pull_model in your configuration.",
        )

    @classmethod
    def unknown_in_registry(cls, model: str, base_url: str, detail: str) -> ModelNotFound:
        return ModelNotFound(
            f"Ollama could not find model '{model}' in its registry: {detail}",
            model=model,
            base_url=base_url,
            suggestion="Check the name for a typo, and its tag: "
            "see https://ollama.com/library for the models that exist.",
        )

    @classmethod
    def unreachable(
        cls, base_url: str, *, model: str | None = None, cause: BaseException | None = None
    ) -> OllamaUnreachable:
        return OllamaUnreachable(
            f"Could not reach Ollama server at {base_url}",
            model=model,
            base_url=base_url,
            suggestion="Ensure Ollama is running.\nInstall: https://ollama.ai\nStart: ollama serve",
            cause=cause,
        )

    @classmethod
    def context_overflow(
        cls, model: str, base_url: str, num_ctx: int, *, cause: BaseException | None = None
    ) -> ContextOverflow:
        current = f"{num_ctx} tokens" if num_ctx > 0 else "Ollama's default (num_ctx = 0)"
        return ContextOverflow(
            f"Input is too large for model '{model}' context window.",
            model=model,
            base_url=base_url,
            suggestion="Reduce prompt length or use a model with a larger context window.\n"
            f"Current context setting: {current}",
            cause=cause,
        )

    @classmethod
    def not_installed(cls, command: str, base_url: str) -> OllamaNotInstalled:
        return OllamaNotInstalled(
            f"Ollama executable not found: {command}",
            base_url=base_url,
            suggestion="Install Ollama from: https://ollama.ai\n"
            "Ensure 'ollama' is in your PATH, or try n3d with: n3d run --simulate",
        )

    @classmethod
    def pull_timeout(cls, model: str, base_url: str, timeout_s: float) -> OllamaTimeout:
        return OllamaTimeout(
            f"Timeout while pulling model '{model}' (no progress for {timeout_s:g}s).",
            model=model,
            base_url=base_url,
            suggestion="Model pull timed out. Large models can take several minutes.\n"
            "Try increasing pull_timeout or pull manually: "
            f"ollama pull {model} (it resumes where it stopped).",
        )

    @classmethod
    def invalid_name(cls, name: str, reason: str) -> InvalidModelName:
        return InvalidModelName(
            f"Invalid model name '{name}': {reason}",
            model=name,
            suggestion="Model names look like 'llama3', 'llama3:8b' or "
            "'namespace/model:tag' (letters, digits, '_', '-', '.').",
        )

    @classmethod
    def unexpected(
        cls,
        base_url: str,
        detail: str,
        *,
        model: str | None = None,
        cause: BaseException | None = None,
    ) -> UnexpectedResponse:
        return UnexpectedResponse(
            f"Ollama gave an unexpected answer: {detail}",
            model=model,
            base_url=base_url,
            suggestion="Check Ollama logs for details.",
            cause=cause,
        )


class OllamaUnreachable(OllamaError):
    """Nothing answered at the Ollama base URL."""

    kind = "ollama_unreachable"


class ModelNotFound(OllamaError):
    """The model is not installed, or not in the registry."""

    kind = "model_not_found"


class InvalidModelName(OllamaError):
    """The name breaks Ollama's model-name grammar."""

    kind = "invalid_model_name"


class PullFailed(OllamaError):
    """A download failed part way or was refused."""

    kind = "pull_failed"


class OllamaTimeout(OllamaError):
    """Ollama did not answer, or a pull made no progress, in time."""

    kind = "timeout"


class NotManaged(OllamaError):
    """n3d does not own this server (external mode or adopted), so it will not start or stop it."""

    kind = "not_managed"


class ContextOverflow(OllamaError):
    """The input does not fit the model's context window."""

    kind = "context_overflow"


class OllamaNotInstalled(OllamaError):
    """The configured Ollama executable does not exist."""

    kind = "ollama_not_installed"


class ServerNotRunning(OllamaError):
    """The Ollama server is stopped (or fatal); start it first."""

    kind = "server_not_running"


class UnexpectedResponse(OllamaError):
    """Ollama answered with something n3d cannot use."""

    kind = "ollama_error"
