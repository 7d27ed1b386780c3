"""The per-connection bounds as bookkeeping, no sockets: reply cap, slots, who makes room."""

from __future__ import annotations

from n3d.rpc.bounds import ReplyBudget, Slots, longest_idle


def test_a_reply_is_checked_against_the_cap_even_when_nothing_is_unread() -> None:
    budget = ReplyBudget(cap=100)
    assert budget.admits(0, 100)
    assert not budget.admits(0, 101)  # one reply larger than the cap
    assert not budget.admits(60, 41)  # what is unread counts too


def test_a_batch_reply_is_counted_as_it_is_assembled() -> None:
    budget = ReplyBudget(cap=100)
    assert budget.hold(0, 40) and budget.hold(10, 40)
    assert budget.assembling == 80
    assert not budget.hold(10, 11)  # 10 unread + 80 assembled + 11 > 100
    assert budget.assembling == 80  # a refused hold counts nothing
    assert not budget.admits(0, 21)  # single replies see the assembled bytes too
    budget.release(80)
    assert budget.assembling == 0 and budget.admits(0, 100)


def test_batch_members_take_slots_of_the_connection_and_one_batch_runs_at_a_time() -> None:
    slots = Slots(limit=3)
    assert slots.can_start(batch=True)
    slots.start(batch=True)  # the batch's own slot: its first member runs in it
    assert slots.take() and slots.take()  # two more members
    assert not slots.take()  # the connection's bound holds for batch members
    assert not slots.can_start(batch=False)
    slots.give()
    assert slots.can_start(batch=False) and not slots.can_start(batch=True)
    slots.start(batch=False)
    assert slots.used == 3
    slots.finish(batch=False)
    slots.give()
    slots.finish(batch=True)
    assert slots.used == 0 and slots.can_start(batch=True)


def test_the_connection_idle_longest_makes_room_once_idle_long_enough() -> None:
    idle = [(1, 100.0), (2, 40.0), (3, 70.0)]
    assert longest_idle(idle, now=100.0, min_idle_s=10.0) == 2
    assert longest_idle(idle, now=45.0, min_idle_s=10.0) is None  # nobody idle 10 s yet
    assert longest_idle([], now=100.0, min_idle_s=0.0) is None
