"""Where Ollama's HTTP answers and failures enter n3d and become n3d values.

Nothing from httpx or json gets past this module: transport failures, error statuses,
error lines inside a stream and unreadable bodies all become :class:`OllamaError`
subclasses, worded like the seed (research/ollama.md §1, §7). The HTTP status, when
there is one, is kept on the error as ``status_code``.

Every JSON body is decoded by :mod:`n3d.ollama.decoding` (bounded: no inf, NaN, or
nesting past ``MAX_DEPTH``); whatever decoding or shaping an answer raises
(:data:`SHAPE_ERRORS`) becomes UnexpectedResponse (``ollama_error``, 1010) in
:meth:`Translator.entering`, logged as a warning ``ollama.unusable_answer``. A server
that keeps poisoning would make one per keep-warm poll, forever: the first of each
kind (request and exception type) is logged at once, the repeats are counted and
summed up in the same warning (``repeats``) at most once a minute. The clients n3d
keeps for one server (its calls and its heartbeat) share one :class:`Warned`, so
one poisoned server is one warning, however many of n3d's clients it answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
import structlog

from n3d.errors import OllamaError, OllamaTimeout, OllamaUnreachable, PullFailed
from n3d.ollama.decoding import SHAPE_ERRORS
from n3d.ratelimit import TokenBucket

__all__ = ["UNUSABLE_SUMMARY_EVERY_S", "Translator", "Warned", "is_context_overflow"]

log = structlog.get_logger(__name__)

UNUSABLE_SUMMARY_EVERY_S = 60.0

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

_UNKNOWN_IN_REGISTRY = "pull model manifest: file does not exist"
_BUSY_SUGGESTION = (
    "Ollama may be loading a model, busy, or stuck. Check `ollama ps` and the server "
    "logs; n3d restarts a managed server that keeps failing health checks."
)


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


class Warned:
    """The pacing of ``ollama.unusable_answer`` warnings about one server.

    One bucket per (request, exception type): a handful of routes n3d calls times
    SHAPE_ERRORS, so the set cannot grow with what a server sends. ``clock``
    (monotonic seconds) paces them.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def bucket(self, request: str, kind: str) -> TokenBucket:
        """The bucket of this kind of answer (a new one lets its first warning through)."""
        bucket = self._buckets.get((request, kind))
        if bucket is None:
            bucket = self._buckets[(request, kind)] = TokenBucket(
                0.0, 1, summary_every_s=UNUSABLE_SUMMARY_EVERY_S, clock=self._clock
            )
        return bucket


class Translator:
    """Turns foreign failures into :class:`OllamaError` for one server.

    ``num_ctx`` is the context size n3d asked for (0 = Ollama's default); it only
    makes the context-overflow suggestion precise. ``warned`` paces the warnings
    about unusable answers (a new one per translator unless shared; ``clock`` is its
    clock then).
    """

    def __init__(
        self,
        base_url: str,
        num_ctx: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        warned: Warned | None = None,
    ) -> None:
        self.base_url = base_url
        self.num_ctx = num_ctx
        self._warned = warned if warned is not None else Warned(clock)

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
        elif isinstance(exc, httpx.TimeoutException | TimeoutError):
            limit = f" within {timeout_s:g}s" if timeout_s is not None else ""
            if isinstance(exc, httpx.PoolTimeout):
                phase = "all connections busy"
            elif isinstance(exc, TimeoutError):  # the deadline on a whole quick call
                phase = "the answer did not complete"
            else:
                phase = "no answer"
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
        """Translate httpx failures, a deadline (TimeoutError), and every failure to
        decode or shape an answer (:data:`SHAPE_ERRORS`) raised inside the block; the
        latter are logged (paced, see the module's docstring)."""
        try:
            yield
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
            raise self.transport_error(
                exc, model=model, request=request, timeout_s=timeout_s
            ) from exc
        except SHAPE_ERRORS as exc:
            # json and the `from_json` parsers: an answer n3d cannot use.
            err = self.malformed(exc, model=model)
            self._warn_unusable(request, model, err, type(exc).__name__)
            raise err from exc

    def _warn_unusable(self, request: str, model: str | None, err: OllamaError, kind: str) -> None:
        bucket = self._warned.bucket(request, kind)  # the first of a kind: logged now
        fields = {"base_url": self.base_url, "request": request, "model": model}
        if bucket.take(1):
            log.warning("ollama.unusable_answer", **fields, error=err.message)
        elif repeats := bucket.summary_due():
            log.warning(
                "ollama.unusable_answer",
                **fields,
                error=err.message,
                repeats=repeats,
                detail=f"{repeats} more answers like this since the last warning; "
                f"warned about at most once every {UNUSABLE_SUMMARY_EVERY_S:g}s",
            )
