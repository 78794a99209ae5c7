"""The contact log's deadlines: one timer for every record waiting, each record due once, in time."""

from __future__ import annotations

import asyncio
import gc
import weakref

from gateway.contactlog.deadlines import Deadlines


class _Due:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float, float]] = []  # item, wait, when (loop time)

    def __call__(self, item: str, wait: float) -> None:
        self.seen.append((item, wait, asyncio.get_running_loop().time()))


async def test_an_item_is_due_once_when_its_wait_is_over_and_not_before():
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    start = loop.time()
    deadlines.add("a", 0.05, loop)
    await asyncio.sleep(0.02)
    assert due.seen == [] and len(deadlines) == 1
    await asyncio.sleep(0.1)
    assert [(item, wait) for item, wait, _ in due.seen] == [("a", 0.05)]
    assert due.seen[0][2] - start >= 0.05 - 0.002  # the loop's clock has a millisecond's grain
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
    await asyncio.sleep(0.1)
    assert [item for item, *_ in due.seen] == ["late"]


async def test_a_shorter_wait_added_later_falls_due_first():
    """Each wait keeps its own order: a caller that waits less is not held behind a longer wait."""
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    deadlines.add("patient", 0.3, loop)
    await asyncio.sleep(0.01)
    deadlines.add("hurried", 0.03, loop)
    await asyncio.sleep(0.1)
    assert [item for item, *_ in due.seen] == ["hurried"]
    await asyncio.sleep(0.3)
    assert [item for item, *_ in due.seen] == ["hurried", "patient"]


async def test_items_fall_due_in_turn_as_the_timer_re_arms_itself():
    """The timer, armed for the first deadline, finds the first item answered and arms for the next."""
    loop, due = asyncio.get_running_loop(), _Due()
    deadlines: Deadlines[str] = Deadlines(due)
    added = {}
    for n in range(5):
        added[f"r{n}"] = loop.time()
        deadlines.add(f"r{n}", 0.05, loop)
        await asyncio.sleep(0.01)
        if n == 0:
            deadlines.discard("r0", 0.05)  # answered before the timer, armed for it, fires
    await asyncio.sleep(0.2)
    assert [item for item, *_ in due.seen] == ["r1", "r2", "r3", "r4"]
    # Each when its own wait is over: one by one, not all when the first was due.
    assert all(at >= added[item] + 0.05 - 0.002 for item, _, at in due.seen)


async def test_an_item_added_while_others_fall_due_is_kept():
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    deadlines: Deadlines[str] = Deadlines(
        lambda item, wait: (seen.append(item), item == "first" and deadlines.add("second", 0.02, loop))
    )
    deadlines.add("first", 0.02, loop)
    await asyncio.sleep(0.15)
    assert seen == ["first", "second"]


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
