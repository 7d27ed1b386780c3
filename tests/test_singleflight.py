"""Single flight: one call per key shared by concurrent callers, with takeover on cancellation.

No sleeps: calls wait on anyio events the test sets, and
``wait_all_tasks_blocked`` says when everyone is waiting.
"""

from __future__ import annotations

import anyio
import pytest

from n3d.singleflight import Flight, SingleFlight, shared_error


class Gated:
    """A call that returns (or raises) only once the test opens its gate."""

    def __init__(self, result: object = "answer") -> None:
        self.calls = 0
        self.gate = anyio.Event()
        self.result = result
        self.error: Exception | None = None

    async def __call__(self) -> object:
        self.calls += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def test_concurrent_callers_share_one_call_and_its_result() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    call, got = Gated(result=object()), []

    async def ask() -> None:
        got.append(await flights.run("k", call))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        call.gate.set()
    assert call.calls == 1
    assert len(got) == 50 and all(result is call.result for result in got)


async def test_each_waiter_raises_its_own_copy_of_the_failure_with_the_same_cause() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    call, failures = Gated(), []
    cause = OSError("refused")
    error = ValueError("no answer")
    error.__cause__ = cause
    call.error = error

    async def ask() -> None:
        try:
            await flights.run("k", call)
        except ValueError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        call.gate.set()
    assert call.calls == 1
    assert failures[0] is error  # the caller that ran it raises the original
    assert len({id(exc) for exc in failures}) == 5
    assert all(str(exc) == "no answer" and exc.__cause__ is cause for exc in failures)


async def test_when_the_runner_is_cancelled_one_waiter_takes_over_for_all() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    first, second, third = Gated("first"), Gated("second"), Gated("third")
    runner = anyio.CancelScope()
    got: list[object] = []

    async def run_first() -> None:
        with runner:
            await flights.run("k", first)

    async def wait(call: Gated) -> None:
        got.append(await flights.run("k", call))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(wait, second)
        tg.start_soon(wait, third)
        await anyio.wait_all_tasks_blocked()
        assert (first.calls, second.calls, third.calls) == (1, 0, 0)
        runner.cancel()
        await anyio.wait_all_tasks_blocked()
        assert (first.calls, second.calls, third.calls) == (1, 1, 0)  # one took over
        second.gate.set()
    assert got == ["second", "second"]


async def test_a_cancelled_waiter_leaves_and_the_call_goes_on() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    call, got = Gated(), []
    waiter = anyio.CancelScope()

    async def leaving() -> None:
        with waiter:
            await flights.run("k", call)
        got.append("left")

    async def staying() -> None:
        got.append(await flights.run("k", call))

    async with anyio.create_task_group() as tg:
        tg.start_soon(staying)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(leaving)
        await anyio.wait_all_tasks_blocked()
        waiter.cancel()
        await anyio.wait_all_tasks_blocked()
        assert got == ["left"]
        call.gate.set()
    assert got == ["left", "answer"] and call.calls == 1


async def test_after_forget_new_callers_start_afresh_and_waiters_keep_the_old_call() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    old, new = Gated("old"), Gated("new")
    got: dict[str, object] = {}

    async def ask(who: str, call: Gated) -> None:
        got[who] = await flights.run("k", call)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "runner", old)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask, "waiter", old)
        await anyio.wait_all_tasks_blocked()
        flights.forget("k")  # what the caller asked about has changed meanwhile
        tg.start_soon(ask, "later", new)
        await anyio.wait_all_tasks_blocked()
        assert (old.calls, new.calls) == (1, 1)
        old.gate.set()
        new.gate.set()
    assert got == {"runner": "old", "waiter": "old", "later": "new"}


async def test_keys_do_not_share_and_an_ended_call_is_not_reused() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    a, b = Gated("a"), Gated("b")
    a.gate.set()
    b.gate.set()
    assert await flights.run("a", a) == "a"
    assert await flights.run("b", b) == "b"
    assert await flights.run("a", a) == "a"
    assert (a.calls, b.calls) == (2, 1)


async def test_a_none_result_is_shared_not_mistaken_for_an_abandoned_call() -> None:
    flights: SingleFlight[str, None] = SingleFlight()
    calls = 0
    gate = anyio.Event()

    async def nothing() -> None:
        nonlocal calls
        calls += 1
        await gate.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(flights.run, "k", nothing)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert calls == 1


def test_a_flight_without_an_outcome_says_so() -> None:
    flight: Flight[int] = Flight()
    flight.finish()
    assert flight.abandoned and flight.result is None
    with pytest.raises(RuntimeError, match="without an outcome"):
        flight.outcome()


def test_an_error_that_cannot_be_copied_is_shared_as_it_is() -> None:
    class Picky(Exception):
        def __init__(self, *, code: int) -> None:  # copy calls Picky() again: TypeError
            super().__init__(f"code {code}")

    error = Picky(code=7)
    assert shared_error(error) is error
    plain = KeyError("k")
    assert shared_error(plain) is not plain and repr(shared_error(plain)) == repr(plain)
