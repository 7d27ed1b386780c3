"""Pulls as daemon jobs: one download per model however many callers wait for it.

``Pulls.pull(model, progress=sink)`` starts the job for the normalised name or
joins the one already running, then follows it until it ends:

- The job runs in the ``Pulls`` task group, not in any caller, so one caller going
  away does not stop the download for the others. The last waiter to leave (a
  cancelled RPC request, a closed connection) cancels the job, which is logged
  (``pull.abandoned``) and published as a ``pull`` event with status ``cancelled``.
  Ollama itself may keep downloading (it has no cancel endpoint); a later pull
  resumes from the partial files.
- Every waiter and the ``pull`` event stream get progress through their own
  follower, which coalesces to at most one update per ``interval_s`` (default
  0.25 s, so four a second), always sending the first update it sees and the
  last. A slow waiter only slows itself, never the download or other waiters.
- The job fails with the client's errors for a mid-stream ``{"error"}`` line or a
  stream without ``success`` (``PullFailed``; ``ModelNotFound`` with a "check the
  name" suggestion for a name the registry lacks), with the seed's pull timeout
  when no line arrives for ``timeout_s``, and with ``OllamaUnreachable`` when the
  server cannot be reached or dies (``fail_all`` from the supervisor hook).

Success emits ``ollama.model.pull_duration`` (s) and calls ``on_success(model)``
(the facade invalidates the availability cache there).

Single flight, but not through :meth:`n3d.singleflight.SingleFlight.run`, which
runs the call in its first caller's task and has a waiter run it again when that
caller is cancelled. A download runs in the task group instead: it must not start
over because one caller went away, must stop when the last one goes, and reports
progress to each. The part that is the same, the outcome every waiter gets (each
raising its own copy of an error), comes from :class:`~n3d.singleflight.Flight`:
a job is one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio
import anyio.abc
import structlog

from n3d.errors import OllamaError, PullFailed
from n3d.metrics import metric
from n3d.models.events import SafePublisher
from n3d.models.job import PullJob, PullResult, work_done
from n3d.ollama.client import OllamaClient
from n3d.ollama.names import parse_model_name

__all__ = ["ProgressSink", "PullResult", "Pulls"]

log = structlog.get_logger(__name__)

ProgressSink = Callable[[dict[str, Any]], Awaitable[None]]
# (kind, update) -> None; kind is the LSP work-done kind: begin, report or end.
_Follower = Callable[[str, dict[str, Any]], Awaitable[None]]

UPDATE_INTERVAL_S = 0.25


class Pulls:
    """The running pull jobs of one server; start :meth:`run` before :meth:`pull`."""

    def __init__(
        self,
        client: OllamaClient,
        *,
        timeout_s: float,
        publish: SafePublisher,
        on_success: Callable[[str], None] = lambda model: None,
        interval_s: float = UPDATE_INTERVAL_S,
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self._publish = publish
        self._on_success = on_success
        self._jobs: dict[str, PullJob] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the jobs' task group until cancelled; ready as soon as it is open."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None

    def active(self) -> list[dict[str, Any]]:
        """Running jobs: ``{model, status, percentage, waiters, elapsed_s}``."""
        return [job.summary() for job in self._jobs.values()]

    async def pull(self, model: str, progress: ProgressSink | None = None) -> PullResult:
        """Start or join the pull of ``model`` and wait for its end.

        ``progress`` receives LSP work-done values (``kind`` begin/report/end plus
        ``message``, ``percentage``, ``status``, ``completed``, ``total``, ``digest``).
        Raises InvalidModelName at once for a bad name, else the job's OllamaError.
        """
        name = parse_model_name(model)
        job = self._jobs.get(name.key) or self._start(name.display, name.key)
        job.waiters += 1
        try:
            if progress is not None:
                await self._follow(job, _lsp(progress))
            else:
                await job.finished.wait()
        finally:
            job.waiters -= 1
            if job.waiters == 0 and not job.finished.is_set():
                self._stop(job, None)
        return job.outcome()  # each waiter raises its own copy of the job's error

    def fail_all(self, error: OllamaError) -> None:
        """End every running job with ``error`` (the server went away)."""
        for job in list(self._jobs.values()):
            self._stop(job, error)

    def _start(self, model: str, key: str) -> PullJob:
        if self._tg is None:
            raise RuntimeError("Pulls.run() is not running")
        job = PullJob(model, key)
        self._jobs[key] = job
        self._tg.start_soon(self._run_job, job, name=f"pull {model}")
        self._tg.start_soon(self._follow, job, self._event, name=f"pull events {model}")
        log.info("pull.started", model=model)
        return job

    def _stop(self, job: PullJob, error: OllamaError | None) -> None:
        """Cancel a job; with no ``error`` it is because nobody waits any more."""
        if self._jobs.get(job.key) is job:
            del self._jobs[job.key]  # a new caller starts afresh instead of joining a corpse
        if error is None:
            job.cancelled = True
            error = PullFailed(
                f"The pull of model '{job.model}' was cancelled: no client is waiting for it.",
                model=job.model,
                base_url=self.client.base_url,
                suggestion="Ollama may finish the download in the background; "
                f"run `n3ctl pull {job.model}` again to resume it.",
            )
            log.info("pull.abandoned", model=job.model, reason="no one is waiting")
        job.error = job.error or error
        job.scope.cancel()

    async def _run_job(self, job: PullJob) -> None:
        started = time.perf_counter()
        try:
            with job.scope:
                await self._download(job)
                job.succeed(PullResult(job.model, time.perf_counter() - started))
        except OllamaError as exc:
            job.error = job.error or exc
        except Exception as exc:  # a bug must not take the daemon down
            log.exception("pull.crashed", model=job.model)
            job.error = OllamaError.unexpected(
                self.client.base_url, f"pull crashed: {exc!r}", model=job.model, cause=exc
            )
        finally:
            if job.result is None and job.error is None:  # cancelled from outside: shutdown
                job.error = PullFailed(
                    f"The pull of model '{job.model}' stopped because n3d is shutting down.",
                    model=job.model,
                    base_url=self.client.base_url,
                    suggestion=f"Run the pull again, it resumes: ollama pull {job.model}",
                )
            self._finish(job)

    async def _download(self, job: PullJob) -> None:
        async with aclosing(self.client.pull(job.model)) as lines:
            while True:
                try:
                    # No line for timeout_s is a stalled pull (research §5: pulls stuck on a part).
                    with anyio.fail_after(self.timeout_s):
                        line = await lines.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise OllamaError.pull_timeout(
                        job.model, self.client.base_url, self.timeout_s
                    ) from None
                job.update(line)

    def _finish(self, job: PullJob) -> None:
        if self._jobs.get(job.key) is job:
            del self._jobs[job.key]
        job.finish()
        if job.result is not None:
            metric("ollama.model.pull_duration", job.result.duration_s, "s", model=job.model)
            log.info("pull.succeeded", model=job.model, duration_s=job.result.duration_s)
            self._on_success(job.model)
        elif not job.cancelled:
            assert job.error is not None
            log.warning(
                "pull.failed",
                model=job.model,
                error=job.error.message,
                kind=getattr(job.error, "kind", None),
            )

    async def _event(self, kind: str, update: dict[str, Any]) -> None:
        self._publish("pull", update)

    async def _follow(self, job: PullJob, send: _Follower) -> None:
        """Deliver ``job``'s progress to one follower, coalesced to one per ``interval_s``."""
        seen = 0
        sent_at = -math.inf
        began = False
        while not job.finished.is_set():
            if job.version == seen:
                await job.changed()
                continue
            wait = sent_at + self.interval_s - time.monotonic()
            if wait > 0:
                with anyio.move_on_after(wait):
                    await job.finished.wait()
                if job.finished.is_set():
                    break
            seen = job.version
            await send("report" if began else "begin", job.update_view())
            began, sent_at = True, time.monotonic()
        if not began and job.latest is not None:
            await send("begin", job.update_view())
        await send("end", job.final_view())


def _lsp(sink: ProgressSink) -> _Follower:
    """A follower feeding ``sink`` LSP values; an ``end`` with no ``begin`` is dropped."""
    began = False

    async def send(kind: str, update: dict[str, Any]) -> None:
        nonlocal began
        if kind == "end" and not began:
            return  # nothing was shown, so nothing to close: the error response says it all
        began = True
        await sink(work_done(kind, update))

    return send
