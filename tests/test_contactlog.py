"""The group-commit writer on a real PostgreSQL: what one batch holds, and that a bad record cannot split it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from gateway import db
from gateway.contactlog import ContactLog, ContactRecord


def _record(n: int, **fields: object) -> ContactRecord:
    return ContactRecord(
        id=uuid.uuid4(),
        received_at=datetime.now(UTC),
        channel="phone",
        action="route",
        provider_id=f"batch-{n}",
        **fields,
    )


async def test_a_record_with_unstorable_text_is_written_in_its_batch(settings, conn, tmp_path):
    """Found in review: a lone surrogate in a provider id sent the record to quarantine and its
    batch-mates to one-by-one writes."""
    records = [
        _record(0),
        _record(1, sender_raw="07700\x00900123", reasons=[{"because": "half a pair \udc00"}]),
        _record(2),
    ]
    records[1].provider_id = "batch-\ud800"
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    try:
        appends = [asyncio.create_task(log.append(r, wait=5)) for r in records]
        await asyncio.sleep(0)  # all three are queued before the writer takes its first batch
        log.start()
        results = await asyncio.gather(*appends)
    finally:
        await log.close()
        await pool.close()
    assert not any(r.spooled for r in results)
    rows = await conn.fetch(
        "SELECT provider_id, sender_raw, reasons, logged_at FROM contacts WHERE id = ANY($1::uuid[]) ORDER BY 1",
        [r.id for r in records],
    )
    assert [r["provider_id"] for r in rows] == ["batch-0", "batch-2", "batch-\ufffd"]
    assert rows[2]["sender_raw"] == "07700\ufffd900123"
    assert rows[2]["reasons"] == [{"because": "half a pair \ufffd"}]
    assert len({r["logged_at"] for r in rows}) == 1  # now() of one transaction: one batch
    assert not list(tmp_path.iterdir())  # nothing quarantined, nothing spooled
