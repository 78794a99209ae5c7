"""Replaying spool files into the contact log, exactly once: by the writer's loop, or `python -m gateway replay`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import asyncpg

from .. import db, metrics
from ..settings import Settings
from ..store import contactlog as store
from .record import ContactRecord
from .spool import QUARANTINE, Spool, claim, read

log = logging.getLogger(__name__)
CHUNK = 500


async def replay_file(conn: asyncpg.Connection, path: Path) -> int:
    """Claim a spool file, insert its records that are not in the log yet, then remove it. Returns
    how many were inserted: 0 when another process has the file. If the database fails midway, the
    claimed file stays for the next round, and what was inserted already is skipped then."""
    with claim(path) as claimed:
        if claimed is None:
            return 0
        quarantine = claimed.parent / QUARANTINE
        records = await asyncio.to_thread(read, claimed, quarantine)
        replayed = 0
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            fresh = await store.not_logged(conn, (r.id for r in chunk))
            replayed += await _insert(conn, [r for r in chunk if r.id in fresh], quarantine)
        claimed.unlink()
        metrics.SPOOLED.dec(len(records))
        return replayed


async def _insert(conn: asyncpg.Connection, records: Sequence[ContactRecord], quarantine: Path) -> int:
    """Write records as one batch; if PostgreSQL refuses one of them, the rest one by one, so that a
    record it will never take is kept aside instead of holding its whole file back for ever."""
    if not records:
        return 0
    try:
        lost_claims = await store.write_batch(conn, _batch(records))
        if lost_claims:
            await _keep_as_duplicates(conn, [r for r in records if r.id in lost_claims])
        return len(records)
    except asyncpg.UniqueViolationError:
        raise  # another replayer inserted some of them meanwhile: the next round skips those
    except store.RECORD_ERRORS as exc:
        if len(records) > 1:
            return sum([await _insert(conn, [r], quarantine) for r in records])
        log.error("spooled contact %s could not be written (%r); kept in %s", records[0].id, exc, quarantine)
        await asyncio.to_thread(Spool(quarantine.parent).write, records, quarantine)
        return 0


async def _keep_as_duplicates(conn: asyncpg.Connection, records: Sequence[ContactRecord]) -> None:
    """Spooled contacts whose provider id another contact had already claimed. Their callers were
    given these contact ids, so they are logged (status 'duplicate'), never dropped."""
    log.warning(
        "replay: %d spooled contact(s) repeat a provider id answered by another contact; kept with status 'duplicate'",
        len(records),
    )
    note = "acknowledged from the spool; its provider id was answered by another contact"
    kept = [replace(r, status="duplicate", error=(r.error or note)) for r in records]
    await store.write_batch(conn, _batch(kept))


def _batch(records: Sequence[ContactRecord]) -> store.Batch:
    return store.Batch.of(r.to_json() for r in records)  # spooled records were made storable when read


async def replay_spool(settings: Settings) -> int:
    """`python -m gateway replay`: push every spooled contact into the log, with progress."""
    files = Spool(settings.spool_dir).files()
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
