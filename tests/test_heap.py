"""A worker's long-lived objects are frozen out of the collector's walks (gateway/heap.py), and
settled again when its whole index is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway import heap, serve
from gateway.app import create_app
from gateway.runtime import RUNTIME


# A full collection here also finalises what earlier tests left unreachable (a connection not
# closed, say), whose ResourceWarnings would be counted against these tests: they are not theirs.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process is not a worker: what a test froze goes back to the collector


def test_what_settle_froze_is_left_alone_by_collections_until_the_next_settle(unfrozen_after):
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector can free it
    gone = weakref.ref(a)
    heap.settle()
    assert gc.get_freeze_count() > 0
    del a, b
    gc.collect()
    assert gone() is not None  # frozen: no collection walks it
    heap.settle()  # as after the whole index is replaced: unfrozen, collected, what is left frozen again
    assert gone() is None
    assert gc.get_freeze_count() > 0


def test_what_is_made_after_settle_is_collected_as_usual(unfrozen_after):
    heap.settle()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


async def test_a_started_worker_settles_and_settles_again_when_its_index_is_replaced(settings, unfrozen_after):
    settings = replace(settings, port=0)
    app = create_app(settings)
    started: asyncio.Future[tuple[int, object]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve.serve_app(app, settings, started=started))
    try:
        await asyncio.wait_for(started, 60)
        gc.unfreeze()
        serve._settle_heap(app)  # what a worker does once started (serve._worker)
        assert gc.get_freeze_count() > 0
        keeper = app[RUNTIME].keeper
        assert keeper.on_replaced is heap.settle
        settled: list[bool] = []
        keeper.on_replaced = lambda: settled.append(True)
        await keeper.load_all()
        assert settled == [True]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
