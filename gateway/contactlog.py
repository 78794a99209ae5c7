"""The durable contact log: group commit to PostgreSQL, an fsync'd local spool when it is down.

`append` resolves once the record is committed (or safely spooled). One writer task takes every
record queued while the previous batch was committing, so batches grow with load and there is
no fixed timer. Spooled records are replayed with ON CONFLICT DO NOTHING, so exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from . import db, metrics
from .settings import Settings

log = logging.getLogger(__name__)
_DB_TIMEOUT = 2.0
# Errors that belong to a record (a value PostgreSQL will not take), not to the database's health.
_RECORD_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UnicodeEncodeError, OverflowError)
FLUSHES_IN_FLIGHT = 2


@dataclass
class ContactRecord:
    """One row of `contacts`; field names are the column names."""

    id: uuid.UUID
    received_at: datetime
    channel: str
    action: str
    status: str = "decided"
    sender_raw: str | None = None
    sender_kind: str | None = None
    sender: str | None = None
    recipient: str | None = None
    provider_id: str | None = None
    subject: str | None = None
    body_excerpt: str | None = None
    customer_ids: list[int] = field(default_factory=list)
    case_id: int | None = None
    case_ref: str | None = None
    on_behalf_of: str | None = None
    representative_of: list[int] = field(default_factory=list)
    ambiguous: bool = False
    target: dict[str, Any] | None = None
    flagged: bool = False
    banner: dict[str, Any] | None = None
    customer_message: str | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    ruleset_version: int | None = None
    degraded: bool = False
    latency_us: int | None = None
    ack_sent: bool = False
    ack_note: str | None = None
    error: str | None = None
    # The decision as answered, kept with the provider id so a retry gets the same answer.
    decision: dict[str, Any] | None = field(default=None, metadata={"column": False})

    def to_json(self) -> str:
        data = asdict(self)
        data["id"] = str(self.id)
        data["received_at"] = self.received_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> ContactRecord:
        data = json.loads(line)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}  # written by an older or newer version
        data["id"] = uuid.UUID(data["id"])
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        return cls(**data)


COLUMNS = tuple(f.name for f in fields(ContactRecord) if f.metadata.get("column", True))


def clean(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold NUL: replace it, in strings nested anywhere."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def _row(r: ContactRecord) -> tuple[Any, ...]:
    # Inbound text is cleaned when the contact is parsed (gateway.contact); the raw fields of a
    # contact that failed to parse arrive here as they came, so the top-level strings are checked.
    return tuple(
        v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v
        for v in (getattr(r, c) for c in COLUMNS)
    )


@dataclass
class Appended:
    """What happened to an appended record: committed, spooled, or a duplicate of an earlier one."""

    spooled: bool = False
    duplicate_of: dict[str, Any] | None = None


# Column types for the unnest() that carries a batch. Integer arrays travel as text ('{1,2}') because
# PostgreSQL arrays of arrays must be rectangular; JSON travels as text too (a JSON list inside a
# jsonb[] parameter would read as another array dimension) and is cast back in the statement.
_TYPES = {
    "id": "uuid",
    "received_at": "timestamptz",
    "case_id": "bigint",
    "ambiguous": "boolean",
    "flagged": "boolean",
    "ruleset_version": "integer",
    "degraded": "boolean",
    "latency_us": "integer",
    "ack_sent": "boolean",
}
_JSON = ("target", "banner", "reasons", "decision")
_FIELDS = (*COLUMNS, "decision")
_DERIVED = {
    **{c: f"r.{c}::jsonb" for c in _JSON},
    # Who sent it, also for customers outside the restriction index, and the case it names.
    "customer_ids": """ARRAY(SELECT DISTINCT x FROM unnest(r.customer_ids::bigint[] || ARRAY(
                           SELECT i.customer_id FROM identifiers i WHERE i.kind = r.sender_kind
                           AND i.value = r.sender AND i.customer_id IS NOT NULL) || ARRAY(
                           SELECT c.id FROM customers c WHERE r.sender_kind = 'ref'
                           AND lower(c.external_ref) = r.sender)) AS x ORDER BY x)""",
    "case_id": "coalesce(r.case_id, (SELECT k.id FROM cases k WHERE upper(k.reference) = upper(r.case_ref) LIMIT 1))",
    "representative_of": "r.representative_of::bigint[]",
}
# One statement, so one round trip and atomic without BEGIN/COMMIT: claim the provider ids, write the
# rows that are not retries, and return the ids that were retries.
WRITE_BATCH = f"""
WITH r AS (
    SELECT * FROM unnest({", ".join(f"${n}::{_TYPES.get(c, 'text')}[]" for n, c in enumerate(_FIELDS, 1))})
        AS r({", ".join(_FIELDS)})
), claimed AS (
    INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision)
    SELECT channel, provider_id, id, coalesce(decision::jsonb, '{{}}') FROM r
    WHERE provider_id IS NOT NULL AND status = 'decided'
    ON CONFLICT DO NOTHING RETURNING contact_id
), logged AS (
    INSERT INTO contacts ({", ".join(COLUMNS)})
    SELECT {", ".join(_DERIVED.get(c, f"r.{c}") for c in COLUMNS)}
    FROM r WHERE r.provider_id IS NULL OR r.status <> 'decided' OR r.id IN (SELECT contact_id FROM claimed)
    RETURNING id
)
SELECT r.id FROM r WHERE r.id NOT IN (SELECT id FROM logged)"""


def _column_arrays(batch: Sequence[ContactRecord]) -> list[list[Any]]:
    rows = [(*_row(r), r.decision) for r in batch]
    arrays = [list(col) for col in zip(*rows, strict=True)]
    for name in ("customer_ids", "representative_of"):
        n = _FIELDS.index(name)
        arrays[n] = ["{" + ",".join(map(str, v)) + "}" for v in arrays[n]]
    for name in _JSON:
        n = _FIELDS.index(name)
        arrays[n] = [None if v is None else json.dumps(clean(v), separators=(",", ":")) for v in arrays[n]]
    return arrays


async def _write_batch(
    conn: asyncpg.Connection, batch: Sequence[ContactRecord], timeout: float | None = None
) -> dict[int, dict[str, Any]]:
    """Write a batch in one statement. Returns {index in batch: earlier decision} for the records
    that repeat an already-logged (channel, provider id): those get no row of their own."""
    retries = {row["id"] for row in await conn.fetch(WRITE_BATCH, *_column_arrays(batch), timeout=timeout)}
    if not retries:
        return {}
    lost = [(i, r) for i, r in enumerate(batch) if r.id in retries]
    earlier = await conn.fetch(
        """SELECT p.channel, p.provider_id, p.decision FROM contact_provider_ids p
           JOIN unnest($1::text[], $2::text[]) AS k(channel, provider_id) USING (channel, provider_id)""",
        [r.channel for _, r in lost],
        [clean(r.provider_id) for _, r in lost],
    )
    by_key = {(e["channel"], e["provider_id"]): e["decision"] for e in earlier}
    return {i: by_key.get((r.channel, clean(r.provider_id)), {}) for i, r in lost}


class Spool:
    """An append-only JSON-lines file per process; each batch is fsync'd before it is acknowledged.

    Writers hold an exclusive lock while appending. A replayer first renames a file (so new writes
    start a fresh one), then takes the same lock, so it never reads a file someone is still writing.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.path = self.dir / f"contacts-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"

    @property
    def quarantine(self) -> Path:
        return self.dir / "quarantine.jsonl"

    def write(self, batch: Sequence[ContactRecord], path: Path | None = None) -> None:
        target = path or self.path
        created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        data = "".join(r.to_json() + "\n" for r in batch)
        while True:
            with open(target, "a", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                if not target.exists() or os.fstat(f.fileno()).st_ino != os.stat(target).st_ino:
                    continue  # renamed away by a replayer between open and lock: write a fresh file
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                break
        if created:
            _fsync_dir(self.dir)
        metrics.SPOOLED.inc(len(batch))

    def files(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted([*self.dir.glob("contacts-*.jsonl"), *self.dir.glob("contacts-*.replaying")])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_spool(path: Path, quarantine: Path) -> list[ContactRecord]:
    """Records of a spool file, once per id; a line that cannot be read is kept aside, not retried."""
    records: dict[uuid.UUID, ContactRecord] = {}
    bad: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = ContactRecord.from_json(line)
            except (ValueError, TypeError, KeyError):
                bad.append(line if line.endswith("\n") else line + "\n")
                continue
            records.setdefault(record.id, record)
    if bad:
        log.error("spool %s: %d unreadable line(s) kept in %s", path.name, len(bad), quarantine.name)
        with open(quarantine, "a", encoding="utf-8") as q:
            q.write("".join(bad))
            q.flush()
            os.fsync(q.fileno())
    return list(records.values())


async def replay_file(conn: asyncpg.Connection, path: Path) -> int:
    """Insert a spool file's records that are not in the log yet, then remove it."""
    if path.suffix == ".jsonl":
        claimed = path.with_suffix(".replaying")
        try:
            path.rename(claimed)  # new writes go to a fresh file from here on
        except FileNotFoundError:
            return 0  # another process took it
        path = claimed
    with open(path, encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another replayer holds it, or a writer is finishing: next round
        records = _read_spool(path, path.parent / "quarantine.jsonl")
        replayed = 0
        for start in range(0, len(records), 500):
            chunk = records[start : start + 500]
            fresh = await conn.fetch(
                """SELECT x FROM unnest($1::uuid[]) AS x
                   WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE id = x)""",
                [r.id for r in chunk],
            )
            fresh_ids = {row["x"] for row in fresh}
            todo = [r for r in chunk if r.id in fresh_ids]
            if todo:
                replayed += len(todo) - len(await _write_batch(conn, todo))
        path.unlink()
        metrics.SPOOLED.dec(len(records))
        return replayed


_Item = tuple[ContactRecord, "asyncio.Future[Appended]"]


class ContactLog:
    """The group-commit writer. Start with `start()`, stop with `close()` (drains what is queued)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        on_logged: Callable[[list[ContactRecord]], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._pool = pool
        self._on_logged = on_logged
        self._background: set[asyncio.Task[None]] = set()
        self._max = settings.log_flush_max_rows
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self.spool = Spool(settings.spool_dir)
        self._task: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self.db_down = False
        self.spool_failed = False

    def on_logged(self, hook: Callable[[list[ContactRecord]], Coroutine[Any, Any, None]]) -> None:
        self._on_logged = hook

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="contact-log-writer")
        self._replayer = asyncio.create_task(self._replay_loop(), name="contact-log-replayer")

    async def append(self, record: ContactRecord, wait: float | None = None) -> Appended:
        """Durably log a record: committed, or (after `wait` seconds, or on a fault) spooled."""
        fut: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record, fut))
        try:
            async with asyncio.timeout(wait):
                return await fut  # on time-out this private future is cancelled; the writer skips it
        except TimeoutError:
            # The database is too slow for the caller: make the record durable on disk now. If its
            # batch commits after all, replay skips it by id; if the batch fails, it is spooled twice
            # and replayed once.
            log.warning("contact log: commit slower than %.1f s; spooling contact %s", wait, record.id)
            if await self._spool_safely([record]):
                self._logged([record])
            return Appended(spooled=True)

    async def _run(self) -> None:
        """Take what queued while a slot was busy; at most FLUSHES_IN_FLIGHT commits at once, so a
        contact that arrives mid-commit waits for one commit, not for the current one and then its own."""
        closing = False
        inflight: set[asyncio.Task[None]] = set()
        while not closing:
            first = await self._queue.get()
            while len(inflight) >= FLUSHES_IN_FLIGHT:
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            batch = []
            for item in self._take(first):
                if item is None:
                    closing = True
                else:
                    batch.append(item)
            if batch:
                task = asyncio.create_task(self._flush(batch))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight)

    def _take(self, first: _Item | None) -> list[_Item | None]:
        items = [first]
        while len(items) < self._max and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def _flush(self, batch: list[_Item]) -> None:
        records = [r for r, _ in batch]
        results = [Appended(spooled=True) for _ in records]
        try:
            async with self._pool.acquire(timeout=_DB_TIMEOUT) as conn:
                duplicates = await _write_batch(conn, records, timeout=_DB_TIMEOUT)
            results = [Appended(duplicate_of=duplicates.get(i)) for i in range(len(records))]
            self.db_down = False
            metrics.LOG_BATCH.observe(len(records))
            self._logged([r for i, r in enumerate(records) if i not in duplicates])
        except _RECORD_ERRORS as exc:
            # A bad record must not take its batch-mates down with it: write them one by one.
            log.exception("contact log: batch of %d failed (%r); writing one by one", len(records), exc)
            results = [await self._write_alone(r) for r in records]
        except Exception as exc:  # anything else is an outage: spool, replay later
            log.warning("contact log: database unavailable (%r); spooling %d record(s)", exc, len(records))
            self.db_down = True
            if await self._spool_safely(records):
                self._logged(records)
        finally:
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def _spool_safely(self, records: list[ContactRecord], path: Path | None = None) -> bool:
        """Write to the spool; if even that fails the caller is still answered, and we say so loudly."""
        try:
            await asyncio.to_thread(self.spool.write, records, path)
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
            task = asyncio.create_task(self._on_logged(records))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _write_alone(self, record: ContactRecord) -> Appended:
        try:
            async with self._pool.acquire(timeout=_DB_TIMEOUT) as conn:
                duplicates = await _write_batch(conn, [record], timeout=_DB_TIMEOUT)
        except _RECORD_ERRORS as exc:
            # This record itself cannot be written: kept on disk beside the spool, never dropped.
            log.error(
                "contact log: contact %s could not be written (%r); kept in %s", record.id, exc, self.spool.quarantine
            )
            await self._spool_safely([record], self.spool.quarantine)
            return Appended(spooled=True)
        except Exception as exc:
            log.warning("contact log: database unavailable (%r); spooling contact %s", exc, record.id)
            if await self._spool_safely([record]):
                self._logged([record])
            return Appended(spooled=True)
        if 0 not in duplicates:
            self._logged([record])
        return Appended(duplicate_of=duplicates.get(0))

    async def replay(self) -> int:
        total = 0
        for path in self.spool.files():
            async with asyncio.timeout(60), self._pool.acquire() as conn:
                total += await replay_file(conn, path)
        if total:
            log.info("contact log: replayed %d spooled record(s)", total)
        return total

    async def _replay_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.spool.files():
                with contextlib.suppress(Exception):
                    await self.replay()

    async def close(self) -> None:
        """Commit (or spool) everything queued, then stop."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1.0)


async def replay_spool(settings: Settings) -> int:
    """`python -m gateway replay`: push every spooled contact into the log, with progress."""
    spool = Spool(settings.spool_dir)
    files = spool.files()
    conn = await db.connect(settings.require_services().database_url or "")
    try:
        total = 0
        for n, path in enumerate(files, 1):
            total += await replay_file(conn, path)
            print(f"\r{n}/{len(files)} spool file(s), {total} contact(s) replayed", end="", flush=True)
        print(f"\nreplayed {total} contact(s) from {len(files)} spool file(s)")
        return 0
    finally:
        await conn.close()
