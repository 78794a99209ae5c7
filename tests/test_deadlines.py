"""The contact log's deadlines: one timer for every record waiting, each record due once, in time."""

from __future__ import annotations

import asyncio
import gc
import weakref

import uvloop

from gateway.contactlog.deadlines import Deadlines


class _Due:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float]] = []  # item, wait, when (loop time)

    def __call__(self, item: str, wait: float) -> None:
        self.seen.append((item, wait, asyncio.get_running_loop().time()))

    def items(self) -> list[str]:
        return [item for item, *_ in self.seen]


async def test_an_item_is_due_once_when_its_wait_is_over_and_not_before():
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    start = loop.time()
    deadlines.add("a", 0.3, loop)
    await asyncio.sleep(0.05)
    assert due.seen == [] and len(deadlines) == 1
    await asyncio.sleep(0.5)
    assert [(item, wait) for item, wait, _ in due.seen] == [("a", 0.3)]
    assert due.seen[0][2] - start >= 0.3 - 0.002  # the loop's clock has a millisecond's grain
    assert len(deadlines) == 0
    await asyncio.sleep(0.1)
    assert len(due.seen) == 1


async def test_an_answered_item_never_falls_due():
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    deadlines.add("answered", 0.03, loop)
    deadlines.add("late", 0.03, loop)
    deadlines.discard("answered", 0.03)
    deadlines.discard("never added", 0.03)
    deadlines.discard("never added", 7.0)
    await asyncio.sleep(0.2)
    assert due.items() == ["late"]


async def test_a_shorter_wait_added_later_falls_due_first():
    """Each wait keeps its own order: a caller that waits less is not held behind a longer wait."""
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    deadlines.add("patient", 0.5, loop)
    await asyncio.sleep(0.01)
    deadlines.add("hurried", 0.03, loop)
    await asyncio.sleep(0.2)
    assert due.items() == ["hurried"]
    await asyncio.sleep(0.5)
    assert due.items() == ["hurried", "patient"]


async def test_items_fall_due_in_turn_as_the_timer_re_arms_itself():
    """The timer, armed for the first deadline, finds the first item answered and arms for the next."""
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    added = {}
    for n in range(5):
        added[f"r{n}"] = loop.time()
        deadlines.add(f"r{n}", 0.3, loop)
        if n == 0:
            deadlines.discard("r0", 0.3)  # answered before the timer, armed for it, fires
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.5)
    assert due.items() == ["r1", "r2", "r3", "r4"]
    # Each when its own wait is over: one by one, not all when the first was due.
    assert all(at >= added[item] + 0.3 - 0.002 for item, _, at in due.seen)


async def test_an_item_added_while_others_fall_due_falls_due_in_its_own_time():
    """What a callback adds (a shorter wait than one still held) is seen by the timer re-armed for
    the one held: it falls due at its own deadline, not at the later one."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, float]] = []
    start = loop.time()

    def on_due(item: str, wait: float) -> None:
        seen.append((item, loop.time() - start))
        if item == "first":
            deadlines.add("second", 0.05, loop)

    deadlines: Deadlines[str] = Deadlines(on_due)
    deadlines.add("first", 0.05, loop)
    deadlines.add("later", 0.6, loop)
    await asyncio.sleep(0.9)
    assert [item for item, _ in seen] == ["first", "second", "later"]
    assert seen[1][1] < 0.4  # at ~0.1 s, not when "later" fell due at 0.6


async def test_a_callback_that_fails_does_not_keep_the_others_from_falling_due():
    loop, due = asyncio.get_running_loop(), _Due()

    def on_due(item: str, wait: float) -> None:
        if item == "bad":
            raise RuntimeError("a callback's own failure")
        due(item, wait)

    deadlines: Deadlines[str] = Deadlines(on_due)
    for item in ("bad", "good-1", "good-2"):
        deadlines.add(item, 0.02, loop)
    await asyncio.sleep(0.2)
    assert due.items() == ["good-1", "good-2"]


def test_on_uvloop_the_timer_fires_once_for_a_deadline_not_again_and_again_until_the_clock_moves():
    """uvloop's clock has a millisecond's grain: a timer may fire a hair before the deadline it was
    set for. Found in review: the sweep then set itself again at once, until the clock moved on."""

    async def sweeps_for(wait: float, items: int) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        fell_due: list[int] = []
        deadlines: Deadlines[int] = Deadlines(lambda item, wait: fell_due.append(item))
        calls = 0
        sweep = deadlines._sweep

        def counted(loop: asyncio.AbstractEventLoop) -> None:
            nonlocal calls
            calls += 1
            sweep(loop)

        deadlines._sweep = counted  # type: ignore[method-assign]
        for n in range(items):
            deadlines.add(n, wait, loop)
            await asyncio.sleep(0.0137)  # deadlines off the millisecond grid
        await asyncio.sleep(wait + 0.2)
        return len(fell_due), calls

    for wait in (0.02, 0.1, 0.3):
        fell_due, calls = uvloop.run(sweeps_for(wait, 20))
        assert fell_due == 20
        assert calls <= 2 * 20, (wait, calls)  # once a deadline, give or take: not thousands


async def test_an_answered_item_is_let_go_at_once_not_when_the_timer_fires():
    """What a waiting record holds (its row, its caller's future) is not kept for the length of the
    wait once it is answered: at thousands of contacts a second that would be a wait's worth of them."""

    class Record:
        pass

    loop = asyncio.get_running_loop()
    deadlines: Deadlines[Record] = Deadlines(lambda item, wait: None)
    kept = []
    for _ in range(1000):
        record = Record()
        kept.append(weakref.ref(record))
        deadlines.add(record, 5.0, loop)
        deadlines.discard(record, 5.0)
    del record
    gc.collect()
    assert len(deadlines) == 0
    assert all(ref() is None for ref in kept)
