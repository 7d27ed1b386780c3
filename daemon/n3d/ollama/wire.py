"""Where Ollama's HTTP answers and failures enter n3d and become n3d values.

Nothing from httpx or json gets past this module: transport failures, error statuses,
error lines inside a stream and unreadable bodies all become :class:`OllamaError`
subclasses, worded like the seed (research/ollama.md §1, §7). The HTTP status, when
there is one, is kept on the error as ``status_code``.

Every JSON body is decoded by :func:`decode_json`, which raises only ValueError: a
number that overflows a double (``1e400``, inf to Python) or a bare
``NaN``/``Infinity`` is refused anywhere in the answer (it would reach clients as
``Infinity``, which is not JSON), and nesting deeper than ``MAX_DEPTH`` (Python's
parser raises RecursionError near 1 000 levels) is refused for the whole answer, so
nothing downstream (the RPC encoder, the log) can recurse on Ollama's data. Whatever else
shaping an answer raises (:data:`SHAPE_ERRORS`) becomes UnexpectedResponse
(``ollama_error``, 1010) in :meth:`Translator.entering`, logged once as a warning.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import structlog

from n3d.errors import OllamaError, OllamaTimeout, OllamaUnreachable, PullFailed

__all__ = [
    "MAX_DEPTH",
    "SHAPE_ERRORS",
    "Translator",
    "aiter_objects",
    "brief",
    "decode_json",
    "error_text",
    "is_context_overflow",
    "parse_final_object",
    "parse_object",
]

log = structlog.get_logger(__name__)

# Ollama's wordings for over-long input: `truncate:false` (v0.12+, routes.go "the input
# length exceeds the context length"), llama-server HEAD ("the prompt is longer than the
# context length ..."), and embed's truncation failures (v0.13.5 routes.go:731, 734;
# HEAD routes.go:910, 934, 968): "input exceeds maximum context length and cannot be
# truncated further", "input after truncation exceeds maximum context length".
_CONTEXT_MARKERS = (
    "exceeds the context length",
    "longer than the context length",
    "exceeds maximum context length",
)

# Deeper than any answer Ollama gives (/api/show's tensors are 3 levels, tool-call
# arguments a handful), shallow enough that re-encoding it can never recurse too far.
MAX_DEPTH = 64

# What decoding or shaping a foreign answer can raise: json's ValueError (and
# UnicodeDecodeError), OverflowError from int(inf), RecursionError from deep nesting,
# TypeError/LookupError/AttributeError from a field of an unexpected shape.
SHAPE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    RecursionError,
)

# A field value quoted in an error message: short, shallow, whatever Ollama sent.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother = 2, 60, 60
_MAX_ERROR_TEXT = 2000
_UNKNOWN_IN_REGISTRY = "pull model manifest: file does not exist"
_BUSY_SUGGESTION = (
    "Ollama may be loading a model, busy, or stuck. Check `ollama ps` and the server "
    "logs; n3d restarts a managed server that keeps failing health checks."
)


def brief(value: object) -> str:
    """``repr(value)`` cut short (a few levels, a few dozen characters each)."""
    return _BRIEF.repr(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Go never writes NaN or Infinity


def _check_depth(value: dict[str, Any] | list[Any], what: str) -> None:
    """ValueError when ``value`` nests containers more than MAX_DEPTH levels deep.

    A loop, not recursion: the point is to never recurse on Ollama's data.
    """
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{what} is nested more than {MAX_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def decode_json(body: bytes | str, *, what: str) -> Any:
    """One JSON value; every way it can be unusable is a ValueError naming ``what``."""

    def finite(text: str) -> float:
        # `1e400` is inf to Python: refused anywhere in the answer, because it would
        # go on to a client as `Infinity`, which is not JSON.
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"{what} holds a number beyond a double: {text[:40]}")
        return value

    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_float=finite)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to read") from None
    if isinstance(data, dict | list):
        _check_depth(data, what)
    return data


def error_text(body: bytes | str) -> str:
    """Ollama's `{"error": ...}` text, else the raw body, like the official client."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = decode_json(raw, what="the error body")
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = str(data["error"])
    else:
        text = raw.strip() or "an empty body"
    if len(text) > _MAX_ERROR_TEXT:  # an error, not a document: keep messages readable
        text = text[:_MAX_ERROR_TEXT] + f"... ({len(text) - _MAX_ERROR_TEXT} more characters)"
    return text


def _names_missing_model(text: str) -> bool:
    # `model 'x' not found`, `model "x" not found, try pulling it first`; not gin's
    # `404 page not found` from a server too old to have the route.
    lowered = text.lower()
    return lowered.startswith("model ") and "not found" in lowered


def is_context_overflow(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _CONTEXT_MARKERS)


_E = TypeVar("_E", bound=OllamaError)


def _with_status(err: _E, status: int | None) -> _E:
    err.status_code = status
    return err


def parse_object(body: bytes | str, *, what: str) -> dict[str, Any]:
    """Decode a JSON object; raises ValueError naming `what` when it is not one."""
    try:
        data = decode_json(body, what=what)
    except ValueError as exc:
        if str(exc).startswith(what):
            raise
        shown = body[:200] if isinstance(body, str) else body[:200].decode("utf-8", "replace")
        raise ValueError(f"{what} is not JSON: {shown!r}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object: {brief(data)}")
    return data


def parse_final_object(body: bytes, *, what: str) -> dict[str, Any]:
    """One JSON object, or the last line of an NDJSON body (a server that streamed anyway)."""
    try:
        return parse_object(body, what=what)
    except ValueError:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return parse_object(lines[-1], what=what)


async def aiter_objects(response: httpx.Response, *, what: str) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of an NDJSON body, one per non-blank line (ValueError if not)."""
    async for line in response.aiter_lines():
        if line.strip():
            yield parse_object(line, what=what)


class Translator:
    """Turns foreign failures into :class:`OllamaError` for one server.

    ``num_ctx`` is the context size n3d asked for (0 = Ollama's default); it only
    makes the context-overflow suggestion precise.
    """

    def __init__(self, base_url: str, num_ctx: int = 0) -> None:
        self.base_url = base_url
        self.num_ctx = num_ctx

    def status_error(
        self, status: int | None, text: str, *, model: str | None, num_ctx: int | None = None
    ) -> OllamaError:
        """The error for an error status (or, with status None, a mid-stream error line)."""
        ctx = self.num_ctx if num_ctx is None else num_ctx
        err: OllamaError
        if is_context_overflow(text):
            err = OllamaError.context_overflow(model or "?", self.base_url, ctx)
        elif status == 404 and model and _names_missing_model(text):
            err = OllamaError.model_missing(model, self.base_url)
        elif status == 400 and "invalid model name" in text.lower():
            err = OllamaError.invalid_name(model or "", f"Ollama rejected it ({text})")
        else:
            where = f" (HTTP {status})" if status else ""
            err = OllamaError.unexpected(self.base_url, f"{text}{where}", model=model)
        return _with_status(err, status)

    def pull_error(self, status: int | None, text: str, *, model: str) -> OllamaError:
        """The error for a failed pull: a typo'd name, a bad name, or a resumable failure.

        A name the registry lacks reads `pull model manifest: file does not exist`
        (images.go), or with the experimental client2 pull `model "x" not found`
        (a line in the stream, after its 200) or 404 `model not found` (not streamed;
        server/internal/registry/server.go).
        """
        unknown = status in (None, 404) and _names_missing_model(text)
        if _UNKNOWN_IN_REGISTRY in text or unknown:
            return _with_status(OllamaError.unknown_in_registry(model, self.base_url, text), status)
        if status == 400:
            return self.status_error(status, text, model=model)
        return _with_status(
            PullFailed(
                f"Pulling model '{model}' failed: {text}",
                model=model,
                base_url=self.base_url,
                suggestion=f"Run the pull again, it resumes where it stopped: ollama pull {model}",
            ),
            status,
        )

    def pull_incomplete(self, model: str, last_status: str | None) -> PullFailed:
        """A pull stream that ended without Ollama's `success` line."""
        seen = f"last status: '{last_status}'" if last_status else "no progress at all"
        return _with_status(
            PullFailed(
                f"Pulling model '{model}' ended before Ollama reported success ({seen}).",
                model=model,
                base_url=self.base_url,
                suggestion=f"Run the pull again, it resumes where it stopped: ollama pull {model}",
            ),
            None,
        )

    def malformed(self, exc: Exception, *, model: str | None) -> OllamaError:
        """An answer n3d cannot use (``exc`` says why: a ValueError or any SHAPE_ERRORS)."""
        # A TypeError, OverflowError, ... is not worded for users: name its type.
        detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        return _with_status(
            OllamaError.unexpected(self.base_url, detail, model=model, cause=exc), None
        )

    def transport_error(
        self, exc: Exception, *, model: str | None, request: str, timeout_s: float | None
    ) -> OllamaError:
        """An httpx failure (or bad base URL) as unreachable, timeout or unexpected."""
        err: OllamaError
        if isinstance(
            exc,
            httpx.ConnectError
            | httpx.ConnectTimeout
            | httpx.UnsupportedProtocol
            | httpx.InvalidURL,
        ):
            # Nothing accepted the connection (refused, DNS, silent host, unusable URL).
            err = OllamaError.unreachable(self.base_url, model=model, cause=exc)
        elif isinstance(exc, httpx.TimeoutException):
            limit = f" within {timeout_s:g}s" if timeout_s is not None else ""
            phase = "all connections busy" if isinstance(exc, httpx.PoolTimeout) else "no answer"
            err = OllamaTimeout(
                f"Ollama did not answer {request}{limit} ({phase}).",
                model=model,
                base_url=self.base_url,
                suggestion=_BUSY_SUGGESTION,
                cause=exc,
            )
        elif isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            # The server went away mid-exchange (Ollama's SIGTERM closes every connection).
            err = OllamaUnreachable(
                f"Lost the connection to Ollama server at {self.base_url} during {request}: "
                f"{exc or type(exc).__name__}",
                model=model,
                base_url=self.base_url,
                suggestion="Ensure Ollama is running.\nStart: ollama serve",
                cause=exc,
            )
        else:  # undecodable body, redirect loop, ...: an answer n3d cannot use
            detail = f"{request}: {exc or type(exc).__name__}"
            err = OllamaError.unexpected(self.base_url, detail, model=model, cause=exc)
        return _with_status(err, None)

    @contextmanager
    def entering(
        self, request: str, *, model: str | None, timeout_s: float | None = None
    ) -> Iterator[None]:
        """Translate httpx failures and every failure to decode or shape an answer
        (:data:`SHAPE_ERRORS`) raised inside the block; the latter are logged."""
        try:
            yield
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self.transport_error(
                exc, model=model, request=request, timeout_s=timeout_s
            ) from exc
        except SHAPE_ERRORS as exc:
            # json and the `from_json` parsers: an answer n3d cannot use.
            err = self.malformed(exc, model=model)
            log.warning(
                "ollama.unusable_answer",
                base_url=self.base_url,
                request=request,
                model=model,
                error=err.message,
            )
            raise err from exc
