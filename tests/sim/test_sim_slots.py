"""The runner queue (Ollama's `llmServer.sem`): arrival order, and leaving it when cancelled."""

from __future__ import annotations

import asyncio

from n3d.sim.llm import Slots


async def test_waiters_get_the_slot_in_arrival_order() -> None:
    slots = Slots(1)
    order: list[int] = []
    await slots.acquire()

    async def wait(n: int) -> None:
        await slots.acquire()
        order.append(n)
        slots.release()

    tasks = []
    for n in range(4):
        tasks.append(asyncio.ensure_future(wait(n)))
        await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]


async def test_a_cancelled_waiter_leaves_the_queue_without_the_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    gone = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    kept = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    slots.release()
    await asyncio.wait_for(kept, 1)
    assert gone.cancelled()


async def test_a_slot_handed_over_as_the_waiter_is_cancelled_is_passed_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.ensure_future(slots.acquire())
    second = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` must get it
    await asyncio.wait_for(second, 1)
    assert first.cancelled()


async def test_n_slots_serve_n_at_once() -> None:
    slots = Slots(2)
    await slots.acquire()
    await asyncio.wait_for(slots.acquire(), 1)
    third = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()
    slots.release()
    await asyncio.wait_for(third, 1)
