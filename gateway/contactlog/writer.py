"""The group-commit writer: `append` resolves once its record is committed, or safely spooled.

One writer task takes every record queued while the previous batch was committing, so batches grow
with load and there is no fixed timer. A replay loop pushes spooled records back once PostgreSQL
answers again.

A commit that answers in time needs no other check: the batch statement claims every provider id
on the log's unique key, and a retry hears the answer already logged. Only a record that may go to
the spool claims its provider id through the owner's `Claims` (Redis) first, once for its whole
batch: when its commit is slower than CLAIM_AFTER (it may be hanging), when the database fails, and
while the breaker is open; and every batch claims while some spool holds contacts not replayed
(`must_claim`), which the log's unique key cannot see. A record that finds the provider id answered
or in flight elsewhere is then not logged, and its caller hears the earlier answer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from .. import metrics
from ..settings import Settings
from ..store import contactlog as store
from .breaker import Breaker
from .deadlines import Deadlines
from .record import ContactRecord, encoded
from .replay import replay_file
from .spool import Spool

log = logging.getLogger(__name__)
_DB_TIMEOUT = 2.0
# A commit that has not finished by then means the database is slow: the breaker trips and the
# batch's callers are answered from the spool instead of waiting out their whole `wait`.
SLOW_COMMIT = 0.5
# A commit not finished by then may be hanging (a saturating load keeps commits near 100 ms at
# most): its provider ids are claimed in Redis now, raising the flag that makes every process claim
# before committing, so that a retry arriving from then on (at any process) finds the claim and waits
# for this answer. Whatever is spooled is claimed once more just before: a retry committed meanwhile
# has its answer in Redis by then, and that answer is given.
CLAIM_AFTER = 0.3  # before SLOW_COMMIT: the claim's timer is what sets the watchdog (`_commit_is_late`)
REPLAY_EVERY = 1.0
CLOSE_WITHIN = 5.0  # at shutdown, how long spooling and remembering still under way may take
KEPT_IDLE = 60.0  # a connection kept between commits and idle this long goes back to the pool

OnLogged = Callable[[list[ContactRecord]], None]


@dataclass
class Appended:
    """What happened to an appended record: committed, spooled, or a duplicate of an earlier one
    (not logged). `in_flight`: another attempt holds its provider id; its answer is to be awaited."""

    spooled: bool = False
    duplicate_of: dict[str, Any] | None = None
    in_flight: bool = False


class Claims(Protocol):
    """Claims provider ids for records about to become durable, for a whole batch at once.

    Returns, per record, None when the record is to be logged (the claim is its own, or could not
    be asked: the log's unique key decides then), or what its caller is to hear instead."""

    async def claim(self, records: list[ContactRecord], *, may_spool: bool = True) -> list[Appended | None]: ...

    def must_claim(self) -> bool:
        """Whether every batch is to be claimed before it is committed (a spool holds contacts the
        log's unique key cannot see yet)."""
        ...

    async def spooling(self) -> None:
        """This process is spooling contacts, or its spool holds contacts not replayed yet."""


@dataclass(eq=False)
class _Item:
    record: ContactRecord
    line: str  # the record as a row of a batch (its JSON)
    fut: asyncio.Future[Appended]
    claimable: bool  # it has a provider id the writer claims (not claimed by the caller already)
    claimed: bool = False  # the writer has claimed it (a claim may still be on its way)
    held: Appended | None = None  # its claim lost: what its caller hears instead (it is not logged)


class ContactLog:
    """The group-commit writer. Start with `start()`, stop with `close()` (drains what is queued).
    `on_logged` is called with records once they are durable (committed or spooled)."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, on_logged: OnLogged | None = None, claims: Claims | None = None
    ) -> None:
        self._pool = pool
        self._on_logged = on_logged
        self._claims = claims
        self._background: set[asyncio.Future[Any]] = set()
        self._max = settings.log_flush_max_rows
        self._in_flight = settings.log_flushes_in_flight
        self._second_after = settings.log_second_commit_after_ms / 1000
        # What is appended and not taken into a batch yet (None: close), and the writer's wait for it:
        # a deque and one future, not an asyncio.Queue (its get() asks for the running loop, a
        # system call on Python 3.11, and runs a loop of its own, once a commit at low rates).
        self._queue: deque[_Item | None] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the writer's, once started
        self.spool = Spool(settings.spool_dir)
        self._task: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self.breaker = Breaker(pool)
        self.spool_failed = False
        self._deadlines: Deadlines[_Item] = Deadlines(self._too_slow)
        # Connections kept between commits (`_commit`), each with when it was last used (loop time).
        self._kept: list[tuple[asyncpg.Connection, float]] = []
        self._freed: asyncio.Future[None] | None = None  # what `_slot` waits on: a commit ended

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="contact-log-writer")
        self._replayer = asyncio.create_task(self._replay_loop(), name="contact-log-replayer")

    async def append(self, record: ContactRecord, wait: float | None = None, *, claimed: bool = False) -> Appended:
        """Durably log a record: committed, or (after `wait` seconds, or on a fault) spooled.
        `claimed`: its provider id was claimed already; otherwise the writer claims it first."""
        record, line = encoded(record)  # caller text PostgreSQL cannot hold must not fail the whole batch
        claimable = not claimed and record.provider_id is not None and record.status == "decided"
        loop = self._loop or asyncio.get_running_loop()
        item = _Item(record, line, loop.create_future(), claimable and self._claims is not None)
        if self.breaker.open:  # the database is known to be slow: durable on disk now, not in `wait`
            # In a task of its own: a caller that goes away meanwhile still has its contact spooled.
            spooling = asyncio.ensure_future(self._spool_now(item))
            self._background.add(spooling)
            spooling.add_done_callback(self._background.discard)
            spooling.add_done_callback(_say_if_failed)
            return await asyncio.shield(spooling)
        self._put(item)
        if wait is None:
            return await item.fut
        self._deadlines.add(item, wait, loop)  # not a timeout context: on the path of every contact
        try:
            return await item.fut
        finally:
            self._deadlines.discard(item, wait)

    def _too_slow(self, item: _Item, wait: float) -> None:
        """The database is too slow for the caller: make the record durable on disk now, and answer
        with that. If its batch commits after all, replay skips it by id; if the batch fails, it is
        spooled twice and replayed once."""
        if item.fut.done():
            return
        self._trip(f"a commit took longer than {wait:.1f} s")

        async def spool_and_answer() -> None:
            try:
                answered = await self._spool_now(item)
            except Exception as exc:  # the caller hears it, as if it had waited for it itself
                if not item.fut.done():
                    item.fut.set_exception(exc)
                raise
            if not item.fut.done():
                item.fut.set_result(answered)

        self._background_task(spool_and_answer())

    async def _spool_now(self, item: _Item) -> Appended:
        await self._claim([item], again=True)
        if item.held is not None:
            return item.held
        if await self._spool_safely([item.record]):
            self._logged([item.record])
        return Appended(spooled=True)

    async def _claim(self, items: list[_Item], *, again: bool = False, may_spool: bool = True) -> None:
        """Claim the provider ids of these items in one call: those not claimed yet, or (`again`, just
        before spooling) all of them, since a retry may have been committed and answered meanwhile
        (an item's own claim is recognised as its own). An item that lost keeps in `held` the answer
        its caller is to hear. `may_spool`: these records may be spooled (every process is told)."""
        todo = [item for item in items if item.claimable and (again or not item.claimed)]
        if not todo or self._claims is None:
            return
        for item in todo:
            item.claimed = True
        try:
            outcomes = await self._claims.claim([item.record for item in todo], may_spool=may_spool)
        except Exception:  # never leave a batch unanswered: the log's unique key still decides
            log.exception("contact log: claiming %d provider id(s) failed; the log's unique key decides", len(todo))
            return
        for item, outcome in zip(todo, outcomes, strict=True):
            item.held = outcome

    async def _run(self) -> None:
        """Take what queued while a commit was under way, and commit it as one batch.

        Contacts that arrive while a commit is under way wait for it and go in the next batch
        together: fewer, larger commits cost PostgreSQL and the gateway less a contact. A commit that
        has taken `log_second_commit_after_ms` (20 by default; a commit takes 1–10 ms here) may be
        slow, so a further one starts beside it rather than hold every contact of the worker back;
        at most `log_flushes_in_flight` at once. Measured against starting a second commit at once
        (bench/RESULTS.md, 2026-11-27, seven pairs at saturation, six at 1,000/s): a median 13 %
        more decisions a second (−2 to +19 %), 15–24 % less PostgreSQL CPU a contact, and a thinner
        tail at 1,000/s in five pairs of six."""
        closing = False
        inflight: dict[asyncio.Task[None], float] = {}  # each commit under way, and when it began
        loop = asyncio.get_running_loop()
        while not closing:
            while not self._queue:
                self._arrived = loop.create_future()
                await self._arrived
            first = self._queue.popleft()
            if inflight:
                await self._slot(inflight, loop)
                # Under load, one loop turn before taking the batch: the callers just answered reply,
                # and the requests already read join this batch instead of the next (measured: 10 → 13
                # rows a commit at saturation, ~6 % less CPU a decision; a second turn added nothing).
                await asyncio.sleep(0)
            batch = []
            for item in self._take(first):
                if item is None:
                    closing = True
                else:
                    batch.append(item)
            if batch:
                task = loop.create_task(self._flush(batch))
                inflight[task] = loop.time()
                task.add_done_callback(functools.partial(self._commit_ended, inflight))
        if inflight:
            await asyncio.wait(inflight)

    def _commit_ended(self, inflight: dict[asyncio.Task[None], float], task: asyncio.Task[None]) -> None:
        inflight.pop(task)
        _wake(self._freed)

    async def _slot(self, inflight: dict[asyncio.Task[None], float], loop: asyncio.AbstractEventLoop) -> None:
        """Wait until a commit may start: those under way have finished, or have each run
        `log_second_commit_after_ms` and are fewer than `log_flushes_in_flight`. Woken by a commit
        ending (`_freed`) or by a timer: asyncio.wait, with its callbacks on every commit under way,
        cost several times as much, and at a low rate this wait comes once every other contact."""
        while inflight:
            late = max(inflight.values()) + self._second_after - loop.time()
            if late <= 0 and len(inflight) < self._in_flight:
                return
            freed = self._freed = loop.create_future()
            timer = loop.call_later(late, _wake, freed) if late > 0 else None
            try:
                await freed
            finally:
                self._freed = None
                if timer is not None:
                    timer.cancel()

    def _put(self, item: _Item | None) -> None:
        self._queue.append(item)
        _wake(self._arrived)
        self._arrived = None

    def _take(self, first: _Item | None) -> list[_Item | None]:
        items, queue = [first], self._queue
        while queue and len(items) < self._max:
            items.append(queue.popleft())
        return items

    async def _flush(self, batch: list[_Item]) -> None:
        if self._claims is not None and self._claims.must_claim():
            await self._claim(batch, may_spool=False)
            for item in batch:
                if item.held is not None and not item.fut.done():
                    item.fut.set_result(item.held)
            batch = [item for item in batch if item.held is None]
            if not batch:
                return
        records = [item.record for item in batch]
        results: list[Appended] | None = None  # None: each caller not answered yet hears "spooled"
        loop = self._loop or asyncio.get_running_loop()
        claiming: list[asyncio.Task[None]] = []  # the claim of a commit that is slow, once started
        # One timer a commit: at CLAIM_AFTER it starts the claim and sets the watchdog for SLOW_COMMIT.
        began = loop.time()
        timers: list[asyncio.TimerHandle] = []
        timers.append(loop.call_at(began + CLAIM_AFTER, self._commit_is_late, batch, claiming, timers, began))
        try:
            rows = store.Batch.of([item.line for item in batch], mail=any(_mail(r) for r in records))
            sent = loop.time()
            duplicates = await self._commit(rows, loop)
            metrics.LOG_COMMIT_SECONDS.observe(loop.time() - sent)
            results = [Appended(duplicate_of=duplicates.get(r.id)) for r in records]
            metrics.LOG_BATCH.observe(len(records))
            self._logged([r for r in records if r.id not in duplicates] if duplicates else records)
        except store.RECORD_ERRORS as exc:
            # A bad record must not take its batch-mates down with it: write them one by one.
            log.exception("contact log: batch of %d failed (%r); writing one by one", len(records), exc)
            results = [await self._write_alone(item) for item in batch]
        except Exception as exc:  # anything else is an outage: spool, replay later
            log.warning("contact log: database unavailable (%r); spooling %d record(s)", exc, len(records))
            self._trip(repr(exc))
            timers[0].cancel()  # the claim is made with the spooling instead; the watchdog stays
            if len(timers) == 1:
                timers.append(loop.call_at(began + SLOW_COMMIT, self._commit_is_slow, batch, claiming))
            await self._answer_from_spool(batch, claiming)
        finally:
            timers[0].cancel()
            timers[-1].cancel()
            for i, item in enumerate(batch):
                if not item.fut.done():
                    item.fut.set_result(Appended(spooled=True) if results is None else results[i])

    def _commit_is_late(
        self, batch: list[_Item], claiming: list[asyncio.Task[None]], timers: list[asyncio.TimerHandle], began: float
    ) -> None:
        """A commit not finished at CLAIM_AFTER: claim its provider ids now, and spool its records
        if it has not finished at SLOW_COMMIT either."""
        claiming.append(self._background_task(self._claim(batch)))
        loop = self._loop or asyncio.get_running_loop()
        timers.append(loop.call_at(began + SLOW_COMMIT, self._commit_is_slow, batch, claiming))

    async def _commit(self, rows: store.Batch, loop: asyncio.AbstractEventLoop) -> dict[uuid.UUID, Any]:
        """Write a batch on a connection the writer keeps between commits: taking one from the pool
        and giving it back cost ~30 µs of a worker's CPU a commit (measured on uvloop). One found
        closed (the pool replaces it), one idle longer than KEPT_IDLE (the pool's own checks and
        lifetime apply to it again), and one a commit failed on go back to the pool, as they went
        back when each commit took its connection from the pool; so do all of them when the breaker
        trips, so that the commits after an outage start on connections the pool hands out."""
        conn, now = None, loop.time()
        while conn is None and self._kept:
            conn, since = self._kept.pop()
            if not _open(conn) or now - since > KEPT_IDLE:
                await self._give_back(conn)
                conn = None
        if conn is None:
            conn = await self._pool.acquire(timeout=_DB_TIMEOUT)
        try:
            duplicates = await store.write_batch(conn, rows, timeout=_DB_TIMEOUT)
        except BaseException:
            await self._give_back(conn)
            raise
        if len(self._kept) < self._in_flight and not self.breaker.open:
            self._kept.append((conn, loop.time()))
        else:
            await self._give_back(conn)
        return duplicates

    def _trip(self, why: str) -> None:
        """The database is slow or away: the breaker trips, and the connections kept go back."""
        self.breaker.trip(why)
        kept, self._kept = self._kept, []
        for conn, _ in kept:
            self._background_task(self._give_back(conn))

    async def _give_back(self, conn: asyncpg.Connection) -> None:
        try:
            await self._pool.release(conn)
        except Exception:  # taken back already (it closed), or the pool could not: closed, never left half-used
            log.debug("contact log: a connection could not go back to the pool; closed", exc_info=True)
            with contextlib.suppress(Exception):
                conn.terminate()

    def _commit_is_slow(self, batch: list[_Item], claiming: list[asyncio.Task[None]]) -> None:
        """Spool the waiting records now. If the commit finishes after all, replay skips them by id."""
        self._trip(f"a commit took longer than {SLOW_COMMIT} s")
        # A caller that went away (its future cancelled) still has its contact spooled: drained
        # from the queue, it would otherwise be in neither the log nor the spool.
        waiting = [item for item in [*batch, *self._drain_queue()] if not item.fut.done() or item.fut.cancelled()]
        if waiting:
            self._background_task(self._answer_from_spool(waiting, claiming))

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _drain_queue(self) -> list[_Item]:
        """What is queued behind the slow commits: it would wait for their slots, so it is spooled too."""
        items: list[_Item] = []
        closing = False
        while self._queue:
            item = self._queue.popleft()
            if item is None:
                closing = True
            else:
                items.append(item)
        if closing:
            self._put(None)
        return items

    async def _answer_from_spool(self, waiting: list[_Item], claiming: Sequence[asyncio.Task[None]] = ()) -> None:
        """Claim what is not claimed yet (after the claim already under way, if any), then spool
        every record whose claim did not lose; each caller hears its answer."""
        for task in claiming:
            await asyncio.wait([task])
        # A caller that went away is claimed too: its contact goes to the spool only with its claim.
        await self._claim([item for item in waiting if not item.fut.done() or item.fut.cancelled()], again=True)
        # A caller that went away (its future cancelled) still has its contact logged.
        spooled = [item for item in waiting if item.held is None and (not item.fut.done() or item.fut.cancelled())]
        records = [item.record for item in spooled]
        if await self._spool_safely(records):
            self._logged(records)
        for item in waiting:
            if not item.fut.done():
                item.fut.set_result(item.held or Appended(spooled=True))

    async def _spool_safely(self, records: list[ContactRecord], path: Path | None = None) -> bool:
        """Write to the spool; if even that fails the caller is still answered, and we say so loudly.
        Before that, every process is told a spool holds contacts (so their batches claim first)."""
        if path is None and records and self._claims is not None:
            await self._claims.spooling()
        try:
            await asyncio.to_thread(self.spool.write, records, path)
            if records and path is None:  # the spool took records again (what failed before was said, loudly)
                self.spool_failed = False
            return True
        except OSError as exc:
            self.spool_failed = True
            log.critical(
                "contact log: database down AND spool %s unwritable (%r): %d contact(s) NOT durably logged",
                self.spool.dir,
                exc,
                len(records),
            )
            return False

    def _logged(self, records: list[ContactRecord]) -> None:
        """Once durable (committed or spooled): the owner's hook, remembering decisions for retries."""
        if records and self._on_logged is not None:
            try:
                self._on_logged(records)
            except Exception:  # what follows a durable record must never fail the log
                log.exception("contact log: the after-commit hook failed for %d record(s)", len(records))

    async def _write_alone(self, item: _Item) -> Appended:
        record = item.record
        try:
            async with self._pool.acquire(timeout=_DB_TIMEOUT) as conn:
                rows = store.Batch.of([item.line], mail=_mail(record))
                duplicates = await store.write_batch(conn, rows, timeout=_DB_TIMEOUT)
        except store.RECORD_ERRORS as exc:
            # This record itself cannot be written: kept on disk beside the spool, never dropped.
            log.error(
                "contact log: contact %s could not be written (%r); kept in %s", record.id, exc, self.spool.quarantine
            )
            await self._spool_safely([record], self.spool.quarantine)
            return Appended(spooled=True)
        except Exception as exc:
            log.warning("contact log: database unavailable (%r); spooling contact %s", exc, record.id)
            await self._claim([item], again=True)
            if item.held is not None:
                return item.held
            if await self._spool_safely([record]):
                self._logged([record])
            return Appended(spooled=True)
        if record.id not in duplicates:
            self._logged([record])
        return Appended(duplicate_of=duplicates.get(record.id))

    async def replay(self) -> int:
        """One round: every spool file in the directory that no other process is replaying. The
        SPOOLED flag is kept up all the while (a file can take long, its newest contacts last)."""
        total = 0
        flag = self._background_task(self._keep_spooled_flag()) if self._claims is not None else None
        try:
            for path in self.spool.files():
                async with asyncio.timeout(60), self._pool.acquire() as conn:
                    total += await replay_file(conn, path)
        finally:
            if flag is not None:
                flag.cancel()
        if total:
            log.info("contact log: replayed %d spooled record(s)", total)
        return total

    async def _keep_spooled_flag(self) -> None:
        assert self._claims is not None
        while True:
            await self._claims.spooling()
            await asyncio.sleep(REPLAY_EVERY)

    async def _replay_loop(self) -> None:
        first = True  # a process restarted with spool files left raises the flag at once
        while True:
            if not first:
                await asyncio.sleep(REPLAY_EVERY)
            first = False
            if not self.spool.files():
                continue
            if self._claims is not None:
                await self._claims.spooling()
            if not self.breaker.open:  # no connections spent on a database known away
                try:
                    await self.replay()
                except Exception as exc:  # the database is still away: what is claimed stays for next round
                    log.debug("contact log: replay round stopped (%r)", exc)

    async def close(self) -> None:
        """Commit (or spool) everything queued, then stop."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        try:
            if self._task is not None:
                self._put(None)
                await self._task
        finally:  # whatever the writer ended with: the pool cannot close while one is kept
            kept, self._kept = self._kept, []
            for conn, _ in kept:
                await self._give_back(conn)
        # What is still being spooled or remembered (and what that starts in turn) is let finish
        # rather than cancelled by us (a record being spooled would be lost), up to CLOSE_WITHIN;
        # what is left then is logged, and ends with the process.
        deadline = asyncio.get_running_loop().time() + CLOSE_WITHIN
        while self._background and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(set(self._background), timeout=left)
        if self._background:
            log.error("contact log: %d background task(s) still running at shutdown", len(self._background))
        # The deadlines stay armed: a record appended after this still falls due, and is spooled.
        await self.breaker.close()


def _say_if_failed(task: asyncio.Future[Appended]) -> None:
    """A spooling's failure is logged here: its caller may have gone away and hear nothing."""
    if not task.cancelled() and task.exception() is not None:
        log.error("contact log: spooling a contact failed", exc_info=task.exception())


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _open(conn: asyncpg.Connection) -> bool:
    """Whether a connection kept between commits is still open (the pool takes back one that closed)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _mail(record: ContactRecord) -> bool:
    """Whether the record's row has email threading or an acknowledgement to write with it."""
    return record.ack is not None or record.channel == "email"
